// TrackML hit files in, track files out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace trkx {

struct Hits {
  std::vector<int64_t> hit_id, volume_id, layer_id, module_id;
  std::vector<double> x, y, z;
  size_t size() const { return hit_id.size(); }
};

// Reads event<ID>-hits.csv (columns hit_id,x,y,z,volume_id,layer_id,module_id in any order, others
// ignored).  Throws std::runtime_error naming the file, line and column of a bad value.
Hits read_hits(const std::string& path);

// Writes hit_id,track_id rows (the TrackML submission format).
void write_tracks(const std::string& path, const std::vector<int64_t>& hit_id, const std::vector<int64_t>& track_id);

}  // namespace trkx
