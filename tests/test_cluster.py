"""Dask as the engine for many events: `--cluster local:2` gives the tracks of one process, in
`trkx run` and `trkx reco`, and a worker killed mid-run changes nothing but the wall time."""
from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner
from conftest import make_pipeline

from trkx.cli import main
from trkx.cluster import parse_cluster
from trkx.config import ConfigError
from trkx.runner import run_pipeline

pytest.importorskip("distributed")

# a track builder that kills its Dask worker the first time it runs there (a marker file says
# whether it has): the labeling, unchanged, otherwise
KILLER = '''
import os, signal
from pathlib import Path
from trkx.stage import register
from trkx.stages.track_building.labeling import TrackLabeling


@register("labeling_killing_a_worker")
class LabelingKillingAWorker(TrackLabeling):
    def infer(self, event):
        marker = Path(os.environ.get("TRKX_TEST_KILL_MARKER", "/nonexistent/marker"))
        try:
            from distributed import get_worker
            get_worker()
            on_worker = True
        except (ImportError, ValueError):
            on_worker = False
        if on_worker and marker.parent.is_dir() and not marker.exists():
            marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().infer(event)
'''


def _fresh_inference_cache(tiny_run, tmp_path):
    """The tiny run's data and weights, without its inferred events (every stage recomputes)."""
    pipe = tiny_run[0]
    cache = tmp_path / "cache"
    shutil.copytree(pipe.cachedir, cache, ignore=shutil.ignore_patterns("tracks", "plots", "display", "mlruns"))
    for stage in pipe.stages:
        for entry in (cache / stage.name).iterdir():
            if not entry.name.startswith("weights-"):
                shutil.rmtree(entry)
    return cache


def _tracks(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.glob("event*"))}


def test_cluster_specs_are_checked():
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "nowhere"):
        with pytest.raises(ConfigError, match="--cluster"):
            parse_cluster(bad)


def test_run_on_a_local_cluster_gives_the_tracks_of_one_process(tiny_run, tmp_path, capfd):
    pipe = tiny_run[0]
    path = make_pipeline(tmp_path, cachedir=str(_fresh_inference_cache(tiny_run, tmp_path)))
    other, outputs, _ = run_pipeline(path, progress=False, cluster="local:2")
    assert all(o.computed > 0 and o.cached == 0 for o in outputs[1:])
    assert _tracks(other.workdir / "tracks") == _tracks(pipe.workdir / "tracks") and _tracks(pipe.workdir / "tracks")
    err = capfd.readouterr().err
    assert "cluster local:2: 2 workers, dashboard" in err and "events on " in err and "events/s" in err


def test_reco_on_a_local_cluster_gives_the_tracks_of_one_process(tiny_run, tmp_path):
    pipe, outputs, _ = tiny_run
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    (tmp_path / "in").mkdir()
    for p in outputs[0].paths["test"]:
        for kind in ("hits", "particles", "truth"):
            shutil.copy(csv / f"event{int(p.stem[5:]):09d}-{kind}.csv", tmp_path / "in")
    runs = {}
    for name, extra in (("one", []), ("cluster", ["--cluster", "local:2"])):
        result = CliRunner().invoke(main, ["reco", str(pipe.path), str(tmp_path / "in"), str(tmp_path / name),
                                           "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        runs[name] = result.output
    assert _tracks(tmp_path / "one") == _tracks(tmp_path / "cluster") and _tracks(tmp_path / "one")
    assert "events on 2 workers" in runs["cluster"]
    metric = lambda out: out.split("track efficiency:")[1].split()[0]  # noqa: E731
    assert metric(runs["one"]) == metric(runs["cluster"])


def test_a_worker_killed_mid_run_changes_nothing(tiny_run, tmp_path, monkeypatch):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "killer.py").write_text(KILLER)
    labeling = yaml.safe_load((make_pipeline(tmp_path / "ref").parent / "stages" / "labeling.yaml").read_text())
    labeling.update({"stage": "labeling_killing_a_worker", "plugin": "killer.py", "name": "labeling"})
    (plugin / "labeling.yaml").write_text(yaml.safe_dump(labeling))
    path = make_pipeline(tmp_path, cachedir=str(_fresh_inference_cache(tiny_run, tmp_path)))
    cfg = yaml.safe_load(path.read_text())
    cfg["stages"] = cfg["stages"][:-1] + [str(plugin / "labeling.yaml")]
    path.write_text(yaml.safe_dump(cfg))
    marker = tmp_path / "killed"
    monkeypatch.setenv("TRKX_TEST_KILL_MARKER", str(marker))     # the workers inherit it
    other, outputs, _ = run_pipeline(path, progress=False, cluster="local:2")
    assert marker.read_text() == "killed"                          # a worker did die
    assert _tracks(other.workdir / "tracks") == _tracks(tiny_run[0].workdir / "tracks")
    # the cache holds every event once, and no temporary file of the dead worker as an event
    entry = other.cachedir / "labeling" / outputs[-1].fingerprint
    assert sorted(p.name for p in (entry / "test").glob("*.pt")) == sorted(p.name for p in outputs[-1].paths["test"])


def test_simulation_on_a_local_cluster_gives_the_events_of_one_process(tmp_path):
    """Event k depends on (seed, k) only: one ACTS task per event on two workers writes the same
    TrackML files as one process."""
    args = ["-n", "3", "--vertices", "1", "--particles", "5", "--seed", "11"]
    for name, extra in (("one", []), ("cluster", ["--cluster", "local:2"])):
        result = CliRunner().invoke(main, ["simulate", str(tmp_path / name), *args, *extra])
        assert result.exit_code == 0, result.output
    one, many = _tracks(tmp_path / "one"), _tracks(tmp_path / "cluster")
    assert len(one) == 9 and one == many       # hits, particles, truth of 3 events
