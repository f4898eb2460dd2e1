// Fixed-radius graph of embedded hits, the same edges as trkx.stages.graph_construction.frnn
// followed by trkx.event.orient_and_dedup.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace trkx {

struct Edges {
  std::vector<int64_t> src, dst;
  size_t size() const { return src.size(); }
};

// float32 squared distances of the pairs (q[k], nb[k]), computed exactly as the Python side does
// (it ranks the neighbours of a query over the k_max cap by them).
using PairDistance = std::function<std::vector<float>(const std::vector<int64_t>& q, const std::vector<int64_t>& nb)>;

// Directed edges query -> neighbour: every j != i with |p_i - p_j|^2 < r^2 (float64), each query
// keeping its k_max nearest (float32 distance from ``distance``, ties to the smaller index).
// ``points``: n x dim, row-major.  Found through a uniform grid of side r on the first 3 axes.
Edges radius_edges(const std::vector<float>& points, int64_t n, int dim, double r, int64_t k_max,
                   const PairDistance& distance);

// Each edge once, pointing outwards (from the hit nearer the origin in (r, z); ties: smaller
// index first), sorted by (src, dst).
Edges orient_and_dedup(const Edges& directed, const std::vector<float>& r, const std::vector<float>& z);

}  // namespace trkx
