"""Metrics against hand-computed values."""
import numpy as np
import pandas as pd
import pytest

from trkx.metrics import TargetSelection, match_pairs, roc_auc, trackml_score, track_metrics, v_score


def truth_df(pids, weights=None):
    pids = np.asarray(pids)
    w = np.full(len(pids), 1.0 / len(pids)) if weights is None else np.asarray(weights, float)
    return pd.DataFrame({"hit_id": np.arange(1, len(pids) + 1), "particle_id": pids, "weight": w})


def sub_df(tracks):
    return pd.DataFrame({"hit_id": np.arange(1, len(tracks) + 1), "track_id": tracks})


def test_trackml_perfect_is_one_and_merged_is_zero():
    pids = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    truth = truth_df(pids)
    assert trackml_score(truth, sub_df(pids)) == pytest.approx(1.0)
    assert trackml_score(truth, sub_df([0] * 10)) == 0.0          # one merged track: no majority > 50%
    assert trackml_score(truth, sub_df([-1] * 10)) == 0.0


def test_trackml_hand_computed():
    # particle 1: hits 1-4 (w .1 each), particle 2: hits 5-7 (w .2 each), noise hit 8 (w 0)
    truth = truth_df([1, 1, 1, 1, 2, 2, 2, 0], [.1, .1, .1, .1, .2, .2, .2, 0])
    # track A = hits 1,2,3 + 5 -> majority 1 (3/4 > .5 of track, 3/4 > .5 of particle) -> .3
    # track B = hits 4, 6, 7, 8 -> majority 2 (2/4 not > .5 of track) -> 0
    tracks = [10, 10, 10, 20, 10, 20, 20, 20]
    assert trackml_score(truth, sub_df(tracks)) == pytest.approx(0.3)
    # B without the noise hit: 2/3 of track, 2/3 of particle 2 -> + .4
    tracks = [10, 10, 10, 20, 10, 20, 20, -1]
    assert trackml_score(truth, sub_df(tracks)) == pytest.approx(0.7)


def test_trackml_tie_goes_to_smaller_particle_id():
    # track of 4 hits: 2 from particle 9, 2 from particle 4 -> majority 4 (smaller id), 2/4 not > 50%
    # so use a 2-hit particle pair: particles 4 and 9 each have 2 hits in total
    truth = truth_df([9, 9, 4, 4], [.1, .2, .3, .4])
    tracks = [1, 1, 1, 1]
    assert trackml_score(truth, sub_df(tracks)) == 0.0
    # 3-hit track with 1 hit of 4 and 1 of 9 and one noise: tie 1-1, majority = 4; 1/3 not > .5
    truth = truth_df([9, 4, 0], [.5, .5, 0])
    assert trackml_score(truth, sub_df([1, 1, 1])) == 0.0
    # tie at 1-1 in a 2-hit track: majority 4 (smaller), 1/2 not > .5 -> 0 either way;
    # with the tie rule visible: 2-hit track, particle 4 has 1 hit -> 1/1 > .5 but 1/2 not > .5
    truth = truth_df([4, 9, 9], [.2, .4, .4])
    assert trackml_score(truth, sub_df([1, 1, 2])) == 0.0
    assert trackml_score(truth, sub_df([1, 2, 2])) == pytest.approx(0.2 + 0.8)


def test_trackml_rejects_missing_hits():
    with pytest.raises(ValueError, match="missing from the submission"):
        trackml_score(truth_df([1, 1]), sub_df([1]))


def hits_df(pids, tracks, pts=None):
    n = len(pids)
    return pd.DataFrame({"hit_id": np.arange(n), "particle_id": pids, "track_id": tracks,
                         "pt": 2.0 if pts is None else pts, "eta": 0.0})


# particle 1: 4 hits, particle 2: 4 hits, particle 3: 2 hits (not a target: < 3 hits)
PIDS = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
#       track 0 takes 3 of particle 1 + 1 of particle 2; track 1 takes 2 of particle 2 + 2 of particle 3
TRACKS = [0, 0, 0, -1, 0, 1, 1, -1, 1, 1]


@pytest.mark.parametrize("style, eff, fake", [
    # track 0: shared 3/4 with p1 (track frac .75, particle frac .75); track 1: 2/4 with p2 (.5, .5), 2/4 with p3 (.5, 1)
    ("two_way", 0.5, 0.5),     # track 0 matches p1; track 1: no >.5 on the track side
    ("one_way", 0.5, 0.0),     # p1 by track 0 (.75); p3 by track 1 (2/2 > .5) -> track 1 matched (p3 not a target)
    ("atlas", 1.0, 0.0),       # track frac >= .5: track 0 -> p1, track 1 -> p2 and p3
    ("perfect", 0.0, 1.0),
    ("lhc", 0.0, 1.0),         # track purity .75 is not strictly above .75: nothing matches
])
def test_matching_styles(style, eff, fake):
    m = track_metrics(hits_df(PIDS, TRACKS), style, 0.5, TargetSelection(1.0, 3, 4.0), min_track_hits=3)
    assert m["n_target_particles"] == 2
    assert m["efficiency"] == pytest.approx(eff)
    assert m["fake_rate"] == pytest.approx(fake)


