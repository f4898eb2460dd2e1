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
    assert "ACTS CKF" in (out / "comparison.md").read_text()
    # both JSON results say where they came from: the pipeline's fingerprints, this trkx
    for name in ("metrics.json", "comparison.json"):
        block = json.loads((out / name).read_text())["provenance"]
        assert block["fingerprints"]["data"] == outputs[0].fingerprint and block["packages"]["pyacts"]
