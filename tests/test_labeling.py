"""Labeling methods on hand-built graphs: crossing tracks, a merged component, an empty graph."""
import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from trkx.stages.track_building.labeling import (LabelingConfig, TrackLabeling, best_successor_paths, canonical_labels,
                                  connected_component_labels, cugraph_available)

METHODS = ["cc", "walkthrough", "assignment"]


def graph(n, edges, scores, layers=None):
    ei = torch.tensor(edges, dtype=torch.long).T if edges else torch.zeros((2, 0), dtype=torch.long)
    layer = torch.tensor(layers if layers is not None else list(range(n)))
    return Data(num_nodes=n, edge_index=ei, gnn_score=torch.tensor(scores, dtype=torch.float),
                volume_id=torch.full((n,), 8), layer_id=layer)


def label(event, method, **kw):
    stage = TrackLabeling(LabelingConfig(method=method, score_field="gnn_score", **kw))
    return stage.infer(event).track_id.numpy()


def same_partition(a, b):
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def crossing_tracks():
    """Track A: hits 0-1-2-3-4, track B: 5-6-7-8-9; they cross at layer 2 where a fake edge 1->7
    and 6->2 compete with the true ones (lower scores)."""
    true = [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (8, 9)]
    fake = [(1, 7), (6, 2)]
    return graph(10, true + fake, [.9] * 8 + [.3, .3], layers=[0, 1, 2, 3, 4, 0, 1, 2, 3, 4])


@pytest.mark.parametrize("method", METHODS)
def test_two_crossing_tracks(method):
    labels = label(crossing_tracks(), method)
    assert same_partition(labels, [0] * 5 + [1] * 5)


def test_merged_component_split_by_walkthrough_and_assignment():
    """The fake edges score above the CC cut: CC merges both tracks, the others separate them."""
    e = crossing_tracks()
    e.gnn_score[-2:] = 0.6
    assert len(set(label(e.clone(), "cc"))) == 1
    for method in ("walkthrough", "assignment"):
        assert same_partition(label(e.clone(), method), [0] * 5 + [1] * 5), method


@pytest.mark.parametrize("method", METHODS)
def test_empty_graph(method):
    e = graph(4, [], [])
    assert (label(e, method) == -1).all()


@pytest.mark.parametrize("method", METHODS)
def test_short_candidates_unassigned(method):
    e = graph(5, [(0, 1), (2, 3), (3, 4)], [.9, .9, .9])
    labels = label(e, method, min_hits=3)
    assert labels[0] == labels[1] == -1 and labels[2] == labels[3] == labels[4] >= 0


@pytest.mark.parametrize("solver", ["sparse", "dense"])
@pytest.mark.parametrize("mode", ["global", "layer_pairs"])
def test_assignment_modes_and_solvers(solver, mode):
    e = crossing_tracks()
    e.gnn_score[-2:] = 0.6
    labels = label(e, "assignment", assignment_solver=solver, assignment_mode=mode)
    assert same_partition(labels, [0] * 5 + [1] * 5)


def test_best_successor_paths_resolves_conflicts():
    # 0 -> 1 (.9), 0 -> 2 (.8), 3 -> 1 (.95): node 1 is taken by 3; 0 keeps nothing (its best is lost)
    ei = torch.tensor([[0, 0, 3], [1, 2, 1]])
    keep = best_successor_paths(ei, torch.tensor([.9, .8, .95]), 4)
    assert keep.tolist() == [False, False, True]


def test_canonical_labels_backend_independent():
    assert canonical_labels(np.array([7, 7, 3, 9, 3])).tolist() == [0, 0, 1, 2, 1]


def test_connected_components_scipy():
    ei = torch.tensor([[0, 2], [1, 3]])
    assert connected_component_labels(ei, 5, "scipy").tolist() == [0, 0, 1, 1, 2]


@pytest.mark.skipif(not cugraph_available(), reason="needs a GPU with cugraph")
def test_cugraph_same_labels_as_scipy():
    rng = np.random.default_rng(0)
    ei = torch.as_tensor(rng.integers(0, 2000, (2, 1500)))
    assert (connected_component_labels(ei, 2000, "cugraph") == connected_component_labels(ei, 2000, "scipy")).all()


def test_forward_candidates_need_fewer_hits():
    """min_hits 5, but 3 hits suffice from |eta| 3 on: a 3-hit forward track stays, a 3-hit central
    one and every 2-hit one go; a 5-hit central track stays whatever the forward rule."""
    central = [(30., 0.), (70., 10.), (120., 20.)]                # |eta| ~ 0.2
    forward = [(30., 600.), (60., 1200.), (90., 1800.)]           # cot theta 20: |eta| ~ 3.7
    long_central = [(30., 0.), (70., 5.), (120., 10.), (170., 15.), (260., 20.)]
    short_forward = [(30., 600.), (60., 1200.)]
    tracks = [central, forward, long_central, short_forward]
    r, z, edges, start = [], [], [], 0
    for hits in tracks:
        r += [h[0] for h in hits]
        z += [h[1] for h in hits]
        edges += [(start + i, start + i + 1) for i in range(len(hits) - 1)]
        start += len(hits)
    n = start
    e = graph(n, edges, [.9] * len(edges))
    e.r, e.z, e.phi = torch.tensor(r), torch.tensor(z), torch.zeros(n)
    fwd = [{"abs_eta": 3.0, "min_hits": 3}]
    from trkx.stages.track_building.labeling import ForwardHits
    labels = label(e.clone(), "cc", min_hits=5, min_hits_eta=[ForwardHits(**f) for f in fwd])
    kept = [sorted(set(labels[a:b])) for a, b in ((0, 3), (3, 6), (6, 11), (11, 13))]
    assert kept[0] == [-1] and kept[3] == [-1]
    assert len(kept[1]) == 1 and kept[1][0] >= 0 and len(kept[2]) == 1 and kept[2][0] >= 0
    assert len({kept[1][0], kept[2][0]}) == 2
    plain = label(e.clone(), "cc", min_hits=5)
    assert (plain[:6] == -1).all() and (plain[6:11] >= 0).all()


@pytest.mark.parametrize("value, message", [([{"abs_eta": 3.0}], "min_hits_eta[0].min_hits"),
                                            ([{"abs_eta": -1.0, "min_hits": 3}], "min_hits_eta[0]"),
                                            (3, "min_hits_eta")])
def test_forward_hits_config_errors_name_the_key(value, message):
    from trkx.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(LabelingConfig, {"min_hits_eta": value}, "labeling.yaml")
