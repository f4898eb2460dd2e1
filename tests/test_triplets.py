"""The module map's triplet windows: the sorted search against testing every pair of consecutive
edges, the truth they keep, the stage with triplets on (saved, loaded, exported to TorchScript)."""
import math

import pytest
import torch

from trkx.config import ConfigError, parse_config
from trkx.event import orient_and_dedup
from trkx.ops.triplets import (build_triplet_windows, consecutive_pairs, group_quantiles, segment_directions,
                               triplet_features, triplet_keep, triplet_tables)
from trkx.stages.graph_construction.module_map import (ModuleMap, ModuleMapConfig, ModuleMapGraph, TripletConfig,
                                                       map_truth_edges)


def random_layers(n_hits=900, n_layers=5, seed=4):
    """Hits on cylinders r = 40, 80, ... mm, spread over a quarter turn in φ (across φ = ±π)."""
    g = torch.Generator().manual_seed(seed)
    layer = torch.randint(0, n_layers, (n_hits,), generator=g)
    r = 40.0 * (layer.float() + 1) + torch.rand(n_hits, generator=g)
    phi = torch.remainder(math.pi - 0.8 + 1.6 * torch.rand(n_hits, generator=g) + math.pi, 2 * math.pi) - math.pi
    z = 200.0 * torch.randn(n_hits, generator=g)
    return layer * 7 + 3, r, phi, z, g                     # layer keys need not be 0..L-1


def test_triplet_search_matches_every_consecutive_pair_test():
    layer, r, phi, z, g = random_layers()
    n = len(r)
    edges = torch.randint(0, n, (2, 6000), generator=g)
    edges = edges[:, layer[edges[1]] > layer[edges[0]]]
    edges = torch.unique(edges, dim=1)
    keys = torch.unique(layer)
    # windows for some layer triplets only; random widths
    trip = torch.tensor([[0, 1, 2], [1, 2, 3], [0, 2, 3], [2, 3, 4], [1, 3, 4], [0, 1, 3]])
    lo = torch.stack([-30 - 90 * torch.rand(len(trip), generator=g), -10 - 20 * torch.rand(len(trip), generator=g)], 1)
    hi = torch.stack([30 + 90 * torch.rand(len(trip), generator=g), 5 + 20 * torch.rand(len(trip), generator=g)], 1)
    tables = triplet_tables({"layers": keys, "triplets": trip, "lo": lo, "hi": hi})
    got = triplet_keep(edges, layer, r, phi, z, **tables)
    # brute force: every pair of consecutive edges, its layer triplet's window if it has one
    first, second = consecutive_pairs(edges, n)
    rank = torch.searchsorted(keys, layer)
    t = torch.stack([rank[edges[0, first]], rank[edges[1, first]], rank[edges[1, second]]], 1)
    psi, cot = segment_directions(edges, r, phi, z)
    f = triplet_features(psi, cot, first, second)
    want = torch.zeros(edges.shape[1], dtype=torch.bool)
    for k, row in enumerate(trip):
        ok = (t == row).all(1) & ((f >= lo[k]) & (f <= hi[k])).all(1)
        want[first[ok]] = True
        want[second[ok]] = True
    assert len(first) > 2000 and 100 < int(want.sum()) < edges.shape[1] - 100
    assert torch.equal(got, want)


def test_group_quantiles_by_nearest_rank():
    group = torch.tensor([1, 0, 1, 1, 0, 1, 1])
    values = torch.tensor([[5.0], [2.0], [1.0], [4.0], [8.0], [3.0], [2.0]])
    assert group_quantiles(group, 2, values, 0.0).squeeze(1).tolist() == [2.0, 1.0]
    assert group_quantiles(group, 2, values, 1.0).squeeze(1).tolist() == [8.0, 5.0]
    assert group_quantiles(group, 2, values, 0.5).squeeze(1).tolist() == [2.0, 3.0]   # ranks round(0.5) = 0, 2


def test_windows_from_truth_keep_the_truth_triplets_and_cut_outliers():
    keys = torch.tensor([[1, 2, 3]] * 1000 + [[2, 3, 4]] * 10)
    feats = torch.randn(1010, 2)
    feats[0] = torch.tensor([50.0, -50.0])                 # one outlier in the first triplet
    w = build_triplet_windows(keys, feats, quantile=0.0, margin=0.0)
    assert w["layers"].tolist() == [1, 2, 3, 4] and w["triplets"].tolist() == [[0, 1, 2], [1, 2, 3]]
    assert w["hi"][0, 0] == pytest.approx(50.0, abs=0.01) and w["lo"][0, 1] == pytest.approx(-50.0, abs=0.01)
    robust = build_triplet_windows(keys, feats, quantile=0.01, margin=0.1)
    assert robust["hi"][0, 0] < 5.0 and robust["lo"][0, 1] > -5.0


def test_module_map_with_triplets_keeps_the_truth_and_cuts_edges(tiny_events, tmp_path):
    train, event = tiny_events[:3], tiny_events[3]
    doublets = ModuleMap(ModuleMapConfig(pt_min=0.0, min_hits=3, margin=0.5))
    doublets.fit(train, [event])
    stage = ModuleMap(ModuleMapConfig(pt_min=0.0, min_hits=3, margin=0.5,
                                      triplets=TripletConfig(enabled=True, quantile=0.0, margin=0.2)))
    report = stage.fit(train, [event])
    assert report["layer_triplets"] > 10
    a, b = doublets.infer(event.clone()), stage.infer(event.clone())
    n = event.num_nodes
    kept = set((b.edge_index[0] * n + b.edge_index[1]).tolist())
    assert kept < set((a.edge_index[0] * n + a.edge_index[1]).tolist())
    # windows learned from an event itself (quantile 0, no margin) keep all of its map truth edges
    own = ModuleMap(ModuleMapConfig(pt_min=0.0, min_hits=3, margin=0.0,
                                    triplets=TripletConfig(enabled=True, quantile=0.0, margin=0.0)))
    own.fit([event], [event])
    truth = map_truth_edges(event, 0.0, 3)
    assert truth.shape[1] > 50
    assert set((truth[0] * n + truth[1]).tolist()) <= set(own.infer(event.clone()).edge_index[0].mul(n)
                                                          .add(own.infer(event.clone()).edge_index[1]).tolist())
    # saved, loaded, and exported: the same edges
    stage.save(tmp_path / "map.pt")
    other = ModuleMap(stage.config)
    other.load(tmp_path / "map.pt")
    assert torch.equal(other.infer(event.clone()).edge_index, b.edge_index)
    scripted = torch.jit.script(ModuleMapGraph(stage.map, 10**7, "module"))
    out = scripted(event.volume_id, event.layer_id, event.module_id, event.r, event.phi, event.z)
    assert torch.equal(orient_and_dedup(event, out), b.edge_index)
    # a map without triplet windows does not load into a config that wants them
    doublets.save(tmp_path / "doublets.pt")
    with pytest.raises(ValueError, match="triplet"):
        other.load(tmp_path / "doublets.pt")


def test_triplet_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="triplets.quantile"):
        parse_config(ModuleMapConfig, {"triplets": {"enabled": True, "quantile": 0.7}}, "map.yaml")
    with pytest.raises(ConfigError, match="triplets"):
        parse_config(ModuleMapConfig, {"triplets": {"enable": True}}, "map.yaml")
