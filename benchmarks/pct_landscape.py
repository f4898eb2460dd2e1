"""The loss-landscape study of Kortus et al. (TMLR 2025) on trkx's proton-CT GNNs: predict-then-track
(BCE) and predict-and-track (blackbox assignment, λ = 25 / 50 / 75) on the hit graph, PTT and PAT
(λ = 50) on the line graph, several training seeds each, all on one phantom.

    python benchmarks/pct_landscape.py [--seeds 7 8 9 10 11] [--phantom 150] [--events 4]

Per model and seed: the Hessian's top eigenvalue and trace (``trkx.analysis``), by double
back-propagation and, for the first seeds, by central differences of gradients (which see the
blackbox solver's surrogate gradient change; double back-propagation treats it as constant).  Per model and
pair of consecutive seeds: mode connectivity along the straight line and along quadratic Bézier
curves fitted on the training frames (the stage's loss, and for PAT also the edge BCE), reported
in the paper's Table 2/3 form (min / max / mean Hamming loss and TPR of the chain's per-layer-pair
assignment along the path); PTT -> PAT (λ = 50) of the same seed (the same initial weights) and
of consecutive seeds as the paper's cross-model rows.  CKA heat maps of PTT
against PAT, and of PTT against PTT of another seed for scale.  Models train through the cached
runner exactly as in ``pct_table.py`` (same configs, same training frames; seeds change only the
networks' initialisation and batch order); every analysis is cached in the model's workdir.
Writes ``runs/pct_landscape/landscape.md`` and the plots beside it.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pct_table import METHODS, pipeline_yaml  # noqa: E402  (the table's configs, reused)

from trkx.analysis.commands import run_connect, run_hessian, run_similarity, run_surface  # noqa: E402
from trkx.analysis.target import load_target  # noqa: E402
from trkx.runner import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = [m for m in METHODS if m[0] != "Track follower"]
# Kortus et al., the seed talk's mode-connectivity table (line-graph networks): Hamming loss
# [1e-3] min / max / mean and TPR [%] min / max / mean, means over their runs
PAPER = {
    ("PAT (λ = 25)", "linear"): (6.64, 228.58, 37.73, 75.01, 99.32, 95.80),
    ("PAT (λ = 25)", "bezier stage"): (6.64, 8.14, 7.11, 99.12, 99.32, 99.26),
    ("PAT (λ = 25)", "bezier bce"): (6.65, 7.78, 7.35, 99.18, 99.32, 99.24),
    ("PAT (λ = 50)", "linear"): (6.47, 251.09, 43.46, 71.57, 99.34, 95.01),
    ("PAT (λ = 50)", "bezier stage"): (6.46, 8.01, 7.00, 99.15, 99.34, 99.28),
    ("PAT (λ = 50)", "bezier bce"): (6.47, 7.76, 7.35, 99.18, 99.34, 99.24),
    ("PAT (λ = 75)", "linear"): (6.49, 345.56, 82.49, 63.04, 99.34, 91.13),
    ("PAT (λ = 75)", "bezier stage"): (6.47, 8.22, 7.02, 99.11, 99.34, 99.27),
    ("PAT (λ = 75)", "bezier bce"): (6.51, 8.12, 7.40, 99.16, 99.34, 99.23),
    ("PTT", "linear"): (6.70, 332.39, 107.24, 63.67, 99.32, 87.59),
    ("PTT", "bezier stage"): (6.69, 7.60, 7.07, 99.21, 99.32, 99.28),     # their Bézier (BCE): PTT's own loss
    ("PTT -> PAT (λ = 50)", "linear"): (6.60, 337.23, 117.42, 63.90, 99.33, 87.12),
    ("PTT -> PAT (λ = 50)", "bezier stage"): (6.60, 11.32, 8.06, 98.65, 99.33, 99.13),   # trained on PTT's BCE
}
def paper_row(label: str) -> str:
    """The paper's row for one of our models or model pairs (its networks are line-graph ones)."""
    if "->" in label:
        return "PTT -> PAT (λ = 50)"
    return "PTT" if "PTT" in label else label[label.index("PAT"):]


CURVES = {"linear": "straight line", "bezier stage": "Bézier, stage's loss", "bezier bce": "Bézier, edge BCE"}


