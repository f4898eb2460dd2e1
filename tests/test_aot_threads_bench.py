"""benchmarks/aot_threads.py on a tiny module-map chain: a package per thread count, each run at
every count, the table and its JSON written."""
import importlib.util
import json
from pathlib import Path

import torch

from conftest import make_pipeline

_spec = importlib.util.spec_from_file_location("aot_threads", Path(__file__).parents[1] / "benchmarks" / "aot_threads.py")
aot_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aot_threads)


def test_every_compiled_count_is_run_at_every_count(tmp_path):
    from trkx.runner import run_pipeline
    gnn = {"compile": True, "sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 1}
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction"}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                         cachedir=str(tmp_path / "cache"))
    run_pipeline(path, progress=False)
    threads = torch.get_num_threads()
    assert aot_threads.main([str(path), "--threads", "1", "2", "--event", "0", "--repeat", "1"]) == 0
    assert torch.get_num_threads() == threads                       # the caller's count restored
    result = json.loads((tmp_path / "work" / "aot_threads.json").read_text())
    cells = {(c["compiled_at"], c["run_at"]) for c in result["seconds"] if c["seconds"] > 0}
    assert cells == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert result["stage"] == "gnn" and result["edges"] > 0 and "provenance" in result
    table = (tmp_path / "work" / "aot_threads.md").read_text()
    assert "| 1 thread(s) |" in table and "| 2 thread(s) |" in table
