"""The cache sees code: a stage's fingerprint covers its module and the trkx modules it imports
(``trkx.codehash``), so editing a stage's code recomputes exactly that stage and the ones after
it, and editing code no stage runs (the command line) recomputes nothing."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_pipeline, package_copy

from trkx.codehash import code_closure, code_digest

STAGES = ["data", "embedding", "graph", "filter", "gnn", "labeling"]


def _computed(pkg: Path, pipeline: Path) -> dict[str, int]:
    """Run the pipeline with the copied package; events computed per stage."""
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    out = subprocess.run([sys.executable, "-m", "trkx.cli", "run", str(pipeline), "--no-progress"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert str(pkg) in subprocess.run([sys.executable, "-c", "import trkx; print(trkx.__file__)"], env=env,
                                      capture_output=True, text=True).stdout
    rows = dict(re.findall(r"^\s+(\w+)\s+[0-9a-f]{16}\s+computed\s+(\d+)", out.stdout, re.M))
    return {name: int(rows[name]) for name in STAGES}


def _edit(path: Path, text: str) -> str:
    before = path.read_text()
    path.write_text(before + text)
    return before


def test_editing_a_stage_recomputes_it_and_what_follows_and_the_cli_recomputes_nothing(tmp_path):
    pkg = package_copy(tmp_path)
    pipeline = make_pipeline(tmp_path)
    assert all(n > 0 for n in _computed(pkg, pipeline).values())
    after = lambda first: {s: (i >= STAGES.index(first)) for i, s in enumerate(STAGES)}  # noqa: E731

    _edit(pkg / "cli.py", "\n_EDITED = 1\n")                               # no stage runs the CLI
    assert _computed(pkg, pipeline) == dict.fromkeys(STAGES, 0)
    labeling = pkg / "stages" / "track_building" / "labeling.py"
    original = _edit(labeling, "\n# a comment only: the syntax tree is the same\n")
    assert _computed(pkg, pipeline) == dict.fromkeys(STAGES, 0)

    labeling.write_text(original + "\n_EDITED = 1\n")                      # track building
    assert {s: n > 0 for s, n in _computed(pkg, pipeline).items()} == after("labeling")
    labeling.write_text(original)                                          # reverted: the old entries again
    assert _computed(pkg, pipeline) == dict.fromkeys(STAGES, 0)

    _edit(pkg / "stages" / "graph_construction" / "radius_graph.py", "\n_EDITED = 1\n")   # graph construction
    assert {s: n > 0 for s, n in _computed(pkg, pipeline).items()} == after("graph")

    _edit(pkg / "models" / "interaction_gnn.py", "\n_EDITED = 1\n")      # a trained stage's model
    assert {s: n > 0 for s, n in _computed(pkg, pipeline).items()} == after("gnn")


def test_the_code_of_a_stage_is_its_imports_and_not_every_stage():
    gnn = code_closure("trkx.stages.edge_classification.gnn")
    assert {"trkx.training", "trkx.losses", "trkx.models.interaction_gnn", "trkx.event"} <= set(gnn)
    # the models package re-exports every network: the GNN's code is its own network, not the embedding's
    assert "trkx.models.embedding" not in gnn and "trkx.models" in gnn
    for module in ("trkx.cli", "trkx.report", "trkx.runner", "trkx.stages.track_building.labeling"):
        assert module not in gnn
    assert code_digest("trkx.stages.edge_classification.gnn") != code_digest("trkx.stages.edge_classification.filter")
