"""Per-event inference on 1 and on N worker processes, side by side in one run
(`trkx run --workers N`), and with ``--cluster`` also on Dask local clusters of 1 and N workers
(`trkx run --cluster local:N`): every stage after the data source, on the first ``--events``
events, from the trained weights in the pipeline's cache, written to a scratch cache.

    python benchmarks/workers.py configs/benchmark.yaml --events 20 --workers 2 [--cluster]

Prints seconds per event for each way, the speed-up over one process, and whether the track
labels are identical to one process's. A Dask cluster is started before its row is timed (its
start-up is printed apart); its workers load each stage on their first event of it, inside the
timing.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from trkx.cluster import open_cluster
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
    ap.add_argument("--cluster", action="store_true", help="Also Dask local clusters of 1 and N workers.")
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
        pipe.workers = 1
        for spec in (["local:1", f"local:{a.workers}"] if a.cluster else []):
            t0 = time.perf_counter()
            with open_cluster(spec) as client:
                print(f"{spec}: started in {time.perf_counter() - t0:.1f} s")
                pipe.client = client
                root = Path(tmp) / spec.replace(":", "")
                seconds, files = infer_chain(pipe, data, root, cache)
                results[f"dask {spec}"] = (seconds, [load_event(f).track_id for f in files])
                pipe.client = None
                shutil.rmtree(root)
                pipe.cachedir = cache
    one = results[1]
    n = len(paths)
    print(f"{n} events, {torch.get_num_threads()} intra-op threads in all")
    print("| engine | s / event | events / s | speed-up | tracks as one process |\n|---|---|---|---|---|")
    for key, (seconds, labels) in results.items():
        name = f"{key} process{'es' if key != 1 else ''} (fork)" if isinstance(key, int) else key
        same = all(torch.equal(x, y) for x, y in zip(one[1], labels))
        print(f"| {name} | {seconds / n:.3f} | {n / seconds:.2f} | {one[0] / seconds:.2f} | {same} |")


if __name__ == "__main__":
    main()
