"""Compression of a learned stage's network: magnitude pruning during training (gradual, then
fine-tuning with the mask held), weight fake-quantisation during training (QAT at a chosen bit
width) and int8 post-training quantisation for inference.

Pruning and QAT act on the weight matrices of every ``nn.Linear`` of the network (not biases, not
LayerNorm).  Pruning follows Zhu & Gupta's schedule: the sparsity rises from 0 at ``start`` to
``amount`` at ``end`` (fractions of the training steps) as s(t) = amount (1 - (1 - t)^3), a new
mask every ``every_n_steps`` steps; after every optimiser step the pruned weights are set back to
zero, so fine-tuning after ``end`` keeps the sparsity.  The masks are recomputed from the weights'
magnitudes (zeros first), so a checkpoint holds plain weights and a resumed training goes on.

QAT rounds each weight matrix to ``bits`` (symmetric, per output channel) in the forward pass,
with the straight-through gradient (``torch.fake_quantize_per_channel_affine``); the network then
learns weights that survive the rounding.  ``int8`` inference replaces the ``nn.Linear`` layers by
torch's dynamically quantised int8 ones (weights int8 per channel, activations quantised per batch;
CPU only), which also runs in the C++ tool (LibTorch ships the same kernels).  QAT weights at
``bits`` <= 8 are exactly representable there (the first layer of each MLP stays fp32, see
``quantize_int8``).  ``bf16`` inference runs a copy of the network
with every weight and activation in bfloat16 (8-bit mantissa), fp32 in and out: half the memory
traffic of the gathers and scatters that dominate a GNN's time on a CPU, and it compiles (the
AVX-512 BF16 instructions where the CPU has them).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import parametrize


@dataclass
class PruningConfig:
    amount: float = 0.0                         # final share of zero weights (0: no pruning)
    structured: bool = False                    # remove whole output neurons (rows, by L2 norm)
    scope: Literal["global", "layer"] = "global"   # one magnitude threshold for all layers, or one per layer
    start: float = 0.0                          # share of the training steps before the first mask
    end: float = 0.75                           # ... when ``amount`` is reached (then fine-tuning)
    every_n_steps: int = 50                     # steps between two masks

    def validate(self) -> None:
        if not 0.0 <= self.amount < 1.0:
            raise ValueError("key 'amount': must be in [0, 1)")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError("keys 'start' / 'end': need 0 <= start <= end <= 1")
        if self.every_n_steps < 1:
            raise ValueError("key 'every_n_steps': must be >= 1")


@dataclass
class CompressionConfig:
    pruning: PruningConfig = field(default_factory=PruningConfig)
    qat_bits: int = 0                           # weight fake-quantisation during training (0: off)

    def validate(self) -> None:
        if self.qat_bits != 0 and not 2 <= self.qat_bits <= 8:
            raise ValueError("key 'qat_bits': must be 0 (off) or 2 to 8")

    @property
    def active(self) -> bool:
        return self.pruning.amount > 0 or self.qat_bits > 0


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The network's ``nn.Linear`` layers, in module order."""
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def raw_weight(layer: nn.Linear) -> torch.Tensor:
    """The trained weight parameter (under a QAT parametrisation: the unrounded original)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def sparsity(net: nn.Module) -> dict:
    """Weights of the linear layers: total, non-zero, and the share that is zero."""
    weights = [m.weight.detach() for m in linear_layers(net)]
    total = sum(w.numel() for w in weights)
    nonzero = sum(int((w != 0).sum()) for w in weights)
    return {"weights": total, "nonzero_weights": nonzero, "sparsity": 1.0 - nonzero / total if total else 0.0}


def scheduled_sparsity(cfg: PruningConfig, progress: float) -> float:
    """Target sparsity at ``progress`` (share of training steps done), Zhu & Gupta's cubic ramp."""
    if cfg.end <= cfg.start:
        return cfg.amount if progress >= cfg.start else 0.0
    t = min(max((progress - cfg.start) / (cfg.end - cfg.start), 0.0), 1.0)
    return cfg.amount * (1.0 - (1.0 - t) ** 3)


def magnitude_masks(weights: list[torch.Tensor], amount: float, structured: bool, scope: str) -> list[torch.Tensor]:
    """Keep-masks that zero a share ``amount`` of the weights with the smallest magnitude (of the
    rows with the smallest L2 norm, ``structured``), over all matrices together or per matrix."""
    if structured:
        scores = [w.norm(dim=1, keepdim=True).expand_as(w) for w in weights]
        units = [w.norm(dim=1) for w in weights]
    else:
        scores = units = [w.abs() for w in weights]
    if scope == "global":
        flat = torch.cat([u.flatten() for u in units])
        k = int(round(amount * flat.numel()))
        threshold = torch.kthvalue(flat, k).values if k > 0 else flat.min() - 1
        return [s > threshold for s in scores]
    masks = []
    for s, u in zip(scores, units):
        k = int(round(amount * u.numel()))
        threshold = torch.kthvalue(u.flatten(), k).values if k > 0 else u.min() - 1
        masks.append(s > threshold)
    return masks


