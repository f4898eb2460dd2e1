"""Every JSON result carries where it came from, and `trkx provenance` prints it."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_pipeline

from trkx.cli import main
from trkx.runner import Pipeline
from trkx.provenance import PACKAGES, git_state, provenance


def test_a_run_stamps_metrics_timing_and_training_reports_and_the_cli_prints_it(tmp_path, tiny_run):
    path = make_pipeline(tmp_path, cachedir=str(tiny_run[0].cachedir))
    runner = CliRunner()
    run = runner.invoke(main, ["run", str(path), "--no-progress"])
    assert run.exit_code == 0, run.output
    summary = dict(re.findall(r"^\s+(\w+)\s+([0-9a-f]{16})\s+computed", run.output, re.M))
    assert len(summary) == 6
    work = tmp_path / "work"
    for artefact in [work / "metrics.json", work / "timing.json",
                     *sorted(tiny_run[0].cachedir.glob("*/weights-*/train.json"))]:
        block = json.loads(artefact.read_text())["provenance"]
        assert block["trkx"] and block["packages"]["torch"] and block["machine"]["cores"] >= 1, artefact
        assert block["date"].endswith("+00:00") and "commit" in block and "dirty" in block
    trained = Pipeline(path, progress=False)
    trained.load_trained()
    for stage in trained.stages:                  # what benchmarks/methods.py reads
        if stage.trainable:
            assert json.loads((stage.weights_dir / "train.json").read_text())["train_seconds"] > 0, stage.name
    for name in ("metrics.json", "timing.json"):
        block = json.loads((work / name).read_text())["provenance"]
        assert block["fingerprints"] == summary and block["pipeline"] == str(path.resolve())
    shown = runner.invoke(main, ["provenance", str(work / "metrics.json")])
    assert shown.exit_code == 0 and "packages: trkx" in shown.output and summary["gnn"] in shown.output
    assert "## Provenance" in (work / "report.md").read_text()
    none = tmp_path / "plain.json"
    none.write_text("{}")
    refused = runner.invoke(main, ["provenance", str(none)])
    assert refused.exit_code == 2 and "no provenance block" in refused.output


def test_bundle_and_reco_outputs_carry_provenance(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    runner = CliRunner()
    bundle = tmp_path / "bundle"
    assert runner.invoke(main, ["export", str(pipe.path), str(bundle)]).exit_code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["provenance"]["fingerprints"]["gnn"] == manifest["stages"][3]["fingerprint"]
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    hits = tmp_path / "hits"
    hits.mkdir()
    for p in outputs[0].paths["test"]:
        (hits / f"event{int(p.stem[5:]):09d}-hits.csv").write_bytes((csv / f"event{int(p.stem[5:]):09d}-hits.csv").read_bytes())
    assert runner.invoke(main, ["reco", str(bundle), str(hits), str(tmp_path / "out"), "--no-progress"]).exit_code == 0
    block = json.loads((tmp_path / "out" / "timing.json").read_text())["provenance"]
    assert block["pipeline"] == str(bundle.resolve()) and block["fingerprints"]["labeling"]


def test_the_commit_is_the_checkout_trkx_runs_from():
    state = git_state()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    if head.returncode == 0:
        assert state["commit"] == head.stdout.strip() and isinstance(state["dirty"], bool)
    block = provenance()
    assert set(block["packages"]) == set(PACKAGES) and block["machine"]["threads"] >= 1


def test_the_commit_is_read_when_the_pipeline_loads(tiny_run, monkeypatch):
    """A commit made while a long run works (the checkout moves under it) does not relabel the
    run's results: the git state is read when the pipeline loads, not when a result is written."""
    import trkx.provenance as prov
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    git_state.cache_clear()
    Pipeline(tiny_run[0].path)

    def moved(cmd, *args, **kw):
        return subprocess.CompletedProcess(cmd, 0, stdout="0" * 40 + "\n", stderr="")
    monkeypatch.setattr(prov.subprocess, "run", moved)       # HEAD moved under the run
    assert provenance()["commit"] == head.stdout.strip()
