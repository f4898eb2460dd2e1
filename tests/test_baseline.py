"""ACTS seeding + CKF baseline on the tiny pipeline's test events, scored by trkx.metrics."""
import json

import pandas as pd

from trkx.baseline import run_ckf_baseline
from trkx.storage import load_event


def test_ckf_baseline_on_tiny_events(tiny_run):
    pipe, outputs, _ = tiny_run
    cmp = run_ckf_baseline(pipe.path, progress=False)
    out = pipe.workdir / "baseline_ckf"
    for path in outputs[0].paths["test"]:
        df = pd.read_csv(out / "tracks" / f"{path.stem}.csv")
        event = load_event(path)
        assert list(df.columns) == ["hit_id", "track_id"]
        assert sorted(df.hit_id) == sorted(event.hit_id.tolist())
        # CKF keeps tracks of at least 7 measurements (a shared hit may go to another track)
        sizes = df[df.track_id >= 0].groupby("track_id").size()
        assert len(sizes) > 0 and sizes.median() >= 7
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["track_efficiency"] == cmp["ckf"]["track_efficiency"]
    # isolated muons above 1 GeV: the CKF finds nearly all of them
    assert cmp["ckf"]["track_efficiency"] > 0.8 and cmp["ckf"]["fake_rate"] < 0.2
    assert cmp["ckf"]["seconds_per_event"] > 0 and cmp["gnn"]["seconds_per_event"] > 0
    # the chain's time by stage: every stage in order, together the chain's time (less the reads)
    stages = cmp["gnn"]["stage_seconds"]
    assert list(stages) == [s.name for s in pipe.stages] and all(v > 0 for v in stages.values())
    assert 0.5 * cmp["gnn"]["seconds_per_event"] < sum(stages.values()) <= cmp["gnn"]["seconds_per_event"]
    assert "by stage (one thread): embedding" in (out / "comparison.md").read_text()
    assert "ACTS CKF" in (out / "comparison.md").read_text()
    # both JSON results say where they came from: the pipeline's fingerprints, this trkx
    for name in ("metrics.json", "comparison.json"):
        block = json.loads((out / name).read_text())["provenance"]
        assert block["fingerprints"]["data"] == outputs[0].fingerprint and block["packages"]["pyacts"]


def test_ckf_finds_tracks_below_1_gev(tmp_path):
    """0.55-0.9 GeV muons: the CKF's tracks are kept from its 0.5 GeV threshold up (ACTS's
    CsvTrackWriter alone would drop every track below 1 GeV)."""
    import numpy as np
    from trkx.ckf import TRACKS_CSV, ckf_track_labels, run_ckf
    from trkx.io.acts import read_acts_event
    from trkx.simulation import SimulationConfig

    cfg = SimulationConfig(n_vertices=2, particles_per_vertex=20, pt_min=0.55, pt_max=0.9, eta_min=-2.0, eta_max=2.0)
    run_ckf(cfg, seed=3, first_index=0, n_events=1, out_dir=tmp_path)
    t = read_acts_event(tmp_path, 0)
    labels = ckf_track_labels(tmp_path / "ckf" / TRACKS_CSV.format(0), t.hits.hit_id.to_numpy())
    hits = t.truth.assign(track_id=labels)
    found = hits[hits.track_id >= 0].groupby("particle_id").size()
    # most muons have most of their hits on a track
    n_hits = hits[hits.particle_id != 0].groupby("particle_id").size()
    assert (found.reindex(n_hits.index).fillna(0) > 0.5 * n_hits).mean() > 0.8
    assert np.unique(labels[labels >= 0]).size >= 30
