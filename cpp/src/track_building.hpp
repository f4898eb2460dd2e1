// Track building on scored edges, as trkx.stages.track_building.labeling does it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "radius_graph.hpp"

namespace trkx {

// Weakly connected components of the edges; components numbered 0, 1, ... in order of their
// smallest node index.
std::vector<int64_t> component_labels(int64_t n, const Edges& edges);

// Walkthrough, vectorised in Python, a loop here: every hit keeps its best-score outgoing edge
// (ties: first edge), and of the edges that several hits chose into one hit only the best one.
std::vector<bool> best_successor_paths(int64_t n, const Edges& edges, const std::vector<float>& score);

struct TrackBuildingConfig {
  std::string method = "walkthrough";   // cc | junction | walkthrough
  double cut = 0.5, walk_cut = 0.1, min_pt = 0.0, bfield_tesla = 2.0;
  int64_t min_hits = 3;
};

// track_id per hit (-1: unassigned), numbered 0..K-1 like the Python stage.  r, phi: per hit, for
// the pT estimate of ``min_pt``.
std::vector<int64_t> build_tracks(const TrackBuildingConfig& cfg, int64_t n, const Edges& edges,
                                  const std::vector<float>& score, const std::vector<float>& r,
                                  const std::vector<float>& phi);

}  // namespace trkx
