"""The GNN compiled ahead of time (AOTInductor): scores as eager ones, the package kept beside the
weights and loaded, not compiled again, by the next process; a damaged package is compiled again."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import trkx.aot as aot
from trkx.cli import main
from trkx.stages.edge_classification.gnn import GNNConfig, GNNStage

from conftest import make_pipeline
from test_dense import with_graph
from test_reco import CPP_TOOL, _run_cpp, _same_track_files, _test_event_csvs

_spec = importlib.util.spec_from_file_location("deploy", Path(__file__).parents[1] / "benchmarks" / "deploy.py")
deploy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deploy)


def _stage(tmp_path, state=None):
    stage = GNNStage(GNNConfig(hidden=8, n_iterations=2, compile=True))
    stage.weights_dir = tmp_path
    return stage


def test_compiled_package_is_kept_and_reloaded(tiny_events, tmp_path, monkeypatch):
    event = with_graph(tiny_events[0], 300)
    eager = GNNStage(GNNConfig(hidden=8, n_iterations=2))
    eager._ensure_model(event.x.shape[1])
    first = _stage(tmp_path)
    first._ensure_model(event.x.shape[1]).load_state_dict(eager.model.state_dict())
    with torch.no_grad():
        want = eager.infer(event.clone()).gnn_score
        got = first.infer(event.clone()).gnn_score
    packages = list(tmp_path.glob(f"aoti-frozen-cpu-t{torch.get_num_threads()}-torch*.pt2"))
    assert len(packages) == 1 and torch.allclose(want, got, atol=1e-5)

    # a later process: loads the package, compiles nothing
    def no_compile(*args, **kw):
        raise AssertionError("compiled again")
    monkeypatch.setattr(aot, "compile_package", no_compile)
    second = _stage(tmp_path)
    second._ensure_model(event.x.shape[1]).load_state_dict(eager.model.state_dict())
    smaller = event.clone()
    smaller.edge_index = smaller.edge_index[:, :100]            # another edge count, same package
    with torch.no_grad():
        assert torch.allclose(second.infer(smaller.clone()).gnn_score, eager.infer(smaller.clone()).gnn_score,
                              atol=1e-5)
    monkeypatch.undo()

    # a damaged package is compiled again (the compiler stood in for by one that writes the good
    # package back and counts its calls: a second real compilation would cost half a minute)
    good = packages[0].read_bytes()
    calls = []

    def recompile(net, inputs, shapes, path, **kw):
        calls.append(path)
        Path(path).write_bytes(good)
    monkeypatch.setattr(aot, "compile_package", recompile)
    packages[0].write_bytes(b"not a package")
    third = _stage(tmp_path)
    third._ensure_model(event.x.shape[1]).load_state_dict(eager.model.state_dict())
    with torch.no_grad():
        assert torch.allclose(third.infer(event.clone()).gnn_score, want, atol=1e-5)
    assert calls == [packages[0]] and packages[0].read_bytes() == good


def test_each_thread_count_gets_its_own_compiled_network(tiny_events, tmp_path, monkeypatch):
    """Inductor writes kernels for the thread count it compiles at, so a process that changes its
    thread count (``trkx baseline ckf`` times on one) compiles, or loads, another package."""
    assert aot.package_name("cpu", "abc", threads=1) != aot.package_name("cpu", "abc", threads=2)
    assert aot.package_name("cpu", "abc") == aot.package_name("cpu", "abc", threads=torch.get_num_threads())
    event = with_graph(tiny_events[0], 300)
    stage = _stage(tmp_path)
    stage._ensure_model(event.x.shape[1])
    made = []

    def fake_aot(inputs):
        made.append((torch.get_num_threads(), stage._package_path().name))
        return stage.model.net
    monkeypatch.setattr(stage, "_aot", fake_aot)
    inputs = (event.x, event.edge_index, torch.zeros(event.edge_index.shape[1], 6), event.region)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 1, 2):
            torch.set_num_threads(n)
            stage.network(inputs)
    finally:
        torch.set_num_threads(threads)
    assert [n for n, _ in made] == [1, 2]                     # compiled once per count, then reused
    assert "-t1-" in made[0][1] and "-t2-" in made[1][1]


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
@pytest.mark.parametrize("quantize", ["none", "bf16"])
def test_compiled_gnn_goes_into_the_bundle_and_runs_in_cpp(tmp_path, quantize):
    """A chain with ``compile: true`` (fp32, bf16): the bundle carries a compiled (frozen) package,
    and `trkx reco` from the bundle and the C++ tool (at the export's thread count and at one
    thread; its inputs are row-major where Python's hit features are column-major) both run it,
    with the same tracks."""
    from trkx.runner import run_pipeline
    gnn = {"compile": True, "quantize": quantize, "sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 3}
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction"}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                         cachedir=str(tmp_path / "cache"))
    pipe, outputs, _ = run_pipeline(path, progress=False)
    kept = list((tmp_path / "cache" / "gnn").glob("weights-*/aoti-frozen-cpu-*.pt2"))
    assert len(kept) == 1
    # the compile is the GNN's warm-up, timed apart: no test event's time holds it
    timing = json.loads((pipe.workdir / "timing.json").read_text())
    assert timing["startup"]["gnn"] > 5 * max(timing["per_event"]["gnn"].values())
    assert CliRunner().invoke(main, ["export", str(path), str(tmp_path / "bundle")]).exit_code == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert [s.get("aoti") for s in manifest["stages"]] == [None, "aoti/gnn.pt2", None]
    assert manifest["stages"][1]["aoti_threads"] == torch.get_num_threads()
    assert "aoti aoti/gnn.pt2" in (tmp_path / "bundle" / "chain.txt").read_text()
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    result = CliRunner().invoke(main, ["reco", str(tmp_path / "bundle"), str(tmp_path / "hits"), str(tmp_path / "py"),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    _run_cpp(tmp_path / "bundle", tmp_path / "hits", ids, tmp_path / "cpp")
    assert _same_track_files(tmp_path / "cpp", tmp_path / "py", ids)
    _run_cpp(tmp_path / "bundle", tmp_path / "hits", ids, tmp_path / "cpp1", "--threads", "1")
    assert _same_track_files(tmp_path / "cpp1", tmp_path / "py", ids)
    # and nearly those of `trkx run` (another compilation: scores differ in the last digits)
    assert deploy.differing_hits(pipe.workdir / "tracks", tmp_path / "py", ids) < 0.02



def test_a_package_reads_any_input_layout(tiny_events, tmp_path):
    """Compiled on a column-major x (as the data stage makes it), a package given a row-major one
    (as the C++ tool passes it) scores as the eager network: inputs are made contiguous at export
    and at every call."""
    event = with_graph(tiny_events[0], 300)
    stage = _stage(tmp_path)
    stage._ensure_model(event.x.shape[1])
    column_major = event.x.t().contiguous().t()
    assert not column_major.is_contiguous()
    from trkx.event import edge_features
    efeat = edge_features(event, event.edge_index)
    with torch.no_grad():
        want = stage.model.net(event.x.contiguous(), event.edge_index, efeat, event.region)
        compiled = stage._aot((column_major, event.edge_index, efeat, event.region))
        got = compiled(event.x.contiguous(), event.edge_index, efeat, event.region)
        again = compiled(column_major, event.edge_index, efeat, event.region)
    assert torch.allclose(got, want, atol=1e-4) and torch.allclose(again, want, atol=1e-4)


def test_same_track_compares_tracks_as_sets_of_hits():
    """deploy.py's agreement: a hit agrees where its track is the same set of hits in both
    labelings, whatever the ids; one merged or shortened track marks only its own hits."""
    import numpy as np
    a = np.array([0, 0, 1, 1, -1, 2, 2])
    assert deploy.same_track(a, np.array([5, 5, 3, 3, -1, 7, 7])).all()
    assert deploy.same_track(a, np.array([0, 0, 1, 1, -1, 1, 1])).tolist() == [True, True, False, False, True, False, False]
    assert deploy.same_track(a, np.array([0, 0, 1, -1, -1, 2, 2])).tolist() == [True, True, False, False, True, True, True]
    # an early split shifts no later track (renumbering by first appearance would mark them all)
    assert deploy.same_track(np.array([0, 0, 0, 1, 1, 2, 2]), np.array([0, 0, 9, 1, 1, 2, 2])).sum() == 4
