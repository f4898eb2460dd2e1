"""Deploying a trained chain: export a bundle, reconstruct new (truth-free) events from it."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_pipeline

from trkx.cli import main


def _test_event_csvs(pipe, outputs, dst, kinds=("hits",)):
    """The tiny run's test events as TrackML CSVs in ``dst`` (only the files of ``kinds``)."""
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    dst.mkdir()
    ids = [int(p.stem[5:]) for p in outputs[0].paths["test"]]
    for i in ids:
        for kind in kinds:
            shutil.copy(csv / f"event{i:09d}-{kind}.csv", dst)
    return ids


CPP_TOOL = Path(__file__).parents[1] / "cpp" / "build" / "trkx-reco"


def _run_cpp(bundle: Path, hits: Path, ids: list[int], out: Path, *options: str) -> None:
    """The C++ tool on events ``ids`` of ``hits``, writing ``out/event<ID>.csv``."""
    out.mkdir()
    args = [str(CPP_TOOL), str(bundle), *options]
    for i in ids:
        args += [str(hits / f"event{i:09d}-hits.csv"), str(out / f"event{i}.csv")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _same_track_files(a: Path, b: Path, ids: list[int]) -> bool:
    return all((a / f"event{i}.csv").read_text() == (b / f"event{i}.csv").read_text() for i in ids)


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    pipe, _, _ = tiny_run
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    result = CliRunner().invoke(main, ["export", str(pipe.path), str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_bundle_holds_configs_weights_torchscript_and_manifest(bundle, tiny_run):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [s["kind"] for s in manifest["stages"]] == [s.kind for s in tiny_run[0].stages]
    for entry in manifest["stages"]:
        assert (bundle / entry["config"]).is_file()
        if entry["kind"] in ("embedding", "filter", "gnn"):
            assert (bundle / entry["weights"]).is_file() and (bundle / entry["torchscript"]).is_file()
    assert manifest["cpp"]["supported"] and (bundle / "chain.txt").is_file()


@pytest.mark.parametrize("eager", [False, True])
def test_reco_from_bundle_on_hits_only_gives_the_pipeline_tracks(bundle, tiny_run, tmp_path, eager):
    """Round trip: export -> reco from the bundle (TorchScript or eager) on TrackML events without
    truth files -> the same track files as `trkx run`, and no metrics (no truth)."""
    pipe, outputs, _ = tiny_run
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    args = ["reco", str(bundle), str(tmp_path / "hits"), str(tmp_path / "out"), "--no-progress"]
    result = CliRunner().invoke(main, args + (["--eager"] if eager else []))
    assert result.exit_code == 0, result.output
    assert _same_track_files(tmp_path / "out", pipe.workdir / "tracks", ids)
    assert not (tmp_path / "out" / "metrics.json").exists()
    timing = json.loads((tmp_path / "out" / "timing.json").read_text())
    assert set(timing["stages"]) == {"read + build", "total"} | {s.name for s in pipe.stages}


def test_reco_from_pipeline_with_truth_writes_metrics(tiny_run, tmp_path):
    pipe, outputs, _ = tiny_run
    _test_event_csvs(pipe, outputs, tmp_path / "ev", kinds=("hits", "truth", "particles"))
    result = CliRunner().invoke(main, ["reco", str(pipe.path), str(tmp_path / "ev"), str(tmp_path / "out"),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "out" / "metrics.json").read_text())
    from trkx.evaluate import evaluate
    theirs = evaluate(pipe, outputs)
    assert ours["track_efficiency"] == pytest.approx(theirs["track_efficiency"])
    assert ours["fake_rate"] == pytest.approx(theirs["fake_rate"])


def test_reco_never_trains(tmp_path):
    """An untrained pipeline: one line naming the stage to train, exit 2, nothing written."""
    path = make_pipeline(tmp_path)
    (tmp_path / "hits").mkdir()
    pd.DataFrame({"hit_id": [1], "x": [1.0], "y": [1.0], "z": [1.0], "volume_id": [8], "layer_id": [2],
                  "module_id": [1]}).to_csv(tmp_path / "hits" / "event000000001-hits.csv", index=False)
    result = CliRunner().invoke(main, ["reco", str(path), str(tmp_path / "hits"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "stage 'embedding' is not trained" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_reco_names_a_bad_event(bundle, tiny_run, tmp_path):
    pipe, outputs, _ = tiny_run
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    bad = tmp_path / "hits" / f"event{ids[1]:09d}-hits.csv"
    bad.write_text("hit_id,x,y\n1,2,3\n")
    result = CliRunner().invoke(main, ["reco", str(bundle), str(tmp_path / "hits"), str(tmp_path / "out"),
                                       "--no-progress"])
    assert result.exit_code == 2
    assert str(bad) in result.output and "missing column 'z'" in result.output


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
def test_cpp_tool_gives_the_python_tracks(bundle, tiny_run, tmp_path):
    """cpp/build/trkx-reco on the bundle: the same track files as the Python chain, byte for byte."""
    pipe, outputs, _ = tiny_run
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    _run_cpp(bundle, tmp_path / "hits", ids, tmp_path / "cpp", "--threads", "1", "--timing", str(tmp_path / "timing.json"))
    assert _same_track_files(tmp_path / "cpp", pipe.workdir / "tracks", ids)
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert len(timing) == len(ids) and {"read + build", "graph", "labeling"} <= set(timing[0])


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
@pytest.mark.parametrize("labeling", [
    {"method": "walkthrough", "cut": 0.9, "walk_cut": 0.5, "min_hits": 9},
    {"method": "junction", "cut": 0.2, "min_hits": 5, "min_pt": 1.5},
    {"method": "cc", "cut": 0.05, "min_hits": 3},
])
def test_cpp_track_building_matches_python_across_settings(bundle, tiny_run, tmp_path, labeling):
    """Bundles with other track-building settings (harder cuts, junction removal, the pT
    selection), exported from the pipeline with those settings: the same tracks from Python and
    C++.  (A bundle edited by hand is refused: its files no longer match the manifest.)"""
    pipe, outputs, _ = tiny_run
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    path = make_pipeline(tmp_path, stage_overrides={"labeling": labeling}, cachedir=str(pipe.cachedir))
    b = tmp_path / "bundle"
    assert CliRunner().invoke(main, ["export", str(path), str(b)]).exit_code == 0
    assert f"method {labeling['method']}" in (b / "chain.txt").read_text()
    result = CliRunner().invoke(main, ["reco", str(b), str(tmp_path / "hits"), str(tmp_path / "py"), "--no-progress"])
    assert result.exit_code == 0, result.output
    _run_cpp(b, tmp_path / "hits", ids, tmp_path / "cpp")
    assert _same_track_files(tmp_path / "cpp", tmp_path / "py", ids)


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
def test_cpp_tool_names_a_bad_file(bundle, tmp_path):
    bad = tmp_path / "event000000001-hits.csv"
    bad.write_text("hit_id,x,y\n1,2,3\n")
    result = subprocess.run([str(CPP_TOOL), str(bundle), str(bad), str(tmp_path / "t.csv")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{bad}: missing column 'z'" in result.stderr and not (tmp_path / "t.csv").exists()


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
@pytest.mark.parametrize("triplets", [False, True])
def test_cpp_tool_runs_a_module_map_chain(tiny_run, tmp_path, triplets):
    """Module map (exported as a TorchScript program, with or without its triplet windows) -> GNN
    -> junction removal with the pT selection, as in the dense benchmark: the C++ tracks equal
    `trkx run`'s."""
    from trkx.runner import run_pipeline
    overrides = {"labeling": {"method": "junction", "min_pt": 0.5, "min_hits": 5}}
    if triplets:
        overrides["module_map"] = {"triplets": {"enabled": True, "quantile": 0.0, "margin": 0.3}}
    path = make_pipeline(tmp_path, overrides,
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                         cachedir=str(tmp_path / "cache"))
    pipe, outputs, _ = run_pipeline(path, progress=False)
    assert CliRunner().invoke(main, ["export", str(path), str(tmp_path / "bundle")]).exit_code == 0
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    _run_cpp(tmp_path / "bundle", tmp_path / "hits", ids, tmp_path / "cpp")
    assert _same_track_files(tmp_path / "cpp", pipe.workdir / "tracks", ids)


def test_reco_reads_acts_measurements_without_truth(bundle, tiny_run, tmp_path):
    """ACTS measurements only (no sim hits, no particles): the same tracks as the same event read
    as TrackML hits."""
    from trkx.simulation import run_acts
    pipe, outputs, _ = tiny_run
    cfg = pipe.data.config
    run_acts(cfg.simulation, 1, cfg.seed, tmp_path / "acts")          # the run's first event, again
    for f in (tmp_path / "acts").iterdir():
        if not f.name.endswith("-measurements.csv"):
            f.unlink()
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    (tmp_path / "trackml").mkdir()
    shutil.copy(csv / f"event{cfg.first_event_id:09d}-hits.csv", tmp_path / "trackml")
    for src, out in (("acts", "out_acts"), ("trackml", "out_trackml")):
        result = CliRunner().invoke(main, ["reco", str(bundle), str(tmp_path / src), str(tmp_path / out),
                                           "--no-progress"])
        assert result.exit_code == 0, result.output
    tracks = (tmp_path / "out_acts" / "event0.csv").read_text()
    assert tracks == (tmp_path / "out_trackml" / f"event{cfg.first_event_id}.csv").read_text()
    assert len(tracks.splitlines()) > 100
