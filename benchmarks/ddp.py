"""Distributed data-parallel training against one process with the same effective batch, in one
run: the stage trains with `trainer: {devices: N, strategy: ddp}` (N CPU processes, gloo) and
with `trainer: {accumulate_grad_batches: N}` in one process, both through `trkx train`, from the
pipeline's cached upstream events.

    python benchmarks/ddp.py configs/stages/gnn.yaml -p configs/pipeline.yaml [--devices 2] [--epochs E]

Prints the training loss per epoch of both, their largest relative difference, and the wall times.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from trkx.runner import Pipeline
from trkx.training import epoch_losses


def train_copy(configs: Path, pipeline: Path, stage_yaml: Path, cachedir: Path, root: Path, trainer: dict,
               epochs: int | None) -> tuple[float, dict[int, float]]:
    """`trkx train` on a copy of the config folder with ``trainer`` (and ``epochs``) set in the stage YAML."""
    dst = root / "configs"
    shutil.copytree(configs, dst)
    pipe = yaml.safe_load((dst / pipeline.relative_to(configs)).read_text())
    pipe.update(workdir=str(root / "work"), cachedir=str(cachedir))
    (dst / pipeline.relative_to(configs)).write_text(yaml.safe_dump(pipe))
    stage_path = dst / stage_yaml.relative_to(configs)
    stage = yaml.safe_load(stage_path.read_text())
    stage["trainer"] = trainer
    if epochs:
        stage["epochs"] = epochs
    stage_path.write_text(yaml.safe_dump(stage))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trkx.cli", "train", str(stage_path), "-p", str(dst / pipeline.relative_to(configs))],
                   check=True, capture_output=True, text=True, cwd=root)
    name = stage.get("name", stage["stage"])
    return time.perf_counter() - t0, epoch_losses(root / "work" / name / "logs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage_yaml", type=Path)
    ap.add_argument("-p", "--pipeline", type=Path, default=Path("configs/pipeline.yaml"))
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    a = ap.parse_args()
    pipe = Pipeline(a.pipeline, progress=False)
    stage = next(s for s, p in zip(pipe.stages, pipe.stage_paths) if p.resolve() == a.stage_yaml.resolve())
    pipe.upstream_of(stage)                 # the upstream events in the cache before either run
    configs = a.pipeline.resolve().parent
    with tempfile.TemporaryDirectory(prefix="trkx-ddp-") as tmp:
        runs = {}
        for label, trainer in (("ddp", {"accelerator": "cpu", "devices": a.devices, "strategy": "ddp"}),
                               ("one", {"accelerator": "cpu", "accumulate_grad_batches": a.devices})):
            runs[label] = train_copy(configs, a.pipeline.resolve(), a.stage_yaml.resolve(), pipe.cachedir.resolve(),
                                     Path(tmp) / label, trainer, a.epochs)
    (t_ddp, ddp), (t_one, one) = runs["ddp"], runs["one"]
    print(f"| epoch | DDP, {a.devices} processes | 1 process, accumulate {a.devices} | relative difference |")
    print("|---|---|---|---|")
    worst = 0.0
    for epoch in sorted(ddp):
        diff = abs(ddp[epoch] - one[epoch]) / abs(one[epoch])
        worst = max(worst, diff)
        print(f"| {epoch} | {ddp[epoch]:.4f} | {one[epoch]:.4f} | {diff:.3f} |")
    print(f"largest relative difference {worst:.3f}; wall time {t_ddp:.1f} s (DDP) vs {t_one:.1f} s (one process)")


if __name__ == "__main__":
    main()
