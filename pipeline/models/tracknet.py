"""TrackNETv2 (Ariadne; Goncharov, Schavelev et al.): a recurrent network that follows a track
candidate station by station.  From the hits so far (a causal 1-d convolution over the last
``kernel`` steps, then a GRU) and the next station's description, it predicts an ellipse on that
station: a centre and two semi-axes in the station's local coordinates, measured from the
candidate's last hit.  The hits inside the ellipse are the candidate's possible continuations.

The network steps one hit at a time (``step``), so a track follower can run it on every open
candidate at once; training runs it over whole sequences (``forward``), which is the same
computation (tested)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class TrackNETConfig:
    conv_features: int = 32       # Ariadne's default
    hidden: int = 32              # GRU state
    kernel: int = 3               # causal convolution over the last ``kernel`` hits
    min_axis: float = 1e-3        # smallest semi-axis (local units): keeps the loss finite

    def validate(self) -> None:
        if self.conv_features < 1 or self.hidden < 1 or self.kernel < 1:
            raise ValueError("tracknet: conv_features, hidden and kernel must be >= 1")
        if self.min_axis <= 0:
            raise ValueError("key 'min_axis': must be positive")


class TrackNETv2(nn.Module):
    """Inputs per hit ``in_dim`` features; per step the next station's ``station_dim``-feature
    description; output per step (centre u, centre v, semi-axis u, semi-axis v)."""

    def __init__(self, in_dim: int, station_dim: int, cfg: TrackNETConfig):
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv1d(in_dim, cfg.conv_features, cfg.kernel)
        self.gru = nn.GRUCell(cfg.conv_features, cfg.hidden)
        self.head = nn.Sequential(nn.Linear(cfg.hidden + station_dim, cfg.hidden), nn.SiLU(),
                                  nn.Linear(cfg.hidden, 4))

    def initial_state(self, n: int, in_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(GRU state, input window) of ``n`` empty candidates."""
        p = self.gru.weight_hh
        return p.new_zeros(n, self.cfg.hidden), p.new_zeros(n, self.cfg.kernel, in_dim)

    def step(self, state: torch.Tensor, window: torch.Tensor, hit: torch.Tensor):
        """One more hit (``hit``: (n, in_dim)) on ``n`` candidates: the new (state, window)."""
        window = torch.cat([window[:, 1:], hit[:, None]], 1)
        feat = F.relu(self.conv(window.transpose(1, 2)).squeeze(-1))
        return self.gru(feat, state), window

    def ellipse(self, state: torch.Tensor, station: torch.Tensor) -> torch.Tensor:
        """(n, 4): centre (u, v) and semi-axes (u, v) > ``min_axis`` on the described stations."""
        out = self.head(torch.cat([state, station], -1))
        return torch.cat([out[:, :2], F.softplus(out[:, 2:]) + self.cfg.min_axis], -1)

    def forward(self, hits: torch.Tensor, stations: torch.Tensor) -> torch.Tensor:
        """(B, L, in_dim) hit sequences and (B, L - 1, station_dim) next stations -> (B, L - 1, 4):
        the ellipse for hit t + 1 from hits 0..t."""
        state, window = self.initial_state(hits.shape[0], hits.shape[2])
        out = []
        for t in range(hits.shape[1] - 1):
            state, window = self.step(state, window, hits[:, t])
            out.append(self.ellipse(state, stations[:, t]))
        return torch.stack(out, 1)


def ellipse_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distance of ``target`` (..., 2) from the ellipse's centre in semi-axis units (<= 1: inside)."""
    du = (target[..., 0] - pred[..., 0]) / pred[..., 2]
    dv = (target[..., 1] - pred[..., 1]) / pred[..., 3]
    return torch.sqrt(du * du + dv * dv + 1e-12)
