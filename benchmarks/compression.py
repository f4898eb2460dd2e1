"""The compression table: a pipeline's edge classifier as trained (fp32), magnitude-pruned, int8
post-training quantised, and quantisation-aware trained, each one run through the same chain on
the same test events.

    python benchmarks/compression.py configs/benchmark.yaml [--stage gnn] [--variants fp32 int8 ...]

Every variant is the stage's YAML plus the keys of ``VARIANTS``; it trains where its training
keys differ (pruning, QAT; the int8 inference reuses the weights it quantises), in a workdir of
its own under ``<workdir>/compression/`` sharing the pipeline's cache (the data and the upstream
stages are not made again).  Columns: weights, non-zero weights, bits, the stage's target edge
efficiency and purity, the chain's track efficiency and fake rate, and the stage's seconds per
event on one thread in Python (after a warm-up event) and in the C++ tool (from an exported
bundle, when cpp/build/trkx-reco is built and the chain has a C++ port).  Writes
``compression.json`` and ``compression.md`` there."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from trkx.bundle import export_bundle
from trkx.compression import sparsity
from trkx.evaluate import evaluate
from trkx.provenance import stamped
from trkx.runner import Pipeline
from trkx.storage import load_event, write_json, write_text
from trkx.variants import variant_pipeline

TOOL = Path(__file__).parents[1] / "cpp" / "build" / "trkx-reco"

VARIANTS = {   # name -> (keys added to the stage's YAML, weight bits); each names its numbers (no 'auto')
    "fp32": ({"quantize": "none"}, "32"),
    "pruned 50%": ({"compression": {"pruning": {"amount": 0.5}}, "quantize": "none"}, "32"),
    "pruned 70%": ({"compression": {"pruning": {"amount": 0.7}}, "quantize": "none"}, "32"),
    "pruned 90%": ({"compression": {"pruning": {"amount": 0.9}}, "quantize": "none"}, "32"),
    "pruned 50%, structured": ({"compression": {"pruning": {"amount": 0.5, "structured": True}},
                                "quantize": "none"}, "32"),
    "bf16": ({"quantize": "bf16"}, "16"),
    # a smaller network instead of a compressed one (issue 24: fewer message-passing iterations)
    "4 iterations, bf16": ({"n_iterations": 4, "quantize": "bf16"}, "16"),
    "4 iterations": ({"n_iterations": 4, "quantize": "none"}, "32"),     # for CPUs without fast bf16
    # int8: all but the first layer of each MLP (``trkx.compression.quantize_int8``)
    "int8 PTQ": ({"quantize": "int8"}, "8 / 32"),
    "int8 QAT": ({"compression": {"qat_bits": 8}, "quantize": "int8"}, "8 / 32"),
    "4-bit QAT": ({"compression": {"qat_bits": 4}, "quantize": "int8"}, "4 / 32"),
}


@contextmanager
def one_thread():
    """torch on one thread inside the block (compiled networks are compiled for it there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def python_seconds(stage, upstream_paths: list[Path]) -> float:
    """The stage's seconds per test event on one thread, after one untimed warm-up event."""
    times = []
    with one_thread():
        for k, p in enumerate([upstream_paths[0]] + list(upstream_paths)):
            event = load_event(p)
            with torch.no_grad():
                t0 = time.perf_counter()
                stage.infer(event)
                if k:
                    times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def cpp_seconds(path: Path, pipe: Pipeline, outputs, stage_name: str, work: Path) -> float | None:
    """The stage's seconds per event in the C++ tool (one thread, after a warm-up event; the bundle
    exported on one thread, so that its compiled network is written for one)."""
    with one_thread():
        manifest = export_bundle(path, work / "bundle", overwrite=True)
    if not manifest["cpp"]["supported"] or not TOOL.exists():
        return None
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    files = [str(csv / f"event{int(p.stem[5:]):09d}-hits.csv") for p in outputs[0].paths["test"]]
    args = [str(TOOL), str(work / "bundle"), "--threads", "1", "--timing", str(work / "timing.json"),
            files[0], str(work / "warmup.csv")]
    for k, f in enumerate(files):
        args += [f, str(work / f"event{k}.csv")]
    subprocess.run(args, check=True, timeout=3600, capture_output=True)
    per_event = json.loads((work / "timing.json").read_text())[1:]
    return float(np.mean([e[stage_name] for e in per_event]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--stage", default="gnn", help="the edge classifier to compress")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args(argv)
    base = Pipeline(a.pipeline, progress=False)
    if a.stage not in base.stage_names():
        raise SystemExit(f"--stage: no stage '{a.stage}' in {a.pipeline}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="trkx-compression-") as tmp:
        for name in a.variants:
            extra, bits = VARIANTS[name]
            extra = {"quantize": "none", **extra}        # fp32 unless the variant says otherwise
            slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
            path = variant_pipeline(base, a.stage, extra, base.workdir / "compression" / slug, Path(tmp), slug)
            pipe = Pipeline(path, progress=False)
            outputs = pipe.run()
            metrics = evaluate(pipe, outputs)
            i = pipe.stage_names().index(a.stage)
            stage = pipe.stages[i - 1]                       # stage_names() counts the data source
            net = getattr(stage, "_float_net", None) or stage.model.net
            work = Path(tmp) / slug
            work.mkdir()
            rows.append({"variant": name, "bits": bits, **sparsity(net),
                         "edge": metrics["edge"][a.stage]["target"],
                         "track_efficiency": metrics["track_efficiency"], "fake_rate": metrics["fake_rate"],
                         "python_s": python_seconds(stage, outputs[i - 1].paths["test"]),
                         "cpp_s": cpp_seconds(path, pipe, outputs, a.stage, work)})
            print(f"{name}: track efficiency {rows[-1]['track_efficiency']:.4f}, "
                  f"{rows[-1]['python_s']:.3f} s/event", flush=True)
    lines = [f"Compression of stage '{a.stage}' (`python benchmarks/compression.py {a.pipeline}`), "
             f"{len(outputs[0].paths['test'])} test events, one thread", "",
             "| variant | weights | non-zero | bits | edge efficiency | edge purity | track efficiency | fake rate "
             "| s / event Python | s / event C++ |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cpp = "—" if r["cpp_s"] is None else f"{r['cpp_s']:.3f}"
        lines.append(f"| {r['variant']} | {r['weights']:,} | {r['nonzero_weights']:,} | {r['bits']} | "
                     f"{r['edge']['efficiency']:.4f} | {r['edge']['purity']:.4f} | {r['track_efficiency']:.4f} | "
                     f"{r['fake_rate']:.4f} | {r['python_s']:.3f} | {cpp} |")
    text = "\n".join(lines) + "\n"
    out = base.workdir / "compression"
    write_text(out / "compression.md", text)
    write_json(out / "compression.json", stamped({"pipeline": a.pipeline, "stage": a.stage, "rows": rows}, base.path))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
