"""Per-event inference on 1 and on N worker processes, side by side in one run
(`trkx run --workers N`): every stage after the data source, on the first ``--events`` events,
from the trained weights in the pipeline's cache, written to a scratch cache.

    python benchmarks/workers.py configs/benchmark.yaml --events 20 --workers 2

Prints seconds per event for each worker count, the speed-up, and whether the track labels of the
two runs are identical.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from trkx.runner import Pipeline, StageOutput
from trkx.storage import load_event


def infer_chain(pipe: Pipeline, data: StageOutput, root: Path, weights_from: Path) -> tuple[float, list[Path]]:
    """Every stage after the data on ``data``'s test events, caching under ``root`` (the trained
    weights linked from ``weights_from``); returns (wall seconds, the last stage's event files)."""
    for entry in weights_from.glob("*/weights-*"):
        link = root / entry.parent.name / entry.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(entry.resolve())
    pipe.cachedir = root
    out = data
    t0 = time.perf_counter()
    for stage in pipe.stages:
        out = pipe.run_stage(stage, out, splits=("test",))
    return time.perf_counter() - t0, out.paths["test"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", nargs="?", default="configs/pipeline.yaml")
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    pipe = Pipeline(a.pipeline, progress=False)
    pipe.load_trained()            # trained weights only; nothing is trained here
    data = pipe.run_data()
    # the benchmark's events: train events stand in for more test events (inference does not care)
    paths = (data.paths["test"] + data.paths["train"])[: a.events]
    data = StageOutput(data.name, data.fingerprint, {"train": [], "val": [], "test": paths})
    cache = pipe.cachedir
    results = {}
    with tempfile.TemporaryDirectory(prefix="trkx-workers-") as tmp:
        # warm-up on one event (torch.compile, allocator), inherited by the forked workers
        first = StageOutput(data.name, data.fingerprint, {"train": [], "val": [], "test": paths[:1]})
        infer_chain(pipe, first, Path(tmp) / "warmup", cache)
        for workers in (1, a.workers):
            pipe.workers = workers
            root = Path(tmp) / f"w{workers}"
            seconds, files = infer_chain(pipe, data, root, cache)
            results[workers] = (seconds, [load_event(f).track_id for f in files])
            shutil.rmtree(root)
            pipe.cachedir = cache
    one, many = results[1], results[a.workers]
    same = all(torch.equal(x, y) for x, y in zip(one[1], many[1]))
    n = len(paths)
    print(f"{n} events, {torch.get_num_threads()} intra-op threads in all")
    print("| workers | s / event | speed-up |\n|---|---|---|")
    print(f"| 1 | {one[0] / n:.3f} | 1.00 |")
    print(f"| {a.workers} | {many[0] / n:.3f} | {one[0] / many[0]:.2f} |")
    print(f"track labels identical: {same}")


if __name__ == "__main__":
    main()
