"""Fragment merging (``trkx.ops.merging`` through the labeling stage): pieces of one simulated
helix are joined, pieces of different helices, of a kinked track or overlapping in radius are not."""
import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from trkx.config import ConfigError, parse_config
from trkx.ops.merging import circle_through, fragment_links, helix_parameters
from trkx.stage import NoCppPort
from trkx.stages.track_building.labeling import LabelingConfig, TrackLabeling

LAYERS = np.array([32.0, 72, 116, 172, 260, 360, 500, 660, 820, 1020])   # mm, barrel-like radii


def helix(pt, charge, phi0, cot, z0=0.0, radii=LAYERS, bfield=2.0):
    """(r, phi, z) of a helix from (0, 0, z0) where it crosses the cylinders ``radii``."""
    big_r = pt / (0.299792458 * bfield) * 1000.0                # mm
    turn = 2 * np.arcsin(radii / (2 * big_r))                    # angle turned at each radius
    centre = big_r * np.array([-math.sin(phi0), math.cos(phi0)]) * charge
    angle = phi0 + charge * turn
    x = centre[0] + charge * big_r * np.sin(angle)
    y = centre[1] - charge * big_r * np.cos(angle)
    return np.hypot(x, y), np.arctan2(y, x), z0 + cot * big_r * turn


def event_of(tracks, missing):
    """An event graph of hits on ``tracks`` (lists of (r, phi, z)), with an edge between
    consecutive hits of each track except the (track, position) pairs in ``missing``."""
    r, phi, z, edges, start = [], [], [], [], 0
    for t, (tr, tp, tz) in enumerate(tracks):
        r.append(tr), phi.append(tp), z.append(tz)
        edges += [(start + i, start + i + 1) for i in range(len(tr) - 1) if (t, i) not in missing]
        start += len(tr)
    ei = torch.tensor(edges, dtype=torch.long).T
    n = start
    return Data(num_nodes=n, edge_index=ei, gnn_score=torch.full((ei.shape[1],), 0.9),
                r=torch.tensor(np.concatenate(r), dtype=torch.float), phi=torch.tensor(np.concatenate(phi), dtype=torch.float),
                z=torch.tensor(np.concatenate(z), dtype=torch.float))


def label(event, **kw):
    cfg = LabelingConfig(method="junction", score_field="gnn_score", min_hits=3, **kw)
    return TrackLabeling(cfg).infer(event.clone()).track_id.numpy()


def n_tracks(labels):
    return len(set(labels[labels >= 0]))


def test_circle_through_three_points():
    xc, yc, radius = circle_through(np.array([0.0]), np.array([-5.0]), np.array([5.0]), np.array([0.0]),
                                    np.array([0.0]), np.array([5.0]))
    assert np.allclose([xc[0], yc[0], radius[0]], [0.0, 0.0, 5.0])


@pytest.mark.parametrize("charge", [1, -1])
@pytest.mark.parametrize("phi0", [-2.5, 0.3, 3.0])
def test_helix_parameters_of_a_fragment(charge, phi0):
    """phi0 is the direction at the beam line, for either charge, from an inner and an outer piece."""
    r, phi, z = helix(1.5, charge, phi0, 0.6)
    x, y = r * np.cos(phi), r * np.sin(phi)
    for ends in (np.array([[0], [2], [4]]), np.array([[5], [7], [9]])):
        got_phi0, slope = helix_parameters(ends, x, y, r, z)
        assert abs(math.remainder(got_phi0[0] - phi0, 2 * math.pi)) < 1e-6
        assert slope[0] == pytest.approx(0.6, rel=0.05)


@pytest.mark.parametrize("charge", [1, -1])
def test_fragments_of_one_helix_are_merged_others_not(charge):
    a = helix(1.2, charge, 0.3, 0.4)
    b = helix(2.0, -charge, 0.32, 0.45, z0=20.0)     # a neighbour in phi0 and cot theta, other charge
    event = event_of([a, b], missing={(0, 4), (1, 6)})
    assert n_tracks(label(event)) == 4
    merged = label(event, merge=True)
    assert n_tracks(merged) == 2
    assert len(set(merged[:10])) == 1 and len(set(merged[10:])) == 1 and merged[0] != merged[10]


def test_kinked_track_not_merged():
    """The outer piece bends with another curvature (as after a hard scatter): no circle fits."""
    inner, outer = helix(1.0, 1, 0.5, 0.2), helix(3.0, 1, 0.5, 0.2)
    track = tuple(np.concatenate([i[:5], o[5:]]) for i, o in zip(inner, outer))
    event = event_of([track], missing={(0, 4)})
    assert n_tracks(label(event, merge=True)) == 2
    # ... while a tolerance wide enough for the kink joins them
    assert n_tracks(label(event, merge=True, merge_tol_xy=500.0)) == 1


def test_fragments_overlapping_in_radius_not_merged():
    """Two fragments of one helix on alternating layers: neither starts after the other ends."""
    r, phi, z = helix(1.5, 1, 1.0, 0.1)
    odd, even = np.arange(1, 10, 2), np.arange(0, 10, 2)
    event = event_of([(r[even], phi[even], z[even]), (r[odd], phi[odd], z[odd])], missing=set())
    assert n_tracks(label(event, merge=True)) == 2


def test_three_fragments_chain_through_the_nearest():
    """A-B-C on one helix: A -> C fits as well as A -> B; the nearer B is chosen and all join."""
    event = event_of([helix(1.1, -1, 2.0, -0.7)], missing={(0, 2), (0, 5)})
    assert n_tracks(label(event)) == 3
    frags, links, chi2, gap = fragment_links(label(event), event.r, event.phi, event.z)
    assert links.shape[1] == 3 and (chi2 < 1).all()
    assert n_tracks(label(event, merge=True)) == 1


def test_merge_on_an_empty_event():
    event = Data(num_nodes=0, edge_index=torch.zeros((2, 0), dtype=torch.long), gnn_score=torch.zeros(0),
                 r=torch.zeros(0), phi=torch.zeros(0), z=torch.zeros(0))
    assert label(event, merge=True).size == 0


@pytest.mark.parametrize("key,value", [("merge_min_hits", 2), ("merge_tol_xy", 0.0), ("merge_max_gap", -1.0)])
def test_merge_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        parse_config(LabelingConfig, {"merge": True, key: value}, "labeling.yaml")


def test_merge_has_no_cpp_port():
    stage = TrackLabeling(LabelingConfig(method="junction", merge=True))
    with pytest.raises(NoCppPort, match="merge"):
        stage.cpp_lines()
