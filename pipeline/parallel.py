"""Per-event inference on several processes of one machine (``trkx run --workers N``).

The engine is ``torch.multiprocessing``'s fork context under the standard library's process pool:
no extra service to install or start, and the workers are forked from the process that already
holds the trained stage, so nothing crosses between processes but event paths and timings.
Each worker runs one event at a time and writes it atomically to the cache, exactly as one worker
would; the intra-op threads are split between the workers."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import torch

from trkx.storage import load_event, save_event, write_json
from trkx.timing import stopwatch

_STAGE = None     # the stage a worker runs, inherited from the parent at fork


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    # kernels torch.compile generated in the parent keep the parent's thread count: run the
    # stages eagerly here (dense events, 2 workers against 1: 0.83x with the inherited compiled
    # kernels, 1.05x eager)
    torch._dynamo.config.disable = True


def eval_mode(stages) -> None:
    """Every network of ``stages`` in evaluation mode (inference)."""
    for stage in stages:
        if getattr(stage, "model", None) is not None:
            stage.model.eval()


def eager_worker(stages) -> None:
    """A worker process that loaded ``stages`` itself (``--cluster``): eager, as the forked
    workers, since a compile wait per worker costs more than it saves; networks in eval mode."""
    torch._dynamo.config.disable = True
    eval_mode(stages)


def infer_one(stage, src: Path, dst: Path, device: torch.device) -> float:
    """Run ``stage`` on the event at ``src``; write it to ``dst`` (and its inference time next to
    it); returns the seconds."""
    event = load_event(src)
    times: list[float] = []
    with torch.no_grad(), stopwatch(times, device):
        event = stage.infer(event)
    write_json(dst.with_suffix(".time.json"), {"seconds": times[0]})
    save_event(event, dst)
    return times[0]


def warm_up(stage, src: Path, device: torch.device) -> float:
    """Seconds of ``stage.warm_up`` on the event at ``src``: a stage that prepares itself once
    before its first event (a compile) declares ``warm_up(event)``; the runner times it apart
    from the per-event figures (``timing.json``'s ``startup``)."""
    event = load_event(src)
    times: list[float] = []
    with torch.no_grad(), stopwatch(times, device):
        stage.warm_up(event)
    return times[0]


def _run(job: tuple[Path, Path, torch.device]) -> float:
    return infer_one(_STAGE, *job)


def infer_parallel(stage, jobs: list[tuple[Path, Path]], workers: int, device: torch.device) -> Iterator[float]:
    """``infer_one`` over ``jobs`` (src, dst) on ``workers`` forked processes; yields the seconds
    per event in job order."""
    global _STAGE
    _STAGE = stage
    threads = max(1, torch.get_num_threads() // workers)
    ctx = torch.multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(threads,)) as pool:
            yield from pool.map(_run, [(src, dst, device) for src, dst in jobs])
    finally:
        _STAGE = None