class PruningCallback(pl.Callback):
    """Gradual magnitude pruning of the network's linear weights during a Lightning fit."""

    def __init__(self, cfg: PruningConfig):
        self.cfg, self.masks, self.total = cfg, None, 1

    def _weights(self, module: pl.LightningModule) -> list[torch.Tensor]:
        return [raw_weight(m) for m in linear_layers(module.net)]

    def on_train_start(self, trainer, module):
        self.total = max(int(trainer.estimated_stepping_batches), 1)
        step = int(trainer.global_step)
        if step > 0:       # resumed: the schedule's mask where it stopped
            self._prune(module, scheduled_sparsity(self.cfg, step / self.total))

    @torch.no_grad()
    def _prune(self, module, amount: float) -> None:
        weights = self._weights(module)
        self.masks = magnitude_masks([w.detach() for w in weights], amount, self.cfg.structured, self.cfg.scope)
        for w, m in zip(weights, self.masks):
            w.mul_(m)

    @torch.no_grad()
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = int(trainer.global_step)
        progress = step / self.total
        if (step % self.cfg.every_n_steps == 0 or step == self.total) and progress >= self.cfg.start:
            # after ``end`` the target stays ``amount``: the zeros are the smallest weights, so the
            # mask stays the same
            self._prune(module, scheduled_sparsity(self.cfg, progress))
        elif self.masks is not None:
            for w, mask in zip(self._weights(module), self.masks):
                w.mul_(mask)                # the optimiser step moved pruned weights: back to zero


class FakeQuantWeight(nn.Module):
    """Parametrisation: the weight rounded to ``bits`` per output channel (symmetric), with the
    straight-through gradient."""

    def __init__(self, bits: int):
        super().__init__()
        self.qmax = 2 ** (bits - 1) - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax(dim=1) / self.qmax).clamp_min(1e-12)
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -self.qmax, self.qmax)


def add_weight_fake_quant(net: nn.Module, bits: int) -> None:
    """Train ``net`` with its linear weights fake-quantised to ``bits``."""
    for m in linear_layers(net):
        parametrize.register_parametrization(m, "weight", FakeQuantWeight(bits))


def remove_weight_fake_quant(net: nn.Module) -> None:
    """Bake the rounded weights into plain parameters (before saving)."""
    for m in linear_layers(net):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


def quantize_int8(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with its ``nn.Linear`` layers dynamically quantised to int8 (CPU
    inference), except the first layer of each MLP: that one reads the raw hit and edge features,
    or the concatenated states of two hits and an edge, whose parts have scales too different for
    one activation scale per call (small Δφ beside node states of order 1), and kept in fp32 it
    still takes the node projection before the gather (``GroupedMLP.forward_edges``)."""
    import copy
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    net = copy.deepcopy(net).cpu().eval()
    spec = {name: per_channel_dynamic_qconfig for name in int8_layer_names(net)}
    return quantize_dynamic(net, spec, dtype=torch.qint8)


def int8_layer_names(net: nn.Module) -> list[str]:
    """The linear layers ``quantize_int8`` makes int8: all but the first of each ``nn.Sequential``."""
    firsts = {id(m[0]) for m in net.modules() if isinstance(m, nn.Sequential) and len(m)}
    return [name for name, m in net.named_modules() if isinstance(m, nn.Linear) and id(m) not in firsts]


class Bfloat16Network(nn.Module):
    """A bfloat16 copy of ``net`` behind fp32 inputs and outputs: floating-point inputs are cast to
    bf16, the others (edge indices, regions) pass unchanged, floating outputs come back as fp32."""

    def __init__(self, net: nn.Module):
        super().__init__()
        import copy
        self.net = copy.deepcopy(net).eval().to(torch.bfloat16)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None, efeat: torch.Tensor | None = None,
                region: torch.Tensor | None = None):
        # an edge classifier's inputs, or the leading ones of another network's (the embedding: x);
        # trailing Nones are not passed on
        inputs = [x, edge_index, efeat, region]
        while inputs[-1] is None:
            inputs.pop()
        out = self.net(*[_to(t, torch.bfloat16) for t in inputs])
        return tuple(_to(t, torch.float32) for t in out) if isinstance(out, tuple) else _to(out, torch.float32)


def _to(value, dtype: torch.dtype):
    """``value`` cast to ``dtype`` when it is a floating-point tensor, else unchanged."""
    return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value


@functools.cache
def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` has a fast bfloat16 matrix product: a CUDA GPU that supports bf16, or a
    CPU on which oneDNN runs bf16 (AVX-512; AVX512-BF16 and AMX in hardware).  On an AVX2-only CPU
    torch emulates bf16 products: the dense benchmark's GNN took 4.3 s per event there in bf16
    against 0.65 s in fp32 (one thread, AMD EPYC without AVX-512)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):     # a torch built without oneDNN
        return False


def resolve_quantize(mode: str, device: torch.device) -> str:
    """The inference numbers ``quantize: mode`` runs on ``device``: ``auto`` is ``bf16`` where the
    device multiplies bf16 fast (``native_bfloat16``), else ``none`` (fp32); other modes as given."""
    if mode == "auto":
        return "bf16" if native_bfloat16(device) else "none"
    return mode


def quantized_network(net: nn.Module, mode: str) -> nn.Module:
    """The inference copy of ``net`` for ``quantize: mode`` (``int8`` or ``bf16``)."""
    if mode == "int8":
        return quantize_int8(net)
    if mode == "bf16":
        return Bfloat16Network(net)
    raise ValueError(f"key 'quantize': unknown mode {mode!r}")
