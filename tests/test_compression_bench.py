"""benchmarks/compression.py end to end on a tiny module-map chain: two variants, one cache."""
import importlib.util
import json
from pathlib import Path

from conftest import make_pipeline

_spec = importlib.util.spec_from_file_location("compression_bench", Path(__file__).parents[1] / "benchmarks" / "compression.py")
compression_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compression_bench)


def test_variants_share_the_cache_and_fill_the_table(tmp_path, monkeypatch):
    gnn = {"sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 2}
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction"}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                         cachedir="../cache")       # relative to the pipeline YAML: tmp_path/cache
    monkeypatch.chdir(tmp_path)                              # and the pipeline named by a relative path
    relative = str(path.relative_to(tmp_path))
    assert compression_bench.main([relative, "--variants", "fp32", "pruned 50%", "int8 PTQ"]) == 0
    rows = {r["variant"]: r for r in json.loads((tmp_path / "work" / "compression" / "compression.json")
                                              .read_text())["rows"]}
    assert rows["fp32"]["sparsity"] == 0.0 and rows["pruned 50%"]["sparsity"] > 0.49
    assert rows["int8 PTQ"]["bits"] == "8 / 32" and rows["int8 PTQ"]["weights"] == rows["fp32"]["weights"]
    # one data entry and one module map for all variants; two trainings of the GNN (int8 reuses fp32's)
    assert len(list((tmp_path / "cache" / "data").iterdir())) == 1
    assert len(list((tmp_path / "cache" / "gnn").glob("weights-*"))) == 2
    assert all(r["python_s"] > 0 for r in rows.values())
    assert "| int8 PTQ |" in (tmp_path / "work" / "compression" / "compression.md").read_text()
