#include "radius_graph.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <unordered_map>

namespace trkx {

Edges radius_edges(const std::vector<float>& points, int64_t n, int dim, double r, int64_t k_max,
                   const PairDistance& distance) {
  const int g = std::min(dim, 3);
  const double r2 = r * r;
  // uniform grid of side r on the first g axes: neighbours lie in the 3^g surrounding cells
  std::vector<double> lo(g, INFINITY);
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < g; ++a) lo[a] = std::min(lo[a], static_cast<double>(points[i * dim + a]));
  std::vector<int64_t> cell(n * g);
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < g; ++a) cell[i * g + a] = static_cast<int64_t>(std::floor((points[i * dim + a] - lo[a]) / r));
  auto key = [](const int64_t* c, int g) {
    uint64_t k = 1469598103934665603ull;
    for (int a = 0; a < g; ++a) k = (k ^ static_cast<uint64_t>(c[a] + (1 << 20))) * 1099511628211ull;
    return k;
  };
  std::unordered_map<uint64_t, std::vector<int64_t>> grid;
  for (int64_t i = 0; i < n; ++i) grid[key(&cell[i * g], g)].push_back(i);

  std::vector<std::vector<int64_t>> nbrs(n);
  int64_t offsets = 1;
  for (int a = 0; a < g; ++a) offsets *= 3;
  std::vector<int64_t> c(g);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < offsets; ++o) {
      int64_t rest = o;
      for (int a = 0; a < g; ++a) { c[a] = cell[i * g + a] + rest % 3 - 1; rest /= 3; }
      auto it = grid.find(key(c.data(), g));
      if (it == grid.end()) continue;
      for (int64_t j : it->second) {
        if (j <= i) continue;
        // a hash collision brings another cell's points: the exact test below rejects them
        double d2 = 0.0;
        for (int a = 0; a < dim; ++a) {
          const double d = static_cast<double>(points[i * dim + a]) - static_cast<double>(points[j * dim + a]);
          d2 += d * d;
        }
        if (d2 < r2) { nbrs[i].push_back(j); nbrs[j].push_back(i); }
      }
    }
  }
  // the k_max cap: over-cap queries keep their nearest (float32 distance, then smaller index)
  std::vector<int64_t> q, nb;
  for (int64_t i = 0; i < n; ++i)
    if (k_max >= 0 && static_cast<int64_t>(nbrs[i].size()) > k_max)
      for (int64_t j : nbrs[i]) { q.push_back(i); nb.push_back(j); }
  if (!q.empty()) {
    const std::vector<float> d2 = distance(q, nb);
    std::vector<size_t> order(q.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (q[a] != q[b]) return q[a] < q[b];
      if (d2[a] != d2[b]) return d2[a] < d2[b];
      return nb[a] < nb[b];
    });
    for (size_t s = 0; s < order.size();) {
      const int64_t query = q[order[s]];
      std::vector<int64_t> kept;
      size_t e = s;
      for (; e < order.size() && q[order[e]] == query; ++e)
        if (static_cast<int64_t>(kept.size()) < k_max) kept.push_back(nb[order[e]]);
      nbrs[query] = kept;
      s = e;
    }
  }
  Edges out;
  for (int64_t i = 0; i < n; ++i) {
    std::sort(nbrs[i].begin(), nbrs[i].end());
    for (int64_t j : nbrs[i]) { out.src.push_back(i); out.dst.push_back(j); }
  }
  return out;
}

Edges orient_and_dedup(const Edges& directed, const std::vector<float>& r, const std::vector<float>& z) {
  const int64_t n = static_cast<int64_t>(r.size());
  std::vector<int64_t> keys(directed.size());
  for (size_t k = 0; k < directed.size(); ++k) {
    int64_t s = directed.src[k], d = directed.dst[k];
    const double ds = std::sqrt(static_cast<double>(r[s]) * r[s] + static_cast<double>(z[s]) * z[s]);
    const double dd = std::sqrt(static_cast<double>(r[d]) * r[d] + static_cast<double>(z[d]) * z[d]);
    if (ds > dd || (ds == dd && s > d)) std::swap(s, d);
    keys[k] = s * n + d;
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  Edges out;
  for (int64_t k : keys) { out.src.push_back(k / n); out.dst.push_back(k % n); }
  return out;
}

}  // namespace trkx
