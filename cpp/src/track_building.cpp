#include "track_building.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace trkx {
namespace {

int64_t find(std::vector<int64_t>& parent, int64_t i) {
  while (parent[i] != i) { parent[i] = parent[parent[i]]; i = parent[i]; }
  return i;
}

Edges subset(const Edges& e, const std::vector<bool>& keep) {
  Edges out;
  for (size_t k = 0; k < e.size(); ++k)
    if (keep[k]) { out.src.push_back(e.src[k]); out.dst.push_back(e.dst[k]); }
  return out;
}

std::vector<float> subset(const std::vector<float>& v, const std::vector<bool>& keep) {
  std::vector<float> out;
  for (size_t k = 0; k < v.size(); ++k)
    if (keep[k]) out.push_back(v[k]);
  return out;
}

// labels renumbered 0, 1, ... in order of each label's first node (canonical_labels)
std::vector<int64_t> canonical(const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> id;
  std::vector<int64_t> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    auto it = id.emplace(labels[i], static_cast<int64_t>(id.size())).first;
    out[i] = it->second;
  }
  return out;
}

// labels >= 0 renumbered 0..K-1 in order of their values; -1 stays (renumber)
std::vector<int64_t> renumber(const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> id;
  for (int64_t l : labels) if (l >= 0) id.emplace(l, 0);
  int64_t next = 0;
  for (auto& kv : id) kv.second = next++;
  std::vector<int64_t> out(labels.size(), -1);
  for (size_t i = 0; i < labels.size(); ++i) if (labels[i] >= 0) out[i] = id[labels[i]];
  return out;
}

// pT (GeV) of tracks 0..K-1 from the circle through the innermost, middle and outermost hit
std::vector<double> track_pt(const std::vector<int64_t>& tid, const std::vector<float>& r,
                             const std::vector<float>& phi, double bfield) {
  int64_t k = 0;
  for (int64_t t : tid) k = std::max(k, t + 1);
  std::vector<std::vector<std::pair<double, size_t>>> hits(k);
  for (size_t i = 0; i < tid.size(); ++i)
    if (tid[i] >= 0) hits[tid[i]].push_back({static_cast<double>(r[i]), i});
  std::vector<double> pt(k, INFINITY);
  for (int64_t t = 0; t < k; ++t) {
    auto& h = hits[t];
    std::stable_sort(h.begin(), h.end(), [](auto& a, auto& b) { return a.first < b.first; });
    const size_t c = h.size();
    auto xy = [&](size_t j) {
      const double rr = r[h[j].second], pp = phi[h[j].second];
      return std::pair<double, double>{rr * std::cos(pp), rr * std::sin(pp)};
    };
    auto [xa, ya] = xy(0);
    auto [xb, yb] = xy(c / 2);
    auto [xc, yc] = xy(c - 1);
    const double ab = std::hypot(xb - xa, yb - ya), bc = std::hypot(xc - xb, yc - yb), ca = std::hypot(xa - xc, ya - yc);
    const double cross = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa);
    const double curvature = 2 * std::abs(cross) / std::max(ab * bc * ca, 1e-12);
    const double radius_m = curvature > 0 ? 1e-3 / curvature : INFINITY;
    pt[t] = static_cast<float>(0.299792458 * bfield * radius_m);
  }
  return pt;
}

}  // namespace

