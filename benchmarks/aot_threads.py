"""The edge classifier's AOTInductor package compiled at each thread count and run at each, side by
side on one test event of a trained pipeline: the seconds of the network alone (inputs built
beforehand), the mean over ``--repeat`` calls after one untimed call.

    python benchmarks/aot_threads.py configs/benchmark.yaml [--threads 1 2] [--event 1]

Inductor writes a CPU kernel for the thread count it compiles at (``trkx.aot.package_name``), so
the diagonal of the table is what trkx runs.  Prints a markdown table and writes it with the
figures to ``<workdir>/aot_threads.{md,json}``."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from trkx.aot import compile_package, edge_classifier_shapes, load_package
from trkx.provenance import stamped
from trkx.runner import Pipeline
from trkx.storage import load_event, write_json, write_text


def classifier_inputs(pipe, outputs, event_index: int):
    """The first stage with a compiled network, and its inputs on test event ``event_index``."""
    event = load_event(outputs[0].paths["test"][event_index])
    for stage in pipe.stages:
        if hasattr(stage, "aot_enabled") and stage.aot_enabled():
            return stage, stage.example_inputs(event)
        with torch.no_grad():
            event = stage.infer(event)
    raise SystemExit(f"{pipe.path}: no stage compiles its network ahead of time (compile: true)")


def seconds_per_call(run, inputs, repeat: int) -> float:
    with torch.no_grad():
        run(*inputs)
        t0 = time.perf_counter()
        for _ in range(repeat):
            run(*inputs)
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--event", type=int, default=1, help="index of the test event")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    pipe = Pipeline(args.pipeline, progress=False)
    outputs = pipe.run(write_outputs=False)       # from the cache after `trkx run`
    stage, inputs = classifier_inputs(pipe, outputs, args.event)
    net = stage.model.net.eval()
    start = torch.get_num_threads()
    seconds = {}
    try:
        with tempfile.TemporaryDirectory(prefix="trkx-aot-threads-") as tmp:
            runners = {}
            for n in args.threads:
                torch.set_num_threads(n)
                path = Path(tmp) / f"t{n}.pt2"
                compile_package(net, inputs, edge_classifier_shapes(), path)
                runners[n] = load_package(path)
            for run_at in args.threads:
                torch.set_num_threads(run_at)
                for made_at, run in runners.items():
                    seconds[(made_at, run_at)] = seconds_per_call(run, inputs, args.repeat)
    finally:
        torch.set_num_threads(start)
    lines = [f"# {stage.name}'s compiled network by thread count: {args.pipeline}, test event {args.event} "
             f"({inputs[0].shape[0]} hits, {inputs[1].shape[1]} edges), seconds per call", "",
             "| compiled at | " + " | ".join(f"run at {n} thread(s)" for n in args.threads) + " |",
             "|---" * (len(args.threads) + 1) + "|"]
    for made_at in args.threads:
        lines.append(f"| {made_at} thread(s) | " + " | ".join(f"{seconds[(made_at, n)]:.3f}" for n in args.threads) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(pipe.workdir / "aot_threads.md", text)
    write_json(pipe.workdir / "aot_threads.json", stamped(
        {"pipeline": args.pipeline, "stage": stage.name, "event": args.event, "hits": int(inputs[0].shape[0]),
         "edges": int(inputs[1].shape[1]),
         "seconds": [{"compiled_at": m, "run_at": r, "seconds": s} for (m, r), s in seconds.items()]},
        pipe.path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
