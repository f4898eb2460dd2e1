"""benchmarks/module_map_scan.py: module-map settings scored on the validation events only."""
import importlib.util
import json
from pathlib import Path

import torch

from conftest import make_pipeline

_spec = importlib.util.spec_from_file_location("module_map_scan", Path(__file__).parents[1] / "benchmarks" / "module_map_scan.py")
module_map_scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(module_map_scan)


def test_with_setting_reaches_into_sections():
    cfg = {"margin": 0.2, "triplets": {"enabled": True, "quantile": 0.001}}
    out = module_map_scan.with_setting(cfg, {"margin": 0.3, "triplets.quantile": 0.01})
    assert out == {"margin": 0.3, "triplets": {"enabled": True, "quantile": 0.01}}
    assert cfg["triplets"]["quantile"] == 0.001                 # the stage's own config untouched


def test_scan_scores_each_setting_on_the_validation_events(tmp_path, capsys):
    path = make_pipeline(tmp_path, stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"])
    threads = torch.get_num_threads()
    assert module_map_scan.main([str(path), "--set", "margin", "0.0", "1.0", "--set", "triplets.enabled", "false"]) == 0
    scan = json.loads((tmp_path / "work" / "module_map_scan" / "scan.json").read_text())
    assert scan["validation_events"] == 1
    assert torch.get_num_threads() == threads                    # the scan's one thread is not left behind
    narrow, wide = scan["rows"]
    # wider windows: at least as many edges and as much of the truth
    assert wide["edges_per_event"] > narrow["edges_per_event"]
    assert wide["target_edge_efficiency"] >= narrow["target_edge_efficiency"] > 0.5
    assert "| module pairs |" in capsys.readouterr().out
    assert not (tmp_path / "work" / "module_map").exists()       # no stage ran, nothing cached
