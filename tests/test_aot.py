"""The GNN compiled ahead of time (AOTInductor): scores as eager ones, the package kept beside the
weights and loaded, not compiled again, by the next process; a damaged package is compiled again."""
import torch

import trkx.aot as aot
from trkx.stages.edge_classification.gnn import GNNConfig, GNNStage

from test_dense import with_graph


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
    packages = list(tmp_path.glob("aoti-cpu-torch*.pt2"))
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

    # a damaged package is compiled again
    packages[0].write_bytes(b"not a package")
    third = _stage(tmp_path)
    third._ensure_model(event.x.shape[1]).load_state_dict(eager.model.state_dict())
    with torch.no_grad():
        assert torch.allclose(third.infer(event.clone()).gnn_score, want, atol=1e-5)
    assert packages[0].stat().st_size > 1000