std::vector<int64_t> component_labels(int64_t n, const Edges& edges) {
  std::vector<int64_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  for (size_t k = 0; k < edges.size(); ++k) {
    const int64_t a = find(parent, edges.src[k]), b = find(parent, edges.dst[k]);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
  std::vector<int64_t> root(n);
  for (int64_t i = 0; i < n; ++i) root[i] = find(parent, i);
  return canonical(root);
}

std::vector<bool> best_successor_paths(int64_t n, const Edges& e, const std::vector<float>& score) {
  const size_t m = e.size();
  const int64_t none = static_cast<int64_t>(m);
  std::vector<float> best_out(n, -INFINITY);
  for (size_t k = 0; k < m; ++k) best_out[e.src[k]] = std::max(best_out[e.src[k]], score[k]);
  std::vector<int64_t> first(n, none);
  for (size_t k = 0; k < m; ++k)
    if (score[k] >= best_out[e.src[k]]) first[e.src[k]] = std::min<int64_t>(first[e.src[k]], k);
  std::vector<bool> chosen(m);
  std::vector<float> best_in(n, -INFINITY);
  for (size_t k = 0; k < m; ++k) {
    chosen[k] = first[e.src[k]] == static_cast<int64_t>(k);
    best_in[e.dst[k]] = std::max(best_in[e.dst[k]], chosen[k] ? score[k] : -1.0f);
  }
  std::vector<int64_t> first_in(n, none);
  for (size_t k = 0; k < m; ++k) {
    chosen[k] = chosen[k] && score[k] >= best_in[e.dst[k]];
    if (chosen[k]) first_in[e.dst[k]] = std::min<int64_t>(first_in[e.dst[k]], k);
  }
  for (size_t k = 0; k < m; ++k) chosen[k] = chosen[k] && first_in[e.dst[k]] == static_cast<int64_t>(k);
  return chosen;
}

std::vector<int64_t> build_tracks(const TrackBuildingConfig& cfg, int64_t n, const Edges& edges,
                                  const std::vector<float>& score, const std::vector<float>& r,
                                  const std::vector<float>& phi) {
  std::vector<bool> strong_mask(edges.size());
  for (size_t k = 0; k < edges.size(); ++k) strong_mask[k] = score[k] > cfg.cut;
  const Edges strong = subset(edges, strong_mask);
  std::vector<int64_t> labels;
  if (cfg.method == "cc") {
    labels = component_labels(n, strong);
  } else if (cfg.method == "junction") {
    labels = component_labels(n, subset(strong, best_successor_paths(n, strong, subset(score, strong_mask))));
  } else if (cfg.method == "walkthrough") {
    labels = component_labels(n, strong);
    std::vector<int64_t> deg_out(n), deg_in(n);
    for (size_t k = 0; k < strong.size(); ++k) { ++deg_out[strong.src[k]]; ++deg_in[strong.dst[k]]; }
    const int64_t n_labels = n ? *std::max_element(labels.begin(), labels.end()) + 1 : 0;
    std::vector<bool> branching(n_labels);
    for (int64_t i = 0; i < n; ++i) if (deg_out[i] > 1 || deg_in[i] > 1) branching[labels[i]] = true;
    std::vector<bool> merged(n);
    bool any = false;
    for (int64_t i = 0; i < n; ++i) any |= (merged[i] = branching[labels[i]]);
    if (any) {
      std::vector<bool> inside(edges.size());
      for (size_t k = 0; k < edges.size(); ++k)
        inside[k] = merged[edges.src[k]] && merged[edges.dst[k]] && score[k] > cfg.walk_cut;
      const Edges sub = subset(edges, inside);
      const auto walk = component_labels(n, subset(sub, best_successor_paths(n, sub, subset(score, inside))));
      for (int64_t i = 0; i < n; ++i) if (merged[i]) labels[i] = walk[i] + n_labels;
      labels = canonical(labels);
    }
  } else {
    throw std::runtime_error("labeling: method '" + cfg.method + "' has no C++ port");
  }
  // drop_small: components under min_hits are unassigned, the rest renumbered
  std::map<int64_t, int64_t> size;
  for (int64_t l : labels) ++size[l];
  for (auto& l : labels) if (size[l] < cfg.min_hits) l = -1;
  labels = renumber(labels);
  if (cfg.min_pt > 0) {
    const auto pt = track_pt(labels, r, phi, cfg.bfield_tesla);
    for (auto& l : labels) if (l >= 0 && !(pt[l] >= cfg.min_pt)) l = -1;
    labels = renumber(labels);
  }
  return labels;
}

}  // namespace trkx
