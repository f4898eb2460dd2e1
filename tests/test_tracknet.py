"""TrackNETv2: the stepping network is the sequence network; its ellipse learns to hold the next
hit of a straight track; the follower rebuilds separated tracks on barrel layers and on planes."""
import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from trkx.config import parse_config
from trkx.losses import tracknet_loss
from trkx.models.tracknet import TrackNETConfig, TrackNETv2, ellipse_distance
from trkx.stages.track_building.tracknet import (HIT_FEATURES, STATION_FEATURES, TrackNETModule, TrackNETStageConfig,
                                                 build_stations, follow, hit_order, training_sequences)


def straight_tracks(n_tracks=40, seed=0, planes=False):
    """Straight tracks from the origin through 8 barrel layers (r = 60 ... 480 mm) or, with
    ``planes``, 8 planes (z = 300 ... 370 mm) of a beam along z; the truth edges in order."""
    g = np.random.default_rng(seed)
    phi0 = np.linspace(-math.pi, math.pi, n_tracks, endpoint=False) + g.uniform(0, 0.05, n_tracks)
    rows = []
    for k in range(8):
        if planes:
            z = np.full(n_tracks, 300.0 + 10 * k)
            r = 0.15 * z * (1 + 0.3 * np.sin(3 * phi0))
        else:
            r = np.full(n_tracks, 60.0 * (k + 1))
            z = r * np.linspace(-1.5, 1.5, n_tracks)
        rows.append((r, phi0.copy(), z, np.full(n_tracks, k)))
    r, phi, z, layer = (np.concatenate(c) for c in zip(*rows))
    pid = np.tile(np.arange(1, n_tracks + 1), 8)
    n = r.size
    idx = np.arange(n).reshape(8, n_tracks)
    edges = np.stack([idx[:-1].ravel(), idx[1:].ravel()])
    t = lambda a, dt=torch.float: torch.as_tensor(a, dtype=dt)   # noqa: E731
    return Data(num_nodes=n, r=t(r), phi=t(phi), z=t(z), volume_id=torch.full((n,), 2 if planes else 8),
                layer_id=t(layer * 2 + 2, torch.long), module_id=torch.ones(n, dtype=torch.long),
                particle_id=t(pid, torch.long), pt=torch.full((n,), 5.0), track_edges=t(edges, torch.long),
                hit_id=torch.arange(1, n + 1), event_id=torch.tensor(seed))


def config(**kw):
    return parse_config(TrackNETStageConfig, {"hidden": 16, "conv_features": 16, "local_scale": 10.0, "slices": 1, **kw},
                        "tracknet.yaml")


def train(events, cfg, steps):
    stations = build_stations(events, cfg.slices)
    torch.manual_seed(0)
    module = TrackNETModule(TrackNETv2(HIT_FEATURES, STATION_FEATURES, cfg), None, cfg)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    batches = [training_sequences(e, stations, cfg) for e in events]
    for i in range(steps):
        opt.zero_grad()
        module.terms(batches[i % len(batches)])[2].backward()
        opt.step()
    return module, stations


def test_hit_order_counts_the_hits_before_each():
    edges = torch.tensor([[4, 0, 2], [0, 2, 5]])        # one particle: 4 -> 0 -> 2 -> 5; hits 1, 3 in none
    assert hit_order(edges, 6).tolist() == [1, -1, 2, -1, 0, 3]


def test_stepping_is_the_sequence_network():
    torch.manual_seed(0)
    net = TrackNETv2(HIT_FEATURES, STATION_FEATURES, TrackNETConfig(hidden=8, conv_features=8))
    hits, stations = torch.randn(3, 5, HIT_FEATURES), torch.randn(3, 4, STATION_FEATURES)
    whole = net(hits, stations)
    state, window = net.initial_state(3, HIT_FEATURES)
    for t in range(4):
        state, window = net.step(state, window, hits[:, t])
        assert torch.allclose(net.ellipse(state, stations[:, t]), whole[:, t], atol=1e-6)
    # the loss: Ariadne's distance in semi-axes plus the area term
    pred = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    assert float(ellipse_distance(pred, torch.tensor([[2.0, 0.0]]))) == pytest.approx(1.0)
    assert float(tracknet_loss(pred, torch.tensor([[0.0, 1.0]]), 0.9, 0.1)) == pytest.approx(0.9 + 0.2)


def test_ellipse_holds_the_next_hit_of_a_straight_track_after_training():
    cfg = config()
    events = [straight_tracks(seed=s) for s in range(3)]
    untrained, stations = train(events, cfg, steps=0)
    module, _ = train(events, cfg, steps=80)
    test = training_sequences(straight_tracks(seed=9), stations, cfg)
    with torch.no_grad():
        inside = [float((ellipse_distance(*m.terms(test)[:2]) <= 1.0).float().mean()) for m in (untrained, module)]
    assert inside[1] >= 0.95 and inside[1] > inside[0]


def test_follower_rebuilds_separated_tracks_on_barrels_and_on_planes():
    for planes in (False, True):
        cfg = config(max_gap=200.0, min_hits=3)
        events = [straight_tracks(seed=s, planes=planes) for s in range(3)]
        module, stations = train(events, cfg, steps=100)
        stations["radius"] = torch.tensor([2.0, 2.0], dtype=torch.double)
        event = straight_tracks(seed=7, planes=planes)
        with torch.no_grad():
            labels = follow(module.net, event, stations, cfg)
        pid = event.particle_id.numpy()
        perfect = sum(len(set(labels[pid == p])) == 1 and (labels == labels[pid == p][0]).sum() == 8
                      for p in np.unique(pid))
        assert perfect >= 0.9 * len(np.unique(pid)), (planes, perfect)
        assert bool(stations["barrel"].all()) != planes


def test_an_empty_event_gives_no_tracks_and_unassigned_hits_stay_unassigned():
    from trkx.stages.track_building.labeling import drop_small
    cfg = config()
    module, stations = train([straight_tracks(seed=0)], cfg, steps=2)
    full = straight_tracks(seed=1)
    none = torch.zeros(full.num_nodes, dtype=torch.bool)
    empty = Data(num_nodes=0, **{k: full[k][none] for k in ("r", "phi", "z", "volume_id", "layer_id", "module_id")})
    with torch.no_grad():
        assert follow(module.net, empty, stations, cfg).size == 0
    assert drop_small(np.array([-1, 0, 0, 1]), 2).tolist() == [-1, 0, 0, -1]
