"""Track-finding methods side by side on the same test events: one row per pipeline (the
edge-classification chain, object condensation, influencer condensation), plus the ACTS CKF from
the first pipeline's `trkx baseline ckf` output when it exists.

    python benchmarks/methods.py configs/pipeline.yaml configs/pipeline_oc.yaml configs/pipeline_influencer.yaml

Columns: double-majority efficiency, fake and duplicate rate, TrackML score, seconds per event on
one thread (after one untimed warm-up event), the learned stages' parameters and training seconds
(from each stage's train.json; stages trained before trkx recorded it count as unknown, "?") and,
for one-shot methods, the pT / eta resolution.  Every pipeline runs from its cache (`trkx run`
first).  Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from trkx.baseline import time_chain_single_thread
from trkx.evaluate import evaluate
from trkx.runner import Pipeline


def learned(pipe: Pipeline) -> tuple[str, str]:
    """(parameters, training seconds) of the pipeline's learned stages, summed, as table cells."""
    params, seconds, unknown = 0, 0.0, False
    for stage in pipe.stages:
        net = getattr(getattr(stage, "model", None), "net", None)
        if net is not None:
            params += sum(p.numel() for p in net.parameters())
        if stage.trainable:
            report = Path(stage.weights_dir or "") / "train.json"
            took = json.loads(report.read_text()).get("train_seconds") if report.is_file() else None
            unknown |= took is None
            seconds += took or 0.0
    if not any(s.trainable for s in pipe.stages):
        took = "—"
    else:
        took = ("?" if not seconds else f"{seconds:.0f} + ?") if unknown else f"{seconds:.0f}"
    return f"{params:,}" if params else "—", took


def row(label: str, m: dict, seconds: float | None, std: float | None, extra: tuple[str, str] = ("—", "—")) -> str:
    p = m.get("track_parameters") or {}
    res = f"{p['pt_rel_resolution']:.3f} / {p['eta_resolution']:.3f}" if p.get("tracks") else "—"
    t = f"{seconds:.3f} ± {std:.3f}" if seconds is not None else "—"
    return (f"| {label} | {m['track_efficiency']:.4f} | {m['fake_rate']:.4f} | {m['duplicate_rate']:.4f} | "
            f"{m['trackml_score']:.4f} | {t} | {extra[0]} | {extra[1]} | {res} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipelines", nargs="+")
    a = ap.parse_args()
    lines = ["| method | DM efficiency | fake rate | duplicate rate | TrackML score | s / event (1 thread) | "
             "parameters | training s | pT / η resolution |", "|---|---|---|---|---|---|---|---|---|"]
    for path in a.pipelines:
        pipe = Pipeline(path, progress=False)
        outputs = pipe.run()
        metrics = evaluate(pipe, outputs)
        times, _, _ = time_chain_single_thread(pipe, outputs)
        lines.append(row(f"{pipe.stages[-1].name} (`{path}`)", metrics, float(np.mean(times)), float(np.std(times)),
                         learned(pipe)))
    ckf = Pipeline(a.pipelines[0], progress=False).workdir / "baseline_ckf" / "comparison.json"
    if ckf.is_file():
        c = json.loads(ckf.read_text())["ckf"]
        lines.append(row("ACTS seeding + CKF", c, c["seconds_per_event"], 0.0))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