def test_lhc_matches_tracks_purer_than_three_quarters():
    # track 0: 4 of particle 1 and 1 of particle 2 (purity .8 > .75); track 1: 2 of particle 2, 2 of 3 (.5)
    pids = [1, 1, 1, 1, 2, 2, 2, 3, 3]
    tracks = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    m = track_metrics(hits_df(pids, tracks), "lhc", 0.5, TargetSelection(1.0, 3, 4.0), min_track_hits=3)
    assert m["n_matched_tracks"] == 1 and m["efficiency"] == pytest.approx(0.5) and m["fake_rate"] == 0.5


def test_duplicates_and_perfect():
    pids = [1] * 6 + [2] * 3
    tracks = [0, 0, 0, 1, 1, 1, 2, 2, 2]      # particle 1 split in two halves, particle 2 perfect
    m = track_metrics(hits_df(pids, tracks), "atlas", 0.5, TargetSelection(1.0, 3, 4.0), 3)
    assert m["efficiency"] == 1.0 and m["duplicate_rate"] == pytest.approx(1 / 3) and m["fake_rate"] == 0.0
    m = track_metrics(hits_df(pids, pids), "perfect", 0.5, TargetSelection(1.0, 3, 4.0), 3)
    assert m["efficiency"] == 1.0 and m["fake_rate"] == 0.0


def test_target_selection_by_pt():
    pids = [1, 1, 1, 2, 2, 2]
    m = track_metrics(hits_df(pids, [0, 0, 0, -1, -1, -1], pts=[2, 2, 2, .5, .5, .5]), "two_way",
                      0.5, TargetSelection(1.0, 3, 4.0), 3)
    assert m["n_target_particles"] == 1 and m["efficiency"] == 1.0


def test_match_pairs_columns():
    p = match_pairs(hits_df(PIDS, TRACKS), "two_way")
    row = p[(p.track_id == 0) & (p.particle_id == 1)].iloc[0]
    assert (row.n_shared, row.n_track, row.n_particle, row.matched) == (3, 4, 4, True)


def test_vscore_matches_sklearn():
    from sklearn.metrics import homogeneity_completeness_v_measure
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 20, 500)
    pred = np.where(rng.random(500) < 0.8, truth, rng.integers(0, 30, 500))
    ref = homogeneity_completeness_v_measure(truth, pred)
    got = v_score(truth, pred, unassigned_as_singletons=False)
    assert (got["homogeneity"], got["completeness"], got["v_measure"]) == pytest.approx(ref)


def test_weighted_vscore():
    truth = np.array([1, 1, 2, 2])
    assert v_score(truth, truth, np.array([.1, .2, .3, .4]))["v_measure"] == pytest.approx(1.0)
    # integer weights equal repeating hits
    w = np.array([1, 2, 1, 3])
    pred = np.array([0, 1, 1, 1])
    rep_t, rep_p = np.repeat(truth, w), np.repeat(pred, w)
    assert v_score(truth, pred, w.astype(float)) == pytest.approx(v_score(rep_t, rep_p))


def test_roc_auc_hand():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([.1, .4, .35, .8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([.5, .5])) == pytest.approx(0.5)


def test_field_cut_hard_scatter_and_production_radius_figures():
    """Four particles of 4 hits: A (pT 0.95, eta 3.5, hard scatter, found), B (pT 0.95, eta 0,
    pile-up, missed), C (pT 5, hard scatter, made at r = 50 mm, missed), D (pT 2, pile-up, found)."""
    from trkx.evaluate import origin_figures
    rows = {"A": (0.95, 3.5, 1, 0.01), "B": (0.95, 0.0, 0, 0.01), "C": (5.0, 1.0, 1, 50.0), "D": (2.0, -1.0, 0, 0.01)}
    found = {"A": 0, "D": 1}
    frames = []
    for k, (name, (pt, eta, hs, r)) in enumerate(rows.items()):
        frames.append(pd.DataFrame({"hit_id": np.arange(4) + 4 * k + 1, "particle_id": k + 1, "pt": pt, "eta": eta,
                                    "hard_scatter": bool(hs), "prod_r": r, "track_id": found.get(name, -1)}))
    hits = pd.concat(frames, ignore_index=True).assign(event_id=0)

    class Eval:
        matching_fraction, min_hits, min_track_hits = 0.5, 3, 3
    targets = track_metrics(hits, "two_way", 0.5, TargetSelection(1.0, 3, 4.0), 3)["_targets"]
    out = origin_figures(hits, targets, Eval, "two_way")
    # pT > 0.9, |eta| < 4: A, B, C, D are all targets; A and D found
    assert out["field_cut"]["n_target_particles"] == 4 and out["field_cut"]["efficiency"] == 0.5
    # configured cut (pT > 1): C and D; hard scatter among them: C, missed
    assert out["hard_scatter"] == {"efficiency": 0.0, "n_target_particles": 1}
    r = out["efficiency_vs_prod_r"]
    assert r["n"][0] == 1 and r["efficiency"][0] == 1.0          # D, prompt
    assert r["n"][4] == 1 and r["efficiency"][4] == 0.0          # C, made at 50 mm
