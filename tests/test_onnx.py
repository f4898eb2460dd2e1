"""The GNN through ONNX Runtime (``trkx.onnx``): the same scores as eager PyTorch on graphs of
other sizes than the one it was exported on."""
import pytest
import torch

from trkx.event import EDGE_FEATURES
from trkx.models import InteractionGNN
from trkx.onnx import OnnxNetwork, export_onnx, onnx_available
from trkx.stages.edge_classification.gnn import GNNConfig

pytestmark = pytest.mark.skipif(not onnx_available(), reason="onnxruntime / onnxscript not installed")


def graph(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g), torch.randint(0, n, (2, m), generator=g),
            torch.randn(m, len(EDGE_FEATURES), generator=g), torch.randint(0, 3, (n,), generator=g))


@pytest.mark.parametrize("projection", [False, True])
def test_onnx_runtime_scores_as_eager(tmp_path, projection):
    torch.manual_seed(0)
    net = InteractionGNN(3, len(EDGE_FEATURES), GNNConfig(hidden=16, n_iterations=3)).eval()
    net.node_projection = projection
    inputs = graph(200, 900, 1)[:3]
    export_onnx(net, inputs, tmp_path / "gnn.onnx")
    session = OnnxNetwork(tmp_path / "gnn.onnx")
    for n, m in ((200, 900), (57, 301), (1000, 5000)):
        other = graph(n, m, n)[:len(inputs)]
        with torch.no_grad():
            want = net(*other)
        got = session(*other)
        assert got.shape == want.shape == (m,)
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
