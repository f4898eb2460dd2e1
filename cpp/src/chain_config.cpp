#include "chain_config.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace trkx {

double StageSpec::number(const std::string& key) const { return std::stod(text(key)); }

const std::string& StageSpec::text(const std::string& key) const {
  auto it = params.find(key);
  if (it == params.end()) throw std::runtime_error("stage '" + name + "': missing setting '" + key + "'");
  return it->second;
}

ChainConfig read_chain(const std::string& bundle_dir) {
  const std::string path = bundle_dir + "/chain.txt";
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": not found (the bundle's chain has no C++ port, see manifest.json)");
  ChainConfig cfg;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.empty()) continue;
    auto fail = [&](const std::string& why) { return std::runtime_error(path + ": line " + std::to_string(line_no) + ": " + why); };
    if (w[0] == "features") {
      cfg.features.assign(w.begin() + 1, w.end());
    } else if (w[0] == "feature_scales") {
      for (size_t i = 1; i < w.size(); ++i) cfg.feature_scales.push_back(std::stod(w[i]));
    } else if (w[0] == "region") {
      if (w.size() < 2) throw fail("region without an index");
      for (size_t i = 2; i < w.size(); ++i) cfg.region_of_volume[std::stoll(w[i])] = std::stoll(w[1]);
    } else if (w[0] == "embedding" || w[0] == "classifier" || w[0] == "graph" || w[0] == "module_map" ||
               w[0] == "labeling") {
      StageSpec s;
      s.kind = w[0];
      if (w.size() < 2) throw fail("stage without a name");
      s.name = w[1];
      size_t i = 2;
      if (s.kind == "embedding" || s.kind == "classifier" || s.kind == "module_map") {
        if (w.size() < 3) throw fail("stage without a TorchScript file");
        s.file = w[2];
        i = 3;
      }
      if ((w.size() - i) % 2) throw fail("settings come in key value pairs");
      for (; i + 1 < w.size(); i += 2) s.params[w[i]] = w[i + 1];
      cfg.stages.push_back(s);
    } else {
      throw fail("unknown entry '" + w[0] + "'");
    }
  }
  if (cfg.features.size() != cfg.feature_scales.size() || cfg.features.empty())
    throw std::runtime_error(path + ": features and feature_scales differ in length");
  return cfg;
}

}  // namespace trkx
