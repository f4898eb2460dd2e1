"""``trkx baseline ckf``: ACTS seeding + CKF on the pipeline's test events, scored by trkx.metrics
beside the GNN pipeline, with time per event on one thread for both."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trkx.config import ConfigError
from trkx.evaluate import evaluate, read_tracks, track_level, truth_table
from trkx.provenance import stamped
from trkx.report import write_report
from trkx.storage import load_event, write_json, write_text


def time_chain_single_thread(pipe, outputs) -> tuple[list[float], float, dict[str, float]]:
    """Seconds per test event for the configured stages in order, with torch on one thread, after
    one untimed warm-up pass over the first event (where torch.compile compiles); returns the
    per-event times, the warm-up seconds and each stage's mean seconds per event."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_stage: dict[str, list[float]] = {stage.name: [] for stage in pipe.stages}

    def chain(path, record: bool) -> float:
        event = load_event(path)
        t0 = time.perf_counter()
        with torch.no_grad():
            for stage in pipe.stages:
                t = time.perf_counter()
                event = stage.infer(event)
                if record:
                    per_stage[stage.name].append(time.perf_counter() - t)
        return time.perf_counter() - t0

    try:
        paths = outputs[0].paths["test"]
        warmup = chain(paths[0], record=False)
        totals = [chain(p, record=True) for p in paths]
        return totals, warmup, {name: float(np.mean(v)) for name, v in per_stage.items()}
    finally:
        torch.set_num_threads(threads)


def run_ckf_baseline(pipeline_path: str | Path, progress: bool | None = None) -> dict:
    from trkx.runner import Pipeline, fingerprints
    from trkx.ckf import TRACKS_CSV, check_same_hits, ckf_track_labels, run_ckf

    pipe = Pipeline(pipeline_path, progress=progress)
    c = pipe.data.config
    if c.source != "simulate":
        raise ConfigError(f"{pipe.path}: the CKF baseline re-simulates the events, so the data config "
                          f"needs 'source: simulate' (it has {c.source!r})")
    outputs = pipe.run()
    gnn = evaluate(pipe, outputs)
    first = c.n_train + c.n_val
    out = pipe.workdir / "baseline_ckf"
    with tempfile.TemporaryDirectory(prefix="trkx-ckf-") as tmp:
        tmp = Path(tmp)
        per_alg = run_ckf(c.simulation, c.seed, first, c.n_test, tmp, base_dir=pipe.data.base_dir,
                          progress=pipe.progress)
        for k, path in enumerate(outputs[0].paths["test"]):
            event_id = c.first_event_id + first + k
            if path.stem != f"event{event_id}":
                raise ConfigError(f"{path}: unexpected test event order for the baseline")
            event = load_event(path)
            check_same_hits(tmp, first + k, event, str(path))
            hit_ids = event.hit_id.numpy()
            labels = ckf_track_labels(tmp / "ckf" / TRACKS_CSV.format(first + k), hit_ids)
            write_text(out / "tracks" / f"{path.stem}.csv",
                       pd.DataFrame({"hit_id": hit_ids, "track_id": labels}).to_csv(index=False))
    truth = truth_table(outputs[0].paths["test"])
    ckf = track_level(truth, read_tracks(out / "tracks", sorted(truth.event_id.unique())), pipe.config.evaluation)
    gnn_times, warmup, stage_seconds = time_chain_single_thread(pipe, outputs)
    ckf_time = float(sum(per_alg.values()))
    keys = ("track_efficiency", "fake_rate", "duplicate_rate", "trackml_score")
    comparison = {
        "events": int(c.n_test), "matching": pipe.config.evaluation.matching, "threads": 1,
        "ckf": {**{k: ckf[k] for k in keys}, "seconds_per_event": ckf_time, "per_algorithm_s": per_alg},
        "gnn": {**{k: gnn[k] for k in keys}, "seconds_per_event": float(np.mean(gnn_times)),
                "seconds_per_event_std": float(np.std(gnn_times)), "warmup_s": warmup,
                "stage_seconds": stage_seconds},
    }
    for key in ("field_cut", "hard_scatter"):     # the field's cut and the hard scatter, where present
        for name, m in (("ckf", ckf), ("gnn", gnn)):
            if key in m:
                comparison[name][f"{key}_efficiency"] = m[key]["efficiency"]
    comparison["gnn_over_ckf_time"] = comparison["gnn"]["seconds_per_event"] / ckf_time if ckf_time else float("nan")
    fps = fingerprints(outputs)
    write_json(out / "metrics.json", stamped(ckf, pipe.path, fps))
    write_json(out / "comparison.json", stamped(comparison, pipe.path, fps))
    write_text(out / "comparison.md", comparison_markdown(comparison))
    write_report(pipe.workdir)            # report.md picks up the comparison
    return comparison


def comparison_markdown(cmp: dict) -> str:
    rows = [("track efficiency", "track_efficiency"), ("fake rate", "fake_rate"),
            ("duplicate rate", "duplicate_rate"), ("TrackML score", "trackml_score")]
    lines = [f"# GNN pipeline vs ACTS seeding + CKF ({cmp['events']} test events, {cmp['matching']} matching, "
             f"one CPU thread)", "", "| | GNN pipeline | ACTS CKF |", "|---|---|---|"]
    for label, key in rows:
        lines.append(f"| {label} | {cmp['gnn'][key]:.4f} | {cmp['ckf'][key]:.4f} |")
    for key, label in (("field_cut_efficiency", "efficiency, pT > 0.9 GeV, abs(eta) < 4"),
                       ("hard_scatter_efficiency", "efficiency, hard-scatter particles")):
        if key in cmp["gnn"] and key in cmp["ckf"]:
            lines.append(f"| {label} | {cmp['gnn'][key]:.4f} | {cmp['ckf'][key]:.4f} |")
    lines.append(f"| seconds per event | {cmp['gnn']['seconds_per_event']:.4f} ± {cmp['gnn']['seconds_per_event_std']:.4f} | "
                 f"{cmp['ckf']['seconds_per_event']:.4f} |")
    lines.append(f"| time ratio GNN / CKF | {cmp['gnn_over_ckf_time']:.2f} | 1 |")
    if "stage_seconds" in cmp["gnn"]:
        lines.append("\nThe GNN chain's seconds per event by stage (one thread): " +
                     ", ".join(f"{name} {sec:.3f}" for name, sec in cmp["gnn"]["stage_seconds"].items()) + ".")
    if "warmup_s" in cmp["gnn"]:
        lines.append(f"\nThe GNN chain is timed after one untimed warm-up pass over the first event "
                     f"({cmp['gnn']['warmup_s']:.1f} s, torch.compile included where a stage sets it).")
    return "\n".join(lines) + "\n"
