"""trkx display: what it marks on a hand-built event, and the files it writes for a run."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from trkx.cli import main
from trkx.display import paths, track_status
from trkx.runner import EvalConfig


def _hits() -> pd.DataFrame:
    """Particle 1 found whole; particle 2 (8 hits) in two pieces of 5 and 3; tracks mixing
    particles 3 and 4 half and half (a fake); particle 5 not found; a one-hit track of noise."""
    rows = ([(1, 0)] * 4 + [(2, 1)] * 5 + [(2, 2)] * 3 + [(3, 3)] * 2 + [(4, 3)] * 2 + [(3, -1)] * 2
            + [(4, -1)] * 2 + [(5, -1)] * 3 + [(0, 4)])
    pid, tid = np.array(rows).T
    pt = np.select([pid == 4, pid == 0], [0.5, 0.0], 2.0)
    n = len(rows)
    r = np.tile(np.arange(1, 6), n)[:n] * 100.0
    return pd.DataFrame({"hit_id": np.arange(n), "track_id": tid, "particle_id": pid, "pt": pt, "eta": 0.0,
                         "x": r, "y": 0.0, "z": 0.0, "r": r})


def test_matched_split_fake_and_missed_are_told_apart():
    out = track_status(_hits(), EvalConfig())
    status = out.groupby("track_id").status.first()
    assert status.to_dict() == {-1: "none", 0: "matched", 1: "split", 2: "split", 3: "fake", 4: "short"}
    # particle 3 (a target in a fake) and 5 (never found) are missed; 4 is below the pT cut;
    # 2 is matched by its larger piece under double majority
    assert sorted(out.particle_id[out.missed].unique()) == [3, 5]


def test_paths_keep_each_track_apart_in_one_trace():
    h = _hits()
    p = paths(h[h.track_id >= 0], "track_id")
    assert p.x.isna().sum() == h.track_id[h.track_id >= 0].nunique()
    first = p[p.track_id == 1].r.dropna().to_numpy()
    assert np.all(np.diff(first) >= 0)          # in order of distance from the origin


def test_display_writes_the_page_the_png_and_the_report_section(tiny_run):
    pipe = tiny_run[0]
    from trkx.evaluate import evaluate
    evaluate(pipe, tiny_run[1])                 # metrics.json names the pipeline
    result = CliRunner().invoke(main, ["display", str(pipe.workdir), "--max-edges", "500"])
    assert result.exit_code == 0, result.output
    event = min(int(p.stem[5:]) for p in tiny_run[1][-1].paths["test"])
    html = (pipe.workdir / "display" / f"event{event}.html").read_text()
    assert "plotly" in html and "graph edges by gnn_score" in html and "particle " in html
    assert "500 of " in html                    # the edge sample is said, not hidden
    assert (pipe.workdir / "display" / f"event{event}.png").stat().st_size > 10_000
    assert f"display/event{event}.png" in (pipe.workdir / "report.md").read_text()


def test_an_event_not_in_the_test_split_is_refused(tiny_run):
    result = CliRunner().invoke(main, ["display", str(tiny_run[0].path), "999999"])
    assert result.exit_code == 2 and "event 999999: not a test event" in result.output


def test_the_page_renders_in_a_headless_browser(tiny_run):
    """Where Chromium is installed (not in CI): plotly draws the page's views in a real browser."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from display_check import browser, check_page, rendered_dom
    binary = browser()
    if binary is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    pipe = tiny_run[0]
    result = CliRunner().invoke(main, ["display", str(pipe.path), "--max-edges", "500"])
    assert result.exit_code == 0, result.output
    page = next((pipe.workdir / "display").glob("event*.html"))
    found = check_page(rendered_dom(page, binary))
    assert found["svg_layers"] >= 2 and found["webgl_containers"] >= 1 and found["subplot_titles"] == 4
