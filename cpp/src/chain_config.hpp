// The chain of an exported bundle (its chain.txt): features, regions and the stages in order.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace trkx {

struct StageSpec {
  std::string kind;   // embedding | graph | module_map | classifier | labeling
  std::string name;
  std::string file;   // TorchScript file, relative to the bundle (embedding, module_map, classifier)
  std::map<std::string, std::string> params;
  double number(const std::string& key) const;
  const std::string& text(const std::string& key) const;
};

struct ChainConfig {
  std::vector<std::string> features;
  std::vector<double> feature_scales;
  std::map<int64_t, int64_t> region_of_volume;
  std::vector<StageSpec> stages;
};

// Reads <bundle>/chain.txt; throws std::runtime_error naming the file and line.
ChainConfig read_chain(const std::string& bundle_dir);

}  // namespace trkx
