"""The proton-CT table of Kortus et al. in trkx: track follower, GNN predict-then-track (BCE) and
predict-and-track (blackbox assignment, λ = 25 / 50 / 75) on the hit graph, and both on the line
graph (λ = 50, the paper's networks) on 100 / 150 / 200 mm water phantoms,
tested on readout frames of 50 / 100 / 150 protons; per-frame purity and efficiency (docs/methods/proton-ct.md,
"Proton CT"), mean ± std over training seeds.

    python benchmarks/pct_table.py [--seeds 7 8 9] [--train-frames 60] [--test-frames 20]
    python benchmarks/pct_table.py --learning-curve 15 30 60 120   # hit-graph GNN PTT, 150 mm, by training size

Every model trains through the cached runner on frames of 100 protons (``configs/pipeline_pct*.yaml``
with the phantom, seed and sizes changed, written under ``runs/pct_table/``); the trained chain then
runs on test frames simulated at each density with a seed no training saw.  Prints a markdown table
and writes it to ``runs/pct_table/table.md``.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from trkx.config import load_yaml
from trkx.metrics.frames import frame_purity_efficiency
from trkx.runner import Pipeline

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
PHANTOMS = (100, 150, 200)
DENSITIES = (50, 100, 150)
# (row label, pipeline template, PAT λ, the paper's row to compare with); the paper's networks
# read the line graph, trkx's default GNN the hit graph
METHODS = [("Track follower", "pipeline_pct_follower.yaml", None, "Track follower"),
           ("GNN PTT (BCE, edge score)", "pipeline_pct.yaml", None, "GNN PTT (BCE, edge score)"),
           ("GNN PAT (λ = 25)", "pipeline_pct_pat.yaml", 25.0, "GNN PAT (λ = 25)"),
           ("GNN PAT (λ = 50)", "pipeline_pct_pat.yaml", 50.0, "GNN PAT (λ = 50)"),
           ("GNN PAT (λ = 75)", "pipeline_pct_pat.yaml", 75.0, "GNN PAT (λ = 75)"),
           ("line-graph GNN PTT (BCE)", "pipeline_pct_line.yaml", None, "GNN PTT (BCE, edge score)"),
           ("line-graph GNN PAT (λ = 50)", "pipeline_pct_line_pat.yaml", 50.0, "GNN PAT (λ = 50)")]
# Kortus et al., TMLR 2025 (the seed talk's table): purity, efficiency [%] per phantom 100 / 150 / 200 mm
PAPER = {
    50: {"Track follower": (87.1, 78.1, 89.4, 81.1, 90.8, 82.1), "GNN PTT (BCE, edge score)": (94.9, 83.8, 96.2, 86.9, 96.4, 88.7),
         "GNN PAT (λ = 25)": (94.9, 83.8, 96.2, 87.0, 96.5, 88.9), "GNN PAT (λ = 50)": (95.0, 83.9, 96.3, 87.1, 96.5, 89.0),
         "GNN PAT (λ = 75)": (95.0, 83.9, 96.3, 87.1, 96.5, 89.0)},
    100: {"Track follower": (80.6, 71.7, 84.7, 76.4, 85.8, 77.5), "GNN PTT (BCE, edge score)": (87.4, 75.2, 91.9, 82.4, 91.7, 83.8),
          "GNN PAT (λ = 25)": (87.3, 75.0, 91.7, 82.1, 92.2, 84.4), "GNN PAT (λ = 50)": (87.4, 75.1, 92.0, 82.4, 92.5, 84.6),
          "GNN PAT (λ = 75)": (87.4, 75.1, 91.9, 82.4, 92.3, 84.4)},
    150: {"Track follower": (75.6, 67.2, 80.1, 72.2, 82.5, 74.6), "GNN PTT (BCE, edge score)": (77.5, 65.0, 84.9, 75.3, 87.2, 79.6),
          "GNN PAT (λ = 25)": (76.7, 64.3, 84.8, 75.1, 87.6, 80.1), "GNN PAT (λ = 50)": (76.8, 64.4, 85.1, 75.5, 88.1, 80.6),
          "GNN PAT (λ = 75)": (76.6, 64.3, 85.0, 75.4, 87.8, 80.4)},
}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pipeline_yaml(work: Path, template: str, phantom: int, lam: float | None, seed: int, a) -> Path:
    """A copy of ``template`` for one phantom, λ and seed, its stage YAMLs copied beside it."""
    pipe = load_yaml(CONFIGS / template)
    data = load_yaml(CONFIGS / pipe["data"])
    data["pct"]["phantom_mm"] = phantom
    data.update(n_train=a.train_frames, n_val=4, n_test=2)
    tag = f"{phantom}mm"
    out = work / "configs" / tag
    stages = []
    for rel in pipe["stages"]:
        stage = load_yaml(CONFIGS / rel)
        if lam is not None and stage.get("loss") == "blackbox":
            stage["blackbox_lambda"] = lam
            stage["name"] = f"{stage['name']}_{lam:g}"
        stages.append(str(write_yaml(out / f"{stage.get('name', stage['stage'])}.yaml", stage)))
    pipe.update(workdir=str(work / "runs" / tag / Path(stages[-2] if len(stages) > 1 else stages[0]).stem / str(seed)),
                cachedir=str(work / "cache" / tag), seed=seed, progress=False,
                data=str(write_yaml(out / "data.yaml", data)), stages=stages)
    lam_tag = "" if lam is None else f"_{lam:g}"
    return write_yaml(out / f"{Path(template).stem}{lam_tag}_seed{seed}.yaml", pipe)


def simulate_test_frames(pipe: Pipeline, protons: int, n_frames: int, seed: int):
    """Test frames of ``protons`` protons each, simulated with the pipeline's data config."""
    source = copy.copy(pipe.data)
    source.config = copy.deepcopy(pipe.data.config)
    source.config.pct.protons_per_frame = protons
    source.config.seed = seed
    source.config.first_event_id = 0
    with tempfile.TemporaryDirectory() as tmp:
        return [ev for _, _, ev in source.pct_events(Path(tmp), ["test"] * n_frames)]


