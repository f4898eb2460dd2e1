"""One-shot tracking: object condensation and influencer condensation losses, clustering, training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_pipeline

from trkx.losses import influencer_loss, object_condensation_loss, same_object_pairs
from trkx.stages.track_building.condensation import condensation_tracks, density_tracks, influencer_tracks, keep_tracks

# two tracks of three hits (objects 0 and 1) and one noise hit
OBJ = torch.tensor([0, 0, 0, 1, 1, 1, -1])
A, B, FAR = [0.0, 0.0], [5.0, 0.0], [0.0, 9.0]


def swapped(x: torch.Tensor) -> torch.Tensor:
    """Hits 1 and 4 (one of each track) exchange their places in the clustering space."""
    x = x.clone()
    x[[1, 4]] = x[[4, 1]]
    return x


def test_object_condensation_loss_is_minimal_when_condensed_and_grows_when_hits_swap():
    x = torch.tensor([A, A, A, B, B, B, FAR])
    beta = torch.tensor([0.9, 0.1, 0.1, 0.1, 0.95, 0.1, 0.0])
    good = object_condensation_loss(x, beta, OBJ, 2)
    assert good["attractive"] == 0 and good["repulsive"] == 0 and good["noise"] == 0
    assert good["beta"] == pytest.approx((0.1 + 0.05) / 2)
    bad = object_condensation_loss(swapped(x), beta, OBJ, 2)
    assert bad["attractive"] > 1.0 and bad["repulsive"] > 0.1
    # a noise hit with a high β is penalised; a weak condensation point too
    assert object_condensation_loss(x, torch.where(OBJ < 0, 0.8, beta), OBJ, 2)["noise"] == pytest.approx(0.8)
    assert object_condensation_loss(x, beta * 0.5, OBJ, 2)["beta"] > good["beta"]


def test_object_condensation_loss_weighs_every_track_the_same():
    # track 0: condensation point at the origin and one hit 0.5 away; track 1: five hits far apart,
    # sitting on their condensation point.  Track 0 alone sets the attraction: (0.5² q q_α) / 2 hits,
    # halved by the mean over two tracks, whatever the length of track 1.
    for n_other in (2, 5):
        x = torch.tensor([[0.0, 0.0], [0.5, 0.0]] + [[10.0, 10.0]] * n_other)
        beta = torch.tensor([0.9, 0.0] + [0.9] + [0.0] * (n_other - 1))
        obj = torch.tensor([0, 0] + [1] * n_other)
        q_alpha = float(torch.atanh(torch.tensor(0.9)) ** 2 + 0.1)
        parts = object_condensation_loss(x, beta, obj, 2)
        assert float(parts["attractive"]) == pytest.approx(0.25 * 0.1 * q_alpha / 2 / 2, rel=1e-5)
    # the repulsion scales with its weight
    x = torch.tensor([A, A, A, B, B, B, FAR])
    beta = torch.tensor([0.9, 0.1, 0.1, 0.1, 0.95, 0.1, 0.0])
    one = object_condensation_loss(swapped(x), beta, OBJ, 2)["repulsive"]
    assert float(object_condensation_loss(swapped(x), beta, OBJ, 2, repulsion_weight=3.0)["repulsive"]) == pytest.approx(3 * float(one))


def test_influencer_loss_is_minimal_with_one_influencer_per_track_and_grows_when_hits_swap():
    user = torch.tensor([A, A, A, B, B, B, FAR])
    # one influencer per track sits on its users, the track's other influencers apart (>= margin)
    infl = torch.tensor([A, [0.0, -3.0], [0.0, -6.0], B, [5.0, -3.0], [5.0, -6.0], [9.0, 9.0]])
    good = influencer_loss(user, infl, OBJ)
    assert good["attractive"] < 1e-3 and good["repulsive"] == 0
    bad = influencer_loss(swapped(user), infl, OBJ)
    assert bad["attractive"] > 1.0
    # all influencers of a track together: the repulsive hinge is at its maximum (the margin)
    assert float(influencer_loss(user, user.clone(), OBJ)["repulsive"]) == pytest.approx(1.0, abs=1e-5)
    # a user next to another track's influencer pays the negative hinge
    neg = influencer_loss(user, infl, OBJ, negatives=(torch.tensor([0]), torch.tensor([3])))
    assert neg["negative"] == 0
    close = infl.clone()
    close[3] = torch.tensor([0.3, 0.0])
    assert influencer_loss(user, close, OBJ, negatives=(torch.tensor([0]), torch.tensor([3])))["negative"] \
        == pytest.approx(0.7 ** 2)                 # squared hinge
    # given pairs, the repulsion acts on them whatever their particle: two tracks' influencers 0.4 apart
    near = infl.clone()
    near[3] = torch.tensor([0.4, 0.0])
    pair = (torch.tensor([0, 3]), torch.tensor([3, 0]))
    assert float(influencer_loss(user, near, OBJ, influencer_pairs=pair)["repulsive"]) == pytest.approx(0.6 ** 2, rel=1e-5)
    assert float(influencer_loss(user, infl, OBJ, influencer_pairs=pair)["repulsive"]) == 0.0


def test_same_object_pairs_enumerates_each_track_block():
    i, j = same_object_pairs(torch.tensor([1, -1, 0, 1, 0, 1]))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(
        [(a, b) for a in (2, 4) for b in (2, 4)] + [(a, b) for a in (0, 3, 5) for b in (0, 3, 5)])


def test_condensation_points_and_density_clustering_on_a_hand_built_embedding():
    x = torch.tensor([A, [0.1, 0.0], [0.0, 0.1], B, [5.1, 0.0], [5.0, 0.2], FAR])
    beta = torch.tensor([0.9, 0.8, 0.2, 0.7, 0.95, 0.1, 0.3])
    labels, points = condensation_tracks(x, beta, t_beta=0.5, t_d=0.5)
    # hit 4 (β 0.95) condenses track B first, hit 0 track A; hit 1 is suppressed by hit 0
    assert points.tolist() == [4, 0]
    assert labels.tolist() == [1, 1, 1, 0, 0, 0, -1]
    labels, reps = density_tracks(x, beta, "dbscan", eps=0.5, min_samples=2)
    assert labels[:3].tolist() == [labels[0]] * 3 and labels[3:6].tolist() == [labels[3]] * 3
    assert labels[0] != labels[3] and labels[6] == -1
    assert sorted(reps.tolist()) == [0, 4]          # the highest-β hit of each cluster
    kept, reps = keep_tracks(np.array([0, 0, 0, 1, 1, -1, 2]), np.array([0, 3, 6]), min_hits=2)
    assert kept.tolist() == [0, 0, 0, 1, 1, -1, -1] and reps.tolist() == [0, 3]


def test_influencer_tracks_give_a_doubly_claimed_hit_to_the_nearest_influencer():
    user = torch.tensor([A, [0.2, 0.0], [0.45, 0.0], B, FAR])
    infl = torch.tensor([[0.0, 0.0], [9.0, -9.0], [0.7, 0.0], [5.0, 0.0], [-9.0, 9.0]])
    labels, influencers = influencer_tracks(user, infl, radius=0.5)
    # hit 2 is within 0.5 of influencers 0 (0.45) and 2 (0.25): it goes to 2
    assert influencers.tolist() == [0, 2, 3]
    assert labels.tolist() == [0, 0, 1, 2, -1]
    # influencers 0 and 2 lie 0.7 apart: merged within 0.8 (one track, represented by 0), not within 0.6
    labels, influencers = influencer_tracks(user, infl, radius=0.5, merge_radius=0.8)
    assert influencers.tolist() == [0, 3] and labels.tolist() == [0, 0, 0, 1, -1]
    assert influencer_tracks(user, infl, radius=0.5, merge_radius=0.6)[0].tolist() == [0, 0, 1, 2, -1]


@pytest.mark.parametrize("stage", ["object_condensation", "influencer"])
def test_one_training_step_on_a_tiny_event(tiny_events, stage):
    from pathlib import Path

    from trkx.event import orient_and_dedup
    from trkx.stage import load_stage
    from trkx.ops.frnn import build_edges
    s = load_stage(Path(__file__).parent / "configs" / "stages" / f"{stage}.yaml")
    event = tiny_events[0].clone()
    event.edge_index = orient_and_dedup(event, build_edges(event.x, 0.1, 16))
    module = s.build(event.x.shape[1])
    module.train()
    loss = module.training_step(event, 0)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_a_chain_may_end_with_a_one_shot_stage(tmp_path, tiny_run):
    """data -> module map -> object condensation: no edge classifier, tracks and their parameters
    written, the pT / eta resolution in metrics.json."""
    from trkx.evaluate import evaluate
    from trkx.runner import run_pipeline
    path = make_pipeline(tmp_path, stages=["stages/module_map.yaml", "stages/object_condensation.yaml"],
                         cachedir=str(tiny_run[0].cachedir))
    pipe, outputs, _ = run_pipeline(path, progress=False)
    metrics = evaluate(pipe, outputs)
    assert (pipe.workdir / "tracks").is_dir() and "track_efficiency" in metrics
    assert "track_parameters" in metrics


def test_edge_score_cut_prunes_the_message_graph_and_needs_an_edge_classifier(tiny_events):
    from trkx.stages.track_building.object_condensation import ObjectCondensation as stage_cls
    plain = stage_cls(stage_cls.Config())
    assert plain.requires() == ("graph_construction",)
    cfg = stage_cls.Config(edge_score_cut=0.5, score_field="gnn_score")
    pruned = stage_cls(cfg)
    assert "edge_classification" in pruned.requires()
    event = tiny_events[0].clone()
    event.edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    event.gnn_score = torch.tensor([0.9, 0.2, 0.5, 0.7])
    graph = pruned.message_graph(event)
    assert graph.edge_index.tolist() == [[0, 2, 3], [1, 3, 4]]
    assert graph.gnn_score.tolist() == pytest.approx([0.9, 0.5, 0.7])
    assert plain.message_graph(event).edge_index.shape[1] == 4
    with pytest.raises(ValueError, match="edge_score_cut"):
        stage_cls.Config(edge_score_cut=1.5).validate()
