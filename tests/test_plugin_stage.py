"""A new stage is one file and one YAML: a toy track builder written outside the source tree
(``plugin:`` in its YAML) that declares a C++ port, bench alternatives and an extra metric, run,
benchmarked and exported with no trkx file edited."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner
from conftest import make_pipeline

from trkx.cli import main

REPO = Path(__file__).parents[1]

TOY = '''
"""Toy track builder: connected components (trkx's labeling), declaring its own capabilities."""
from trkx.stage import register
from trkx.stages.track_building.labeling import TrackLabeling


@register("toy_builder")
class ToyBuilder(TrackLabeling):
    """Labels as connected components above a cut; counts its tracks as an extra metric."""

    def cpp_lines(self):
        c = self.config
        return [f"labeling {self.name} method cc cut {c.cut!r} walk_cut {c.walk_cut!r} min_hits {c.min_hits} "
                f"min_pt {c.min_pt!r} bfield_tesla {c.bfield_tesla!r}"]

    def bench_options(self):
        return {"cut": [self.config.cut, 0.9]}

    def extra_metrics(self, hits, eval_cfg):
        tracks = hits[hits.track_id >= 0].groupby("event_id").track_id.nunique()
        return {"toy": {"tracks_per_event": float(tracks.mean()),
                        "summary": f"toy builder: {float(tracks.mean()):.1f} tracks per event"}}
'''


def plugin_pipeline(tmp_path: Path, tiny_run, source: str, kind: str, name: str) -> Path:
    """The tiny pipeline (sharing the tiny run's cache) with the plugin track builder ``kind``,
    written from ``source`` outside the tree, in place of the labeling."""
    plugin_dir = tmp_path / "mine"
    plugin_dir.mkdir()
    (plugin_dir / f"{name}.py").write_text(source)
    (plugin_dir / f"{name}.yaml").write_text(yaml.safe_dump({"stage": kind, "plugin": f"{name}.py",
                                                              "name": name, "cut": 0.01}))
    path = make_pipeline(tmp_path, cachedir=str(tiny_run[0].cachedir))
    pipe = yaml.safe_load(path.read_text())
    pipe["stages"] = pipe["stages"][:-1] + [str(plugin_dir / f"{name}.yaml")]
    path.write_text(yaml.safe_dump(pipe))
    return path


def test_a_stage_outside_the_tree_runs_benches_exports_and_adds_a_metric(tmp_path, tiny_run):
    path = plugin_pipeline(tmp_path, tiny_run, TOY, "toy_builder", "toy")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    runner = CliRunner()

    run = runner.invoke(main, ["run", str(path), "--no-progress"])
    assert run.exit_code == 0, run.output
    metrics = json.loads((tmp_path / "work" / "metrics.json").read_text())
    assert metrics["extra"] == ["toy"] and metrics["toy"]["tracks_per_event"] > 0
    assert "toy builder:" in run.output and "tracks per event" in (tmp_path / "work" / "report.md").read_text()

    bench = runner.invoke(main, ["bench", str(path), "-r", "1"])
    assert bench.exit_code == 0, bench.output
    assert set(json.loads((tmp_path / "work" / "bench.json").read_text())["stages"]["toy"]) == {"cut=0.01", "cut=0.9"}

    bundle = tmp_path / "bundle"
    assert runner.invoke(main, ["export", str(path), str(bundle)]).exit_code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["cpp"]["supported"] and "labeling toy method cc cut 0.01" in (bundle / "chain.txt").read_text()
    assert "plugins/toy.py" in manifest["sha256"]
    assert runner.invoke(main, ["verify", str(bundle)]).exit_code == 0
    assert subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout == before


SLOW_START = '''
"""Toy track builder whose first event would wait for a one-time preparation (a stand-in for a
compile), declared as ``warm_up``."""
import time

from trkx.stage import register
from trkx.stages.track_building.labeling import TrackLabeling


@register("slow_start_builder")
class SlowStartBuilder(TrackLabeling):
    ready = False

    def warm_up(self, event):
        time.sleep(0.6)
        self.ready = True

    def infer(self, event):
        if not self.ready:
            self.warm_up(event)
        return super().infer(event)
'''


def test_a_stages_warm_up_is_timed_apart_from_its_events(tmp_path, tiny_run):
    """A stage's one-time preparation (``warm_up``, the GNN's compile) runs before its first event
    and is reported as ``startup`` in timing.json and the run's table, not in any event's time."""
    path = plugin_pipeline(tmp_path, tiny_run, SLOW_START, "slow_start_builder", "slow")
    run = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert run.exit_code == 0, run.output
    timing = json.loads((tmp_path / "work" / "timing.json").read_text())
    assert timing["startup"]["slow"] >= 0.6
    assert max(timing["per_event"]["slow"].values()) < 0.5
    assert "warm-up before the timed events" in run.output and "slow 0.6 s" in run.output
    # served from the cache, the figures stay those of the run that computed the events
    again = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert again.exit_code == 0 and json.loads((tmp_path / "work" / "timing.json").read_text())["startup"] == \
        timing["startup"]
