// Unit tests of the torch-free part of trkx-reco (run by ctest).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "chain_config.hpp"
#include "hits.hpp"
#include "radius_graph.hpp"
#include "track_building.hpp"

static int failures = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                      \
    }                                                                  \
  } while (0)

using trkx::Edges;

static Edges edges(std::vector<int64_t> s, std::vector<int64_t> d) { return Edges{std::move(s), std::move(d)}; }

static void radius_graph_matches_brute_force() {
  // random points in 4-d: the grid search finds every pair closer than r, none farther
  std::srand(3);
  const int64_t n = 400;
  const int dim = 4;
  std::vector<float> p(n * dim);
  for (auto& v : p) v = static_cast<float>(std::rand()) / RAND_MAX;
  const double r = 0.2;
  auto plain = [&](const std::vector<int64_t>& q, const std::vector<int64_t>& nb) {
    std::vector<float> d(q.size());
    for (size_t k = 0; k < q.size(); ++k)
      for (int a = 0; a < dim; ++a) d[k] += (p[q[k] * dim + a] - p[nb[k] * dim + a]) * (p[q[k] * dim + a] - p[nb[k] * dim + a]);
    return d;
  };
  const Edges e = trkx::radius_edges(p, n, dim, r, 1000, plain);
  size_t expected = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (i == j) continue;
      double d2 = 0;
      for (int a = 0; a < dim; ++a) d2 += std::pow(double(p[i * dim + a]) - double(p[j * dim + a]), 2);
      expected += d2 < r * r;
    }
  CHECK(e.size() == expected);
  for (size_t k = 1; k < e.size(); ++k)   // sorted by (query, neighbour)
    CHECK(e.src[k - 1] < e.src[k] || (e.src[k - 1] == e.src[k] && e.dst[k - 1] < e.dst[k]));
  // the cap keeps the k nearest of every query
  const Edges capped = trkx::radius_edges(p, n, dim, r, 3, plain);
  std::vector<int> degree(n);
  for (auto s : capped.src) ++degree[s];
  for (int d : degree) CHECK(d <= 3);
}

static void orientation_points_outwards_once() {
  const std::vector<float> r = {10, 30, 20}, z = {0, 0, 0};
  const Edges e = trkx::orient_and_dedup(edges({1, 0, 2, 1}, {0, 1, 1, 2}), r, z);
  CHECK(e.size() == 2);
  CHECK(e.src[0] == 0 && e.dst[0] == 1);
  CHECK(e.src[1] == 2 && e.dst[1] == 1);
}

static void components_are_canonical() {
  const auto l = trkx::component_labels(6, edges({5, 1}, {4, 2}));
  CHECK((l == std::vector<int64_t>{0, 1, 1, 2, 3, 3}));
}

static void walkthrough_splits_a_fork() {
  // 0 -> 1 -> 2 and 1 -> 3 (weaker): the best successor path keeps 0-1-2, hit 3 alone
  const Edges e = edges({0, 1, 1}, {1, 2, 3});
  const std::vector<float> score = {0.9f, 0.8f, 0.7f};
  const auto keep = trkx::best_successor_paths(4, e, score);
  CHECK(keep[0] && keep[1] && !keep[2]);
  trkx::TrackBuildingConfig cfg;
  cfg.min_hits = 2;
  const std::vector<float> r = {1, 2, 3, 4}, phi = {0, 0, 0, 0};
  const auto walk = trkx::build_tracks(cfg, 4, e, score, r, phi);
  CHECK((walk == std::vector<int64_t>{0, 0, 0, -1}));
  cfg.method = "cc";
  const auto cc = trkx::build_tracks(cfg, 4, e, score, r, phi);
  CHECK((cc == std::vector<int64_t>{0, 0, 0, 0}));
}

static void bad_hits_are_named() {
  const std::string path = "test_core_bad_hits.csv";
  std::ofstream(path) << "hit_id,x,y,z,volume_id,layer_id,module_id\n1,1,2,3,8,2,1\n2,1,nan,3,8,2,1\n";
  bool named = false;
  try {
    trkx::read_hits(path);
  } catch (const std::exception& err) {
    named = std::string(err.what()).find("line 3: column 'y'") != std::string::npos;
  }
  CHECK(named);
  std::remove(path.c_str());
}

int main() {
  radius_graph_matches_brute_force();
  orientation_points_outwards_once();
  components_are_canonical();
  walkthrough_splits_a_fork();
  bad_hits_are_named();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  else std::printf("all checks passed\n");
  return failures ? 1 : 0;
}
