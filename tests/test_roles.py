"""Role interfaces: a new stage is one file in its role's folder plus one YAML; per-edge fields
declared by the stages stay aligned; a track builder reads the last edge classifier's score."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from conftest import make_pipeline, package_copy
from torch_geometric.data import Data

from trkx.cli import main
from trkx.event import select_edges
from trkx.runner import ROLE_WORDS, Pipeline
from trkx.stage import STAGES, EdgeClassifier, edge_fields, register, registered_stages

TOY_STAGE = '''"""Test-only toy stage: every particle's hits are one track (a truth oracle, built in one shot)."""
from dataclasses import dataclass

import torch

from trkx.stage import TrackBuilder, register


@dataclass
class ToyConfig:
    min_hits: int = 3


@register("toy_truth_tracks")
class ToyTruthTracks(TrackBuilder):
    Config = ToyConfig
    needs_edge_scores = False

    def infer(self, event):
        pid = event.particle_id
        _, tid = torch.unique(pid, return_inverse=True)
        big = torch.bincount(tid)[tid] >= self.config.min_hits
        event.track_id = torch.where((pid != 0) & big, tid, -1)
        return event
'''


def test_a_new_stage_is_one_file_in_its_role_folder_and_one_yaml(tmp_path, tiny_run):
    """A toy one-shot track builder dropped into stages/track_building/ of a copy of trkx runs in a
    pipeline (in a fresh process, no other module edited) right after the data source."""
    pkg = package_copy(tmp_path)
    (pkg / "stages" / "track_building" / "toy_truth_tracks.py").write_text(TOY_STAGE)
    path = make_pipeline(tmp_path, stages=["stages/toy.yaml"], cachedir=str(tiny_run[0].cachedir))
    (path.parent / "stages" / "toy.yaml").write_text("stage: toy_truth_tracks\nmin_hits: 3\n")
    result = subprocess.run([sys.executable, "-m", "trkx.cli", "run", str(path), "--no-progress"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(pkg.parent)})
    assert result.returncode == 0, result.stderr
    assert "toy_truth_tracks" not in CliRunner().invoke(main, ["stages"]).output    # not in this tree
    metrics = json.loads((tmp_path / "work" / "metrics.json").read_text())
    assert metrics["track_efficiency"] == 1.0 and metrics["fake_rate"] == 0.0


def test_edge_selection_keeps_every_declared_field_aligned():
    @register("toy_scorer_for_test")
    class ToyScorer(EdgeClassifier):
        score_field = "toy_score"

    try:
        assert {"y", "filter_score", "gnn_score", "core_edge", "toy_score"} <= set(edge_fields())
        event = Data(num_nodes=4, edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), y=torch.tensor([1, 0, 1]),
                     toy_score=torch.tensor([0.9, 0.1, 0.8]), hit_id=torch.arange(4))
        out = select_edges(event, torch.tensor([True, False, True]))
        assert out.edge_index.tolist() == [[0, 2], [1, 3]]
        assert out.toy_score.tolist() == pytest.approx([0.9, 0.8]) and out.y.tolist() == [1, 1]
        assert out.hit_id.tolist() == [0, 1, 2, 3]          # per-hit fields untouched
    finally:
        del STAGES["toy_scorer_for_test"]


def test_track_builder_reads_the_last_edge_classifier_unless_told(tmp_path):
    chain = ["stages/embedding.yaml", "stages/graph.yaml", "stages/filter.yaml"]
    after_filter = Pipeline(make_pipeline(tmp_path, stages=chain + ["stages/labeling.yaml"])).stages[-1]
    assert after_filter.config.score_field == "filter_score"
    after_gnn = Pipeline(make_pipeline(tmp_path, stages=chain + ["stages/gnn.yaml", "stages/labeling.yaml"]))
    assert after_gnn.stages[-1].config.score_field == "gnn_score"
    told = make_pipeline(tmp_path, {"labeling": {"score_field": "filter_score"}},
                         stages=chain + ["stages/gnn.yaml", "stages/labeling.yaml"])
    assert Pipeline(told).stages[-1].config.score_field == "filter_score"


def test_data_source_misplaced_fails_at_load_with_one_line(tmp_path):
    inside = make_pipeline(tmp_path / "a", stages=["stages/data.yaml", "stages/module_map.yaml"])
    not_a_source = make_pipeline(tmp_path / "b", data="stages/module_map.yaml")
    for path, message in ((inside, "a data source belongs under 'data:'"),
                          (not_a_source, "'data:' must name a data source")):
        result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
        assert result.exit_code == 2
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_trkx_stages_lists_every_stage_under_its_role():
    out = CliRunner().invoke(main, ["stages"]).output
    lines = out.splitlines()
    roles = [l.rstrip(":") for l in lines if not l.startswith(" ")]
    assert roles == ["data source", "embedding", "graph construction", "edge classification", "track building"]
    under = {}
    for line in lines:
        if not line.startswith(" "):
            role = line.rstrip(":")
        else:
            under[line.split()[0]] = role
    # every registered stage (the built-in ones and any a plugin registered), under its own role
    assert under == {name: ROLE_WORDS[cls.role] for name, cls in registered_stages().items()}
    assert {"data", "graph", "module_map", "filter", "gnn", "labeling", "influencer"} <= set(under)