def frame_scores(pipe: Pipeline, frames) -> dict:
    """Run the trained chain on ``frames``; per-frame purity / efficiency of its tracks."""
    rows = []
    with torch.inference_mode():
        for ev in frames:
            ev = ev.clone()
            for stage in pipe.stages:
                if hasattr(stage, "model"):
                    stage.model.eval()
                ev = stage.infer(ev)
            rows.append(pd.DataFrame({"event_id": ev.event_id, "particle_id": ev.particle_id.numpy(),
                                      "track_id": ev.track_id.numpy()}))
    return frame_purity_efficiency(pd.concat(rows), pipe.config.evaluation.min_track_hits)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    ap.add_argument("--train-frames", type=int, default=60)
    ap.add_argument("--test-frames", type=int, default=20)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "pct_table"))
    ap.add_argument("--learning-curve", type=int, nargs="+", metavar="FRAMES",
                    help="instead of the table: GNN PTT on the 150 mm phantom trained on these numbers of frames")
    a = ap.parse_args()
    work = Path(a.workdir).resolve()
    if a.learning_curve:
        learning_curve(work, a)
        return
    t0 = time.perf_counter()
    results = {}      # (method, phantom, density) -> list of (purity, efficiency) per seed
    for phantom in PHANTOMS:
        frames = None
        for label, template, lam, _ in METHODS:
            for seed in a.seeds:
                pipe = Pipeline(pipeline_yaml(work, template, phantom, lam, seed, a), progress=False)
                pipe.run(write_outputs=False)
                if frames is None:    # the same test frames for every method and seed
                    frames = {k: simulate_test_frames(pipe, k, a.test_frames, seed=99_000 + phantom) for k in DENSITIES}
                for k in DENSITIES:
                    m = frame_scores(pipe, frames[k])
                    results.setdefault((label, phantom, k), []).append((m["purity"], m["efficiency"]))
                print(f"[{time.perf_counter() - t0:6.0f} s] {phantom} mm, {label}, seed {seed}: " + ", ".join(
                    f"{k} p+: {100 * results[(label, phantom, k)][-1][0]:.1f} / {100 * results[(label, phantom, k)][-1][1]:.1f}"
                    for k in DENSITIES), flush=True)
    lines = [f"trkx (this machine, {len(a.seeds)} seeds, {a.train_frames} training frames of 100 p+, "
             f"{a.test_frames} test frames per density; {time.perf_counter() - t0:.0f} s in all). "
             "Purity p / efficiency ε [%], mean ± std over seeds; the paper's figures in brackets.", "",
             "| p+/frame | algorithm | " + " | ".join(f"{ph} mm p | {ph} mm ε" for ph in PHANTOMS) + " |",
             "|---|---|" + "---|" * (2 * len(PHANTOMS))]
    for k in DENSITIES:
        for label, _, _, paper_row in METHODS:
            cells = []
            for i, ph in enumerate(PHANTOMS):
                v = 100 * np.asarray(results[(label, ph, k)])
                paper = PAPER[k][paper_row]
                for j in (0, 1):
                    cells.append(f"{v[:, j].mean():.1f} ± {v[:, j].std():.1f} ({paper[2 * i + j]})")
            lines.append(f"| {k} | {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (work / "table.md").write_text(table + "\n")
    print(table)


def learning_curve(work: Path, a) -> None:
    """What training on fewer protons costs: GNN PTT on the 150 mm phantom, per training size."""
    lines = ["| training frames (protons) | training time | " + " | ".join(f"{k} p+ purity / efficiency" for k in DENSITIES)
             + " |", "|---|---|" + "---|" * len(DENSITIES)]
    frames = None
    for n in a.learning_curve:
        rows = {k: [] for k in DENSITIES}
        seconds = []
        for seed in a.seeds:
            a.train_frames = n
            pipe = Pipeline(pipeline_yaml(work / f"curve{n}", "pipeline_pct.yaml", 150, None, seed, a), progress=False)
            t0 = time.perf_counter()
            pipe.run(write_outputs=False)
            seconds.append(time.perf_counter() - t0)
            if frames is None:
                frames = {k: simulate_test_frames(pipe, k, a.test_frames, seed=99_150) for k in DENSITIES}
            for k in DENSITIES:
                m = frame_scores(pipe, frames[k])
                rows[k].append((m["purity"], m["efficiency"]))
        cells = [f"{100 * np.mean([r[0] for r in rows[k]]):.1f} / {100 * np.mean([r[1] for r in rows[k]]):.1f}"
                 for k in DENSITIES]
        lines.append(f"| {n} ({100 * n}) | {np.mean(seconds):.0f} s | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
