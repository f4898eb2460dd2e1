// trkx-reco BUNDLE HITS.csv TRACKS.csv [HITS.csv TRACKS.csv ...] [--threads N] [--timing FILE]
//
// Runs an exported trkx chain (trkx export) on TrackML hit files: feature scaling, graph
// construction (the embedding network and a radius graph, or the module map), the edge
// classifiers (TorchScript, through LibTorch) and track building; writes hit_id,track_id per event.  The networks are loaded once; --timing writes the
// seconds of every stage of every event as JSON.
#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "chain_config.hpp"
#include "hits.hpp"
#include "radius_graph.hpp"
#include "track_building.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

using trkx::Edges;

torch::Tensor long_tensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kLong).clone();
}

torch::Tensor float_tensor(const std::vector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kFloat).clone();
}

torch::Tensor edge_tensor(const Edges& e) { return torch::stack({long_tensor(e.src), long_tensor(e.dst)}); }

// One event as the Python data model holds it (float32 tensors built from float64 arithmetic).
struct Event {
  std::vector<int64_t> hit_id;
  std::vector<float> r, phi, z;
  torch::Tensor x, region, volume_id, layer_id, module_id;
};

Event build_event(const trkx::Hits& h, const trkx::ChainConfig& cfg, const std::string& where) {
  const int64_t n = static_cast<int64_t>(h.size());
  Event ev;
  ev.hit_id = h.hit_id;
  std::vector<double> r(n), phi(n);
  for (int64_t i = 0; i < n; ++i) { r[i] = std::hypot(h.x[i], h.y[i]); phi[i] = std::atan2(h.y[i], h.x[i]); }
  const size_t f = cfg.features.size();
  std::vector<float> x(n * f);
  for (size_t k = 0; k < f; ++k) {
    const std::string& name = cfg.features[k];
    const std::vector<double>& col = name == "r" ? r : name == "phi" ? phi : name == "z" ? h.z : name == "x" ? h.x : h.y;
    for (int64_t i = 0; i < n; ++i) x[i * f + k] = static_cast<float>(col[i] / cfg.feature_scales[k]);
  }
  ev.x = torch::from_blob(x.data(), {n, static_cast<int64_t>(f)}, torch::kFloat).clone();
  std::vector<int64_t> region(n);
  for (int64_t i = 0; i < n; ++i) {
    auto it = cfg.region_of_volume.find(h.volume_id[i]);
    if (it == cfg.region_of_volume.end())
      throw std::runtime_error(where + ": hit_id " + std::to_string(h.hit_id[i]) + ": volume_id " +
                               std::to_string(h.volume_id[i]) + " belongs to no region of the bundle");
    region[i] = it->second;
  }
  ev.region = long_tensor(region);
  ev.volume_id = long_tensor(h.volume_id);
  ev.layer_id = long_tensor(h.layer_id);
  ev.module_id = long_tensor(h.module_id);
  ev.r.assign(r.begin(), r.end());
  ev.phi.assign(phi.begin(), phi.end());
  ev.z.assign(h.z.begin(), h.z.end());
  return ev;
}

struct Chain {
  trkx::ChainConfig cfg;
  std::map<std::string, torch::jit::Module> nets;
  torch::jit::Module edge_features;
  // networks compiled ahead of time (AOTInductor packages), run instead of their TorchScript copy
  std::map<std::string, std::unique_ptr<torch::inductor::AOTIModelPackageLoader>> compiled;
};

Chain load_chain(const std::string& bundle) {
  Chain c{trkx::read_chain(bundle), {}, torch::jit::load(bundle + "/torchscript/edge_features.pt"), {}};
  for (const auto& s : c.cfg.stages) {
    if (s.params.count("aoti"))
      c.compiled.emplace(s.name, std::make_unique<torch::inductor::AOTIModelPackageLoader>(bundle + "/" + s.text("aoti")));
    if (!s.file.empty()) {
      c.nets.emplace(s.name, torch::jit::load(bundle + "/" + s.file));
      c.nets.at(s.name).eval();
    }
  }
  return c;
}

using Clock = std::chrono::steady_clock;

