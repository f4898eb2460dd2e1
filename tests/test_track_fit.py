"""The helix-fit selection (``trkx.ops.track_fit`` through the labeling stage): hits of one
simulated helix lie on its circle and its (arc length, z) line; a candidate that switches to
another particle part way does not, and the selection leaves it unassigned."""
import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from test_merging import LAYERS, event_of, helix, label, n_tracks
from trkx.config import ConfigError, parse_config
from trkx.ops.track_fit import helix_residuals
from trkx.stage import NoCppPort
from trkx.stages.track_building.labeling import LabelingConfig, TrackLabeling


@pytest.mark.parametrize("pt, cot", [(10.0, 0.3), (0.6, 2.0), (0.6, -0.8)])
def test_one_helix_fits_its_circle_and_line(pt, cot):
    # at 0.6 GeV the helix turns by 1.1 rad over the layers, where arc length and chord differ by
    # 5%: the line in z is straight in the arc length, not in the radius
    r, phi, z = helix(pt, 1, 0.4, cot, z0=12.0)
    tracks, off_circle, off_line = helix_residuals(np.zeros(r.size, dtype=np.int64), *map(torch.tensor, (r, phi, z)))
    assert tracks.tolist() == [0]
    assert off_circle[0] < 1e-3 and off_line[0] < 1e-2


def switching_event():
    """Two helices of different pT and slope; a third candidate takes the inner half of one and
    the outer half of the other."""
    a, b = helix(3.0, 1, 0.2, 0.5), helix(1.2, -1, 0.25, 0.7)
    half = len(LAYERS) // 2
    mixed = tuple(np.concatenate([p[:half], q[half:]]) for p, q in zip(helix(3.0, 1, 1.5, 0.5), helix(1.2, -1, 1.55, 0.7)))
    return event_of([a, b, mixed], missing=set())


def test_switching_candidate_is_off_its_helix():
    event = switching_event()
    labels = np.repeat([0, 1, 2], len(LAYERS))
    tracks, off_circle, off_line = helix_residuals(labels, event.r, event.phi, event.z)
    assert off_circle[:2].max() < 0.05 and off_line[:2].max() < 0.05
    assert off_circle[2] > 5.0


def test_fit_selection_drops_only_the_switching_candidate():
    event = switching_event()
    assert n_tracks(label(event)) == 3
    labels = label(event, max_off_circle=1.0)
    assert n_tracks(labels) == 2
    assert (labels[2 * len(LAYERS):] == -1).all() and (labels[:2 * len(LAYERS)] >= 0).all()
    assert n_tracks(label(event, max_off_line=1.0)) < 3      # the slopes differ too


def test_fit_selection_on_an_empty_event():
    cfg = LabelingConfig(method="junction", score_field="gnn_score", max_off_circle=1.0)
    empty = Data(num_nodes=0, edge_index=torch.zeros((2, 0), dtype=torch.long), gnn_score=torch.zeros(0),
                 r=torch.zeros(0), phi=torch.zeros(0), z=torch.zeros(0))
    assert TrackLabeling(cfg).infer(empty).track_id.numel() == 0


@pytest.mark.parametrize("key", ["max_off_circle", "max_off_line"])
def test_fit_selection_config_errors(key):
    with pytest.raises(ConfigError, match=key):
        parse_config(LabelingConfig, {key: -1.0}, "labeling.yaml")


def test_fit_selection_has_no_cpp_port():
    stage = TrackLabeling(LabelingConfig(method="junction", score_field="s", max_off_circle=2.0))
    with pytest.raises(NoCppPort, match="helix-fit"):
        stage.cpp_lines()
