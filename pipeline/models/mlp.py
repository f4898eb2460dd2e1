"""Multi-layer perceptrons: a plain one and one routed by group (detector region, region pair)."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"key 'activation': unknown {name!r} (choose from {', '.join(ACTIVATIONS)})")


def make_mlp(in_dim: int, hidden: int, out_dim: int, layers: int, activation: str = "silu",
             layernorm: bool = True, out_activation: bool = False) -> nn.Sequential:
    """``layers`` linear layers (``layers - 1`` hidden), with optional LayerNorm after each hidden one."""
    act = ACTIVATIONS[activation]
    mods: list[nn.Module] = []
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        last = i == len(dims) - 2
        if not last or out_activation:
            if layernorm:
                mods.append(nn.LayerNorm(b))
            mods.append(act())
    return nn.Sequential(*mods)


class GroupedMLP(nn.Module):
    """One MLP per group (detector region or region pair); rows are routed by ``group``."""

    def __init__(self, n_groups: int, *mlp_args, **mlp_kw):
        super().__init__()
        self.nets = nn.ModuleList([make_mlp(*mlp_args, **mlp_kw) for _ in range(n_groups)])

    def forward(self, inp: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
        if len(self.nets) == 1:
            return self.nets[0](inp)
        idx, outs = [], []
        for g, net in enumerate(self.nets):
            rows = torch.nonzero(group == g).squeeze(-1)
            if rows.numel():
                idx.append(rows)
                outs.append(net(inp.index_select(0, rows)))
        order = torch.cat(idx)
        out = torch.cat(outs)
        return out.index_select(0, torch.argsort(order))

    def forward_edges(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, e: torch.Tensor,
                      group: torch.Tensor | None, project: bool = True) -> torch.Tensor:
        """The MLP of ``[h[src], h[dst], e]`` per edge.  With one group the first layer is applied
        to the nodes before the gather: W·[h_s, h_d, e] = (W_s·h)[src] + (W_d·h)[dst] + W_e·e,
        so per edge it costs one (edge_dim x out) product instead of ((2 node_dim + edge_dim) x out)."""
        if len(self.nets) > 1 or not project or not isinstance(self.nets[0][0], nn.Linear):
            # (a quantised first layer has no float weight to split)
            return self(torch.cat([h.index_select(0, src), h.index_select(0, dst), e], -1), group)
        first, rest = self.nets[0][0], self.nets[0][1:]
        d = h.shape[1]
        w_s, w_d, w_e = first.weight[:, :d], first.weight[:, d:2 * d], first.weight[:, 2 * d:]
        node = h @ torch.cat([w_s, w_d]).t()                     # (N, 2 out): both projections at once
        out = node[:, :w_s.shape[0]].index_select(0, src) + node[:, w_s.shape[0]:].index_select(0, dst)
        out = torch.addmm(out, e, w_e.t()) + first.bias
        return rest(out)