std::vector<int64_t> reconstruct(Chain& chain, const std::string& hits_path, std::vector<int64_t>& hit_id,
                                 std::vector<std::pair<std::string, double>>& seconds) {
  torch::NoGradGuard no_grad;
  auto t0 = Clock::now();
  auto lap = [&](const std::string& name) {
    const auto t = Clock::now();
    seconds.push_back({name, std::chrono::duration<double>(t - t0).count()});
    t0 = t;
  };
  Event ev = build_event(trkx::read_hits(hits_path), chain.cfg, hits_path);
  const int64_t n = static_cast<int64_t>(ev.hit_id.size());
  hit_id = ev.hit_id;
  lap("read + build");
  torch::Tensor embedding;
  Edges edges;
  std::vector<float> score;
  std::vector<int64_t> tracks;
  const auto r = float_tensor(ev.r), phi = float_tensor(ev.phi), z = float_tensor(ev.z);
  for (const auto& s : chain.cfg.stages) {
    if (s.kind == "embedding") {
      embedding = chain.nets.at(s.name).forward({ev.x}).toTensor().contiguous();
    } else if (s.kind == "graph") {
      const int dim = static_cast<int>(embedding.size(1));
      std::vector<float> pts(embedding.data_ptr<float>(), embedding.data_ptr<float>() + n * dim);
      // the cap ranks by float32 distances computed with torch's kernels, as Python does
      auto distance = [&](const std::vector<int64_t>& q, const std::vector<int64_t>& nb) {
        auto d2 = (embedding.index_select(0, long_tensor(q)) - embedding.index_select(0, long_tensor(nb)))
                      .pow(2).sum(-1).contiguous();
        return std::vector<float>(d2.data_ptr<float>(), d2.data_ptr<float>() + d2.numel());
      };
      const auto directed = trkx::radius_edges(pts, n, dim, s.number("r"), static_cast<int64_t>(s.number("k_max")),
                                               distance);
      edges = trkx::orient_and_dedup(directed, ev.r, ev.z);
    } else if (s.kind == "module_map") {
      const auto directed = chain.nets.at(s.name).forward({ev.volume_id, ev.layer_id, ev.module_id, r, phi, z})
                                .toTensor().contiguous();
      const int64_t m = directed.size(1);
      const int64_t* d = directed.data_ptr<int64_t>();
      edges = trkx::orient_and_dedup(Edges{std::vector<int64_t>(d, d + m), std::vector<int64_t>(d + m, d + 2 * m)},
                                     ev.r, ev.z);
    } else if (s.kind == "classifier") {
      const auto ei = edge_tensor(edges);
      const auto ef = chain.edge_features.forward({r, phi, z, ei}).toTensor();
      const auto compiled = chain.compiled.find(s.name);
      // the compiled network takes two hits and two edges at least (its dynamic dimensions)
      const bool use_compiled = compiled != chain.compiled.end() && n >= 2 && ei.size(1) >= 2;
      const auto logits = use_compiled
                              ? compiled->second->run({ev.x, ei, ef, ev.region}).at(0)
                              : chain.nets.at(s.name).forward({ev.x, ei, ef, ev.region}).toTensor();
      const auto sc = torch::sigmoid(logits.to(torch::kFloat)).contiguous();
      const std::vector<float> all(sc.data_ptr<float>(), sc.data_ptr<float>() + sc.numel());
      const float cut = static_cast<float>(s.number("cut"));
      Edges kept;
      score.clear();
      for (size_t k = 0; k < all.size(); ++k)
        if (all[k] >= cut) { kept.src.push_back(edges.src[k]); kept.dst.push_back(edges.dst[k]); score.push_back(all[k]); }
      edges = kept;
    } else if (s.kind == "labeling") {
      trkx::TrackBuildingConfig cfg;
      cfg.method = s.text("method");
      cfg.cut = s.number("cut");
      cfg.walk_cut = s.number("walk_cut");
      cfg.min_hits = static_cast<int64_t>(s.number("min_hits"));
      cfg.min_pt = s.number("min_pt");
      cfg.bfield_tesla = s.number("bfield_tesla");
      tracks = trkx::build_tracks(cfg, n, edges, score, ev.r, ev.phi);
    }
    lap(s.name);
  }
  if (tracks.empty()) throw std::runtime_error("the bundle's chain has no track building stage");
  return tracks;
}

// Freed blocks stay in the heap for the next event instead of going back to the kernel (each
// page of a dense event's tensors would fault and be zeroed again): glibc's mmap and trim
// thresholds raised to 1 GiB, as trkx.runtime.keep_freed_memory does for Python;
// TRKX_ALLOCATOR=system keeps glibc's defaults.
void keep_freed_memory() {
#if defined(__GLIBC__)
  const char* env = std::getenv("TRKX_ALLOCATOR");
  std::string setting = env ? env : "";
  std::transform(setting.begin(), setting.end(), setting.begin(), [](unsigned char c) { return std::tolower(c); });
  if (setting == "system") return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  std::vector<std::string> args;
  int threads = 0;
  std::string timing_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (a == "--timing" && i + 1 < argc) timing_path = argv[++i];
    else args.push_back(a);
  }
  if (args.size() < 3 || args.size() % 2 == 0) {
    std::cerr << "usage: trkx-reco BUNDLE HITS.csv TRACKS.csv [HITS.csv TRACKS.csv ...] [--threads N] [--timing FILE]\n";
    return 2;
  }
  if (threads > 0) {
    at::set_num_threads(threads);
    at::set_num_interop_threads(threads);
  }
  // run the TorchScript graphs as recorded: the profiling executor's re-optimisation for each new
  // input shape costs more than it gains when every event has other shapes
  torch::jit::setGraphExecutorOptimize(false);
  try {
    Chain chain = load_chain(args[0]);
    std::ofstream timing;
    if (!timing_path.empty()) timing.open(timing_path);
    if (timing) timing << "[";
    for (size_t k = 1; k + 1 < args.size(); k += 2) {
      std::vector<int64_t> hit_id;
      std::vector<std::pair<std::string, double>> seconds;
      const auto tracks = reconstruct(chain, args[k], hit_id, seconds);
      trkx::write_tracks(args[k + 1], hit_id, tracks);
      if (timing) {
        timing << (k > 1 ? ",\n" : "") << "{\"event\": \"" << args[k] << "\"";
        for (const auto& [name, s] : seconds) timing << ", \"" << name << "\": " << s;
        timing << "}";
      }
    }
    if (timing) timing << "]\n";
  } catch (const std::exception& err) {
    std::cerr << "error: " << err.what() << "\n";
    return 2;
  }
  return 0;
}
