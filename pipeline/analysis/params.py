"""A network's parameters as one flat vector, and its loss as a function of that vector."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call


class FlatParameters:
    """The trainable parameters of ``net`` (in ``named_parameters`` order) as one flat vector:
    ``flat()`` reads it, ``unflatten(v)`` gives the name -> tensor dict ``functional_call`` takes."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.names, self.shapes, self.sizes = [], [], []
        for name, p in net.named_parameters():
            if p.requires_grad:
                self.names.append(name)
                self.shapes.append(p.shape)
                self.sizes.append(p.numel())
        self.dim = sum(self.sizes)

    def flat(self) -> torch.Tensor:
        params = dict(self.net.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(vector, self.sizes)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def call(self, vector: torch.Tensor, *args, **kwargs):
        """``net(*args, **kwargs)`` with the parameters ``vector`` (buffers as they are)."""
        return functional_call(self.net, self.unflatten(vector), args, kwargs)


def mean_objective(space: FlatParameters, batches: Iterable, objective: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """``theta -> mean over batches of objective(outputs_fn, batch)``, where ``outputs_fn(*inputs)``
    runs the network with ``theta``.  ``batches`` is iterated on every call (a list)."""
    batches = list(batches)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for batch in batches:
            total = total + objective(lambda *a, **k: space.call(theta, *a, **k), batch)
        return total / len(batches)
    return loss
