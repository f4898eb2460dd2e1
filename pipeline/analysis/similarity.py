"""Representation similarity of two models on the same inputs: linear CKA between layers
(Kornblith et al.) and the share of inputs on which their decisions differ."""
from __future__ import annotations

import torch
from torch import nn


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of two representations of the same n samples, (n, p) and
    (n, q): ‖Yᵀ X‖² / (‖Xᵀ X‖ ‖Yᵀ Y‖) on centred columns (Frobenius norms); 1 for representations
    equal up to rotation and isotropic scaling."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).norm() ** 2
    denom = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / denom) if denom > 0 else float("nan")


def disagreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """The share of positions where two boolean decisions differ."""
    return float((a != b).double().mean()) if a.numel() else float("nan")


def layer_outputs(net: nn.Module, layers: dict[str, str], *inputs) -> dict[str, torch.Tensor]:
    """The outputs of ``net``'s submodules in one forward pass on ``inputs``: ``layers`` maps a
    label to a submodule's dotted path; each output is flattened to (rows, features).  A module
    called several times (message-passing iterations share weights) keeps its last call."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(net.named_modules())
    hooks = [modules[path].register_forward_hook(
        lambda _m, _i, out, label=label: seen.__setitem__(label, out.detach().reshape(out.shape[0], -1)))
        for label, path in layers.items()]
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen
