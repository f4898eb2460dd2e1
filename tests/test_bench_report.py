"""trkx bench, the graph-building and checkpointing benchmarks, report.md."""
import json

import pytest
from click.testing import CliRunner

from trkx.bench import checkpointing_benchmark, graph_building_benchmark
from trkx.cli import main


def test_stage_bench_writes_table(tiny_run):
    pipe, _, _ = tiny_run
    result = CliRunner().invoke(main, ["bench", str(pipe.path), "-r", "1"])
    assert result.exit_code == 0, result.output
    bench = json.loads((pipe.workdir / "bench.json").read_text())
    assert set(bench["stages"]["graph"]) >= {"backend=auto", "backend=kdtree", "backend=grid"}
    assert set(bench["stages"]["gnn"]) == {"precision=32", "precision=bf16-mixed"}
    # every variant ran on every test event once (-r 1), the configured one first
    assert all(row["n"] == bench["events"] == 2 for v in bench["stages"].values() for row in v.values())
    assert next(iter(bench["stages"]["gnn"])) == "precision=32"
    # each alternative is the stage with that one key changed, and it runs
    from trkx.bench import _variants
    for stage in pipe.stages:
        for label, variant in _variants(stage):
            key, value = label.split("=", 1) if "=" in label else (None, None)
            if key is not None:
                assert str(getattr(variant.config, key)) == value and variant.name == stage.name
    assert "| **total** |" in (pipe.workdir / "bench.md").read_text()


def test_graph_building_benchmark_identity(tiny_run):
    pipe, outputs, _ = tiny_run
    from trkx.storage import load_event
    points = [load_event(p).embedding for p in outputs[1].paths["test"]]
    res = graph_building_benchmark(points, 0.1, 32, repeats=1)
    assert all(row["identical_to_kdtree"] for row in res["backends"].values())
    rows = res["backends"]
    for name, row in rows.items():
        assert row["speedup_vs_kdtree"] == pytest.approx(rows["kdtree"]["median_s_per_event"] / row["median_s_per_event"])
        assert row["median_s_per_event"] > 0
    assert rows["grid"]["speedup_vs_kdtree"] != 1.0


def test_graph_building_scaling_cli(tiny_run):
    pipe, outputs, _ = tiny_run
    result = CliRunner().invoke(main, ["bench", str(pipe.path), "--graph-building", "--scaling", "-r", "1"])
    assert result.exit_code == 0, result.output
    res = json.loads((pipe.workdir / "bench_graph_building.json").read_text())
    hits = [row["hits"] for row in res["scaling"]]
    assert hits[0] == res["hits"][0] and hits[-1] == sum(res["hits"]) and hits == sorted(hits)
    assert all(v["identical"] for row in res["scaling"] for v in row["backends"].values())
    assert (pipe.workdir / "bench_graph_building.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Scaling" in result.output


def test_checkpointing_benchmark_runs_each_mode():
    # big enough that activations, not the process's baseline, set the peak (about 1.2 GB unchecked)
    res = checkpointing_benchmark(n_nodes=20000, n_edges=300000, hidden=32, iterations=3)
    assert set(res["modes"]) == {"none", "partial", "maximal"}
    assert all(row["step_s"] > 0 for row in res["modes"].values())
    # checkpointing trades time for memory: keeping fewer activations must lower the peak
    peak = {m: row["peak_memory_mb"] for m, row in res["modes"].items()}
    assert peak["maximal"] < 0.8 * peak["none"] and peak["partial"] < 0.8 * peak["none"]


def test_report_has_tables_and_plots(tiny_run):
    pipe, _, _ = tiny_run
    result = CliRunner().invoke(main, ["eval", str(pipe.path)])
    assert result.exit_code == 0, result.output
    report = (pipe.workdir / "report.md").read_text()
    for needle in ("## Tracks", "two_way (configured)", "TrackML score", "## Edges", "## Stage timing"):
        assert needle in report
    for png in ("efficiency_vs_pt", "efficiency_vs_eta", "edge_metrics", "timing"):
        data = (pipe.workdir / "plots" / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
