"""Per-stage, per-event timing and the mean ± std table."""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued CUDA work so that wall-clock timings are honest."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


@contextmanager
def stopwatch(out: list, device=None):
    """Append the elapsed seconds of the block to ``out`` (synchronising CUDA on both ends)."""
    synchronize(device)
    t0 = time.perf_counter()
    yield
    synchronize(device)
    out.append(time.perf_counter() - t0)


def summarize(per_stage: dict[str, list[float]]) -> dict[str, dict]:
    """{stage: {mean, std, n}} plus a 'total' row summing stages event by event."""
    out = {}
    for stage, times in per_stage.items():
        a = np.asarray(times, dtype=float)
        out[stage] = {"mean": float(a.mean()) if a.size else 0.0, "std": float(a.std()) if a.size else 0.0,
                      "n": int(a.size)}
    lengths = {len(v) for v in per_stage.values()}
    if per_stage and len(lengths) == 1:
        total = np.sum([np.asarray(v, dtype=float) for v in per_stage.values()], axis=0)
        out["total"] = {"mean": float(total.mean()), "std": float(total.std()), "n": int(total.size)}
    return out


def format_seconds(mean: float, std: float) -> str:
    digits = max(2, -int(np.floor(np.log10(max(mean, 1e-6)))) + 1)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def timing_table(summary: dict[str, dict], title: str = "seconds per event") -> str:
    """Plain-text table: stage | mean ± std | events."""
    width = max([len(s) for s in summary] + [5])
    lines = [f"{'stage':<{width}}  {title:>24}  {'events':>6}", "-" * (width + 34)]
    for stage, row in summary.items():
        if stage == "total":
            lines.append("-" * (width + 34))
        lines.append(f"{stage:<{width}}  {format_seconds(row['mean'], row['std']):>24}  {row['n']:>6}")
    return "\n".join(lines)
