"""Edge classifiers through ONNX Runtime: a network exported to ONNX (``torch.onnx``'s exporter,
dynamic hit and edge counts) and run by ONNX Runtime's CPU execution provider.

Needs the ``onnx`` extra (``pip install 'trkx[onnx]'``: onnx, onnxscript, onnxruntime).  Used by
``benchmarks/gnn_inference.py`` to time ONNX Runtime beside eager PyTorch, ``torch.compile`` and
AOTInductor; the pipeline's own inference stays in PyTorch."""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trkx.aot import edge_classifier_shapes
from trkx.storage import atomic_path


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(net: nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path) -> None:
    """Write ``net`` traced on ``inputs`` (x, edge_index, edge features) to ``path`` as ONNX, with
    the hit and edge counts left free.  (The heterogeneous network does not pass ``torch.export``
    with free counts: its per-region groups need a data-dependent guard.)"""
    shapes = edge_classifier_shapes()[:len(inputs)]
    log = logging.getLogger("torch.onnx")       # warnings about torchvision ops trkx does not use
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):   # the exporter's progress lines
            program = torch.onnx.export(net.eval(), inputs, dynamo=True, dynamic_shapes=shapes, optimize=True)
    finally:
        log.setLevel(level)
    with atomic_path(path) as tmp:
        program.save(str(tmp))


class OnnxNetwork:
    """An exported edge classifier in an ONNX Runtime session (CPU execution provider): called like
    the network, on torch tensors, it returns the edge logits as a torch tensor."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: np.ascontiguousarray(t.numpy()) for name, t in zip(self.names, inputs)}
        return torch.from_numpy(self.session.run(None, feed)[0])
