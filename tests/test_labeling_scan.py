"""benchmarks/labeling_scan.py: track-building settings scored on the validation events only."""
import importlib.util
import json
from pathlib import Path

from conftest import make_pipeline

_spec = importlib.util.spec_from_file_location("labeling_scan", Path(__file__).parents[1] / "benchmarks" / "labeling_scan.py")
labeling_scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(labeling_scan)


def test_scan_scores_each_setting_on_the_validation_events(tmp_path, capsys):
    gnn = {"sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 3}
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction", "min_hits": 3}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"])
    assert labeling_scan.main([str(path), "--set", "min_hits", "3", "100", "--set", "cut", "0.5"]) == 0
    scan = json.loads((tmp_path / "work" / "labeling_scan" / "scan.json").read_text())
    assert scan["validation_events"] == 1                       # n_val of the tiny data config
    rows = {r["setting"]["min_hits"]: r for r in scan["rows"]}
    assert rows[3]["efficiency"] > 0.3 and rows[100]["efficiency"] == 0.0   # no track has 100 hits
    assert "| 3 | 0.5 * |" in capsys.readouterr().out           # the YAML's own setting is marked
    # the test events were never run through the chain's last stages
    assert not list((tmp_path / "work" / "labeling").glob("*/test/*.pt"))