def trained_target(work: Path, label: str, template: str, lam, seed: int, a):
    """Train (or read from the cache) one model and load it with ``a.events`` validation frames."""
    path = pipeline_yaml(work, template, a.phantom, lam, seed, a)
    pipe = Pipeline(path, progress=False)
    t0 = time.perf_counter()
    pipe.run(write_outputs=False)
    stage_yaml = yaml.safe_load(path.read_text())["stages"][1]      # layer_pairs, gnn, labeling
    target = load_target(path, stage_yaml, a.events)
    print(f"[{time.perf_counter() - T0:6.0f} s] {label}, seed {seed}: trained or read in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return target


def curve_rows(result, curve: str) -> dict:
    path = result.results["linear" if curve == "linear" else "bezier"]
    return {k: np.asarray(v) for k, v in path.items()}


def extremes(paths: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Hamming [1e-3] and TPR [%] min / max / mean along each path: mean and std over paths."""
    rows = np.array([[1e3 * p["assigned_hamming"].min(), 1e3 * p["assigned_hamming"].max(), 1e3 * p["assigned_hamming"].mean(),
                      100 * p["assigned_tpr"].min(), 100 * p["assigned_tpr"].max(), 100 * p["assigned_tpr"].mean()]
                     for p in paths])
    return rows.mean(0), rows.std(0)


def fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def connectivity_table(connects: dict) -> list[str]:
    lines = ["| model | curve | Hamming min | Hamming max | Hamming mean | TPR min | TPR max | TPR mean |",
             "|---|---|---|---|---|---|---|---|"]
    for (label, curve), paths in connects.items():
        mean, std = extremes(paths)
        paper = PAPER.get((paper_row(label), curve))
        cells = [fmt(m, s) + (f" ({paper[i]})" if paper else "") for i, (m, s) in enumerate(zip(mean, std))]
        lines.append(f"| {label} | {CURVES[curve]} | " + " | ".join(cells) + " |")
    return lines


def plot_connectivity(connects: dict, out: Path) -> None:
    """Hamming loss and TPR of the assignment along the path (mean over seed pairs): one column
    per curve (straight line, Bézier on the stage's loss), one line per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from trkx.report import save_figure
    labels = list(dict.fromkeys(label for label, _ in connects))
    curves = ("linear", "bezier stage")
    fig, axes = plt.subplots(2, len(curves), figsize=(11, 6.5), sharex=True, sharey="row")
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    for col, curve in enumerate(curves):
        for k, label in enumerate(labels):
            paths = connects.get((label, curve))
            if not paths:
                continue
            style = dict(color=colours[k % 10], ls="--" if label.startswith("line-graph") else "-", marker="o", ms=3)
            axes[0, col].semilogy(paths[0]["t"], 1e3 * np.mean([p["assigned_hamming"] for p in paths], 0),
                                  label=label, **style)
            axes[1, col].plot(paths[0]["t"], 100 * np.mean([p["assigned_tpr"] for p in paths], 0), **style)
        axes[0, col].set_title(CURVES[curve])
        axes[1, col].set_xlabel("t along the path (mean over seed pairs)")
    axes[0, 0].set_ylabel("Hamming loss of the assignment [1e-3]")
    axes[1, 0].set_ylabel("TPR of the assignment [%]")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7)
    fig.subplots_adjust(bottom=0.2)
    save_figure(fig, out)


def main():
    global T0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9, 10, 11])
    ap.add_argument("--phantom", type=int, default=150, choices=[100, 150, 200])
    ap.add_argument("--train-frames", type=int, default=60)
    ap.add_argument("--events", type=int, default=4, help="Validation frames every analysis averages over.")
    ap.add_argument("--difference-seeds", type=int, default=2,
                    help="For the first this many seeds also the Hessian by central differences of gradients.")
    ap.add_argument("--bezier-steps", type=int, default=1000, help="Adam steps fitting each Bézier curve, "
                    "one training frame each (the models trained 12 epochs of 60 frames: 720 steps).")
    ap.add_argument("--bezier-lr", type=float, default=1e-3)
    ap.add_argument("--points", type=int, default=11, help="Points along each path.")
    ap.add_argument("--surface-points", type=int, default=21, help="Grid points per axis of the 2D surfaces.")
    ap.add_argument("--surface-extent", type=float, default=0.3,
                    help="The surfaces span ±this along each eigenvector (1 = a tenth of the weights' norm).")
    ap.add_argument("--models", nargs="+", default=None, help="Only these model labels (default: all six).")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "pct_landscape"))
    a = ap.parse_args()
    T0 = time.perf_counter()
    work = Path(a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    models = [m for m in MODELS if a.models is None or m[0] in a.models]
    targets = {(label, seed): trained_target(work, label, template, lam, seed, a)
               for label, template, lam, _ in models for seed in a.seeds}
    train_seconds = time.perf_counter() - T0

    hessian, hessian_seconds = {}, 0.0       # (label, hvp) -> [(top eigenvalue, trace)]
    for (label, seed), target in targets.items():
        for hvp in ("auto", "differences") if seed in a.seeds[:a.difference_seeds] else ("auto",):
            h = run_hessian(target, top_k=1, iterations=50, trace_samples=20, slq_vectors=2, slq_steps=20, hvp=hvp)
            hessian.setdefault((label, h.results["hvp"]), []).append((h.results["eigenvalues"][0], h.results["trace"]))
            hessian_seconds += h.results["seconds"]
            print(f"[{time.perf_counter() - T0:6.0f} s] hessian ({hvp}) {label}, seed {seed}: top "
                  f"{h.results['eigenvalues'][0]:.4g}, trace {h.results['trace']:.4g}{' (cached)' if h.cached else ''}",
                  flush=True)

    connects, connect_seconds = {}, 0.0
    pairs = list(zip(a.seeds[:-1], a.seeds[1:]))
    jobs = [(label, (label, label), sa, sb) for label, *_ in models for sa, sb in pairs]
    for graph in ("", "line-graph "):
        ptt, pat = f"{graph}GNN PTT" + (" (BCE)" if graph else " (BCE, edge score)"), f"{graph}GNN PAT (λ = 50)"
        if any(label == ptt for label, *_ in models) and any(label == pat for label, *_ in models):
            # same seed: both networks start from the same initial weights; consecutive seeds: they do not
            jobs += [(f"{graph}PTT -> PAT (λ = 50), same seed", (ptt, pat), s, s) for s in a.seeds]
            jobs += [(f"{graph}PTT -> PAT (λ = 50), other seed", (ptt, pat), sa, sb) for sa, sb in pairs]
    for name, (la, lb), sa, sb in jobs:
        # PTT's own loss is the BCE: one curve; PAT: its own (Hamming + 0.1 BCE) and the BCE
        curves = [("bezier stage", "stage")] + ([] if "PTT" in la else [("bezier bce", "bce")])
        for i, (curve, bezier_loss) in enumerate(curves):
            r = run_connect(targets[(la, sa)], targets[(lb, sb)], bezier_steps=a.bezier_steps, lr=a.bezier_lr,
                            points=a.points, bezier_loss=bezier_loss)
            connect_seconds += r.results["seconds"]
            if i == 0:                      # the straight line does not depend on the curve's loss
                connects.setdefault((name, "linear"), []).append(curve_rows(r, "linear"))
            connects.setdefault((name, curve), []).append(curve_rows(r, curve))
            print(f"[{time.perf_counter() - T0:6.0f} s] connect {name}, seeds {sa}/{sb}, {curve}: max Hamming "
                  f"{1e3 * r.results['linear_extremes']['assigned_hamming']['max']:.1f} (line) / "
                  f"{1e3 * r.results['bezier_extremes']['assigned_hamming']['max']:.1f} (curve) e-3"
                  f"{' (cached)' if r.cached else ''}", flush=True)

    sims = {}
    for graph in ("", "line-graph "):
        ptt, pat = f"{graph}GNN PTT" + (" (BCE)" if graph else " (BCE, edge score)"), f"{graph}GNN PAT (λ = 50)"
        s0, s1 = a.seeds[0], a.seeds[1 % len(a.seeds)]
        for name, la, lb, sb in ((f"{graph}PTT seed {s0} vs PAT (λ = 50) seed {s1}", ptt, pat, s1),
                                 (f"{graph}PTT seed {s0} vs PTT seed {s1}", ptt, ptt, s1),
                                 (f"{graph}PTT vs PAT (λ = 50), both seed {s0} (the same initial weights)", ptt, pat, s0)):
            if (la, s0) in targets and (lb, sb) in targets and (la, s0) != (lb, sb):
                sims[name] = run_similarity(targets[(la, s0)], targets[(lb, sb)])

    surfaces = {}
    for label in ("GNN PTT (BCE, edge score)", "GNN PAT (λ = 50)"):
        if (label, a.seeds[0]) in targets:
            surfaces[label] = run_surface(targets[(label, a.seeds[0])], "hessian", a.surface_points, a.surface_extent)

    lines = [f"# Loss landscapes of the proton-CT GNNs ({a.phantom} mm phantom)", "",
             f"`python benchmarks/pct_landscape.py --seeds {' '.join(map(str, a.seeds))} --phantom {a.phantom} "
             f"--events {a.events}`: {len(targets)} trainings ({train_seconds:.0f} s with the cache), Hessians "
             f"{hessian_seconds:.0f} s, connectivity {connect_seconds:.0f} s, {time.perf_counter() - T0:.0f} s in all "
             f"(analyses read from the cache count 0 s). {a.events} validation frames of 100 protons.", "",
             "## Hessian (training loss, mean ± std over seeds)", "",
             "| model | Hessian-vector products | seeds | top eigenvalue | trace (Hutchinson) |", "|---|---|---|---|---|"]
    for (label, how), rows in hessian.items():
        top, trace = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        lines.append(f"| {label} | {how.replace('|', '¦')} | {len(rows)} | {top.mean():.4g} ± {top.std():.2g} | "
                     f"{trace.mean():.4g} ± {trace.std():.2g} |")
    lines += ["", "## Mode connectivity (the paper's Table 2/3 form)", "",
              f"Along each path ({a.points} points), the Hamming loss [10⁻³] and TPR [%] of the chain's per-layer-pair "
              f"assignment on the {a.events} validation frames; mean ± std over {len(pairs)} pairs of consecutive seeds "
              f"(PTT -> PAT: {len(a.seeds)} same-seed pairs, whose networks start from the same initial weights, and the "
              f"{len(pairs)} consecutive pairs); the paper's figures (line-graph networks) in brackets. "
              f"Bézier curves: {a.bezier_steps} Adam steps on the {a.train_frames} training frames, lr {a.bezier_lr:g}, "
              "on the stage's own loss (for PTT: the BCE) or the edge BCE.", ""] + connectivity_table(connects)
    plot_connectivity(connects, work / "connectivity.png")
    lines += ["", "![connectivity](connectivity.png)", "", "## Representation similarity (linear CKA)", ""]
    for i, (name, r) in enumerate(sims.items()):
        image = f"cka_{i}.png"
        shutil.copy(r.folder / "cka.png", work / image)
        diag = np.diag(np.asarray(r.results["cka"], dtype=float))
        lines += [f"- {name}: edges decided differently at 0.5 {r.results['disagreement']:.4f}; CKA of each layer "
                  f"with its namesake " + ", ".join(f"{n} {v:.3f}" for n, v in zip(r.results["layers_a"], diag)) + f" ![]({image})"]
    lines += ["", "## Loss surfaces along the top two Hessian eigenvectors", ""]
    for label, r in surfaces.items():
        stem = "ptt" if "PTT" in label else "pat"
        for key in ("loss", "assigned_hamming"):
            if (r.folder / f"surface_{key}.png").exists():
                shutil.copy(r.folder / f"surface_{key}.png", work / f"surface_{stem}_{key}.png")
        c = r.results["centre"]
        lines.append(f"- {label}, seed {a.seeds[0]} ({a.surface_points}² over ±{a.surface_extent:g}): at the trained point loss {c['loss']:.4g}, "
                     f"assignment Hamming {1e3 * c.get('assigned_hamming', np.nan):.2f}e-3; {r.results['seconds']:.0f} s "
                     f"![](surface_{stem}_loss.png)")
    text = "\n".join(lines) + "\n"
    (work / "landscape.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
