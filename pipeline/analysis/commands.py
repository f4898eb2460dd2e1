"""The ``trkx analyze`` commands: each computes one analysis of a trained stage, writes
``results.json``, ``summary.md`` and its plots to ``<workdir>/analysis/<stage>/<command>-<key>/``
and returns that folder.  The key holds the weights (their cache fingerprints), the events, the
options and the analysis code, so a finished analysis is read back, never recomputed, and a
changed input gives a new folder."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trkx.analysis.connect import along_path, bezier_point, linear_point, train_bezier
from trkx.analysis.hessian import choose_operator, hutchinson_trace, slq_spectrum, spectral_density, top_eigenpairs
from trkx.analysis.similarity import disagreement, layer_outputs, linear_cka
from trkx.analysis.surface import filter_normalised_direction, surface
from trkx.analysis.target import AnalysisTarget
from trkx.codehash import code_digest
from trkx.errors import ConfigError
from trkx.fingerprint import fingerprint
from trkx.report import save_figure
from trkx.storage import read_json, write_json, write_text


@dataclass
class Analysis:
    folder: Path
    results: dict
    summary: str
    cached: bool


def _folder(target: AnalysisTarget, command: str, options: dict, others: tuple[AnalysisTarget, ...] = ()) -> Path:
    weights = [str(t.weights.parent.name) for t in (target, *others)]
    events = [str(int(e.event_id)) for e in target.events]
    key = fingerprint(command, options, weights, events, code_digest("trkx.analysis.commands"))
    return target.pipe.workdir / "analysis" / target.stage.name / f"{command}-{key}"


def _cached(folder: Path) -> Analysis | None:
    if (folder / "results.json").exists() and (folder / "summary.md").exists():
        return Analysis(folder, read_json(folder / "results.json", "analysis results"),
                        (folder / "summary.md").read_text(), True)
    return None


def _finish(folder: Path, results: dict, lines: list[str]) -> Analysis:
    summary = "\n".join(lines) + "\n"
    write_json(folder / "results.json", results)
    write_text(folder / "summary.md", summary)      # last: its presence marks the analysis done
    return Analysis(folder, results, summary, False)


def _header(target: AnalysisTarget, what: str) -> list[str]:
    return [f"# {what}: stage '{target.stage.name}' of {target.pipe.path.name}", "",
            f"{target.space.dim:,} parameters; {len(target.events)} validation events "
            f"({', '.join(str(int(e.event_id)) for e in target.events)}); weights {target.weights.parent.name}", ""]


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def hessian_products(target: AnalysisTarget, note: Callable[[str], None], method: str = "auto") -> tuple[Callable, str]:
    """The target's Hessian-vector product and how it is computed (``choose_operator``)."""
    return choose_operator(target.batch_losses(), target.space.flat(), note, method)


def run_hessian(target: AnalysisTarget, top_k: int = 3, iterations: int = 50, trace_samples: int = 20,
                slq_vectors: int = 2, slq_steps: int = 20, seed: int = 0, hvp: str = "auto",
                note: Callable[[str], None] = lambda s: None) -> Analysis:
    """Top-``top_k`` eigenvalues, Hutchinson trace and SLQ eigenvalue density of the loss's Hessian
    (products by ``hvp``: 'auto' or 'differences', see ``choose_operator``)."""
    options = dict(top_k=top_k, iterations=iterations, trace_samples=trace_samples, slq_vectors=slq_vectors,
                   slq_steps=slq_steps, seed=seed, hvp=hvp)
    folder = _folder(target, "hessian", options)
    if (done := _cached(folder)) is not None:
        return done
    t0 = time.perf_counter()
    product, method = hessian_products(target, note, hvp)
    dim = target.space.dim
    note(f"hessian: top {top_k} eigenvalues ({dim:,} parameters) ...")
    values, vectors = top_eigenpairs(product, dim, top_k, iterations, tol=1e-3, seed=seed)
    note("hessian: trace ...")
    trace, trace_err = hutchinson_trace(product, dim, trace_samples, seed=seed)
    note("hessian: eigenvalue density ...")
    spectrum = slq_spectrum(product, dim, slq_vectors, slq_steps, seed=seed)
    nodes = np.concatenate([n for n, _ in spectrum])
    span = max(float(np.abs(nodes).max()), 1e-12)
    grid = np.linspace(-1.05 * span, 1.05 * span, 2001)
    density = spectral_density(spectrum, grid, sigma=span / 100, dim=dim)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(torch.stack(vectors), folder / "eigenvectors.pt")
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(grid, np.maximum(density, 1e-12))
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (integrates to the parameter count)")
    ax.set_title(f"Hessian eigenvalue density, stage {target.stage.name}")
    save_figure(fig, folder / "density.png")
    seconds = time.perf_counter() - t0
    results = {"eigenvalues": values, "trace": trace, "trace_error": trace_err, "parameters": dim,
               "hvp": method, "spectrum": [{"nodes": n.tolist(), "weights": w.tolist()} for n, w in spectrum],
               "seconds": seconds, "options": options}
    lines = _header(target, "Hessian") + [
        f"Hessian-vector products by {method}.", "",
        "| top eigenvalues | trace (Hutchinson) | seconds |", "|---|---|---|",
        f"| {', '.join(f'{v:.4g}' for v in values)} | {trace:.4g} ± {trace_err:.2g} | {seconds:.1f} |", "",
        "![density](density.png)"]
    return _finish(folder, results, lines)


def run_surface(target: AnalysisTarget, directions: str = "hessian", points: int = 11, extent: float = 1.0,
                seed: int = 0, note: Callable[[str], None] = lambda s: None) -> Analysis:
    """Loss (and Hamming loss, TPR) on a ``points`` × ``points`` grid over [-extent, extent]² along
    the top two Hessian eigenvectors (scaled to the parameters' norm) or two filter-normalised
    random directions, and the 1D cuts along each."""
    options = dict(directions=directions, points=points, extent=extent, seed=seed)
    folder = _folder(target, "surface", options)
    if (done := _cached(folder)) is not None:
        return done
    t0 = time.perf_counter()
    theta = target.space.flat()
    if directions == "hessian":
        hvp, _ = hessian_products(target, note)
        note("surface: top two Hessian eigenvectors ...")
        _, (d1, d2) = top_eigenpairs(hvp, target.space.dim, 2, 30, seed=seed)
        scale = float(theta.norm()) * 0.1          # a step of 1 moves θ by a tenth of its norm
        d1, d2 = d1 * scale, d2 * scale
    else:
        d1, d2 = filter_normalised_direction(target.space, seed), filter_normalised_direction(target.space, seed + 1)
    grid = np.linspace(-extent, extent, points)
    note(f"surface: {points} x {points} grid ...")
    plane = surface(target.evaluate, theta, d1, d2, grid, grid)
    lines_1d = {"d1": surface(target.evaluate, theta, d1, None, grid), "d2": surface(target.evaluate, theta, d2, None, grid)}
    plt = _figure()
    for key, values in plane.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        cs = ax.contourf(grid, grid, values.T, levels=20)
        fig.colorbar(cs, ax=ax, label=key)
        ax.plot([0], [0], "k+")
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_title(f"{key} surface ({directions} directions)")
        save_figure(fig, folder / f"surface_{key}.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, cut in lines_1d.items():
        ax.plot(grid, cut["loss"], label=name)
    ax.set_xlabel("step along the direction")
    ax.set_ylabel("loss")
    ax.legend()
    save_figure(fig, folder / "lines.png")
    centre = points // 2
    seconds = time.perf_counter() - t0
    results = {"grid": grid.tolist(), "surface": {k: v.tolist() for k, v in plane.items()},
               "lines": {n: {k: v.tolist() for k, v in c.items()} for n, c in lines_1d.items()},
               "centre": {k: float(v[centre, centre]) for k, v in plane.items()}, "seconds": seconds, "options": options}
    lines = _header(target, "Loss surface") + [
        f"{points} × {points} grid over [-{extent}, {extent}]² along {directions} directions; {seconds:.1f} s.", "",
        "| figure | at the trained point | max on the grid | min on the grid |", "|---|---|---|---|"]
    lines += [f"| {k} | {float(v[centre, centre]):.4g} | {float(v.max()):.4g} | {float(v.min()):.4g} |" for k, v in plane.items()]
    lines += [""] + [f"![{k}](surface_{k}.png)" for k in plane] + ["![lines](lines.png)"]
    return _finish(folder, results, lines)


def run_connect(a: AnalysisTarget, b: AnalysisTarget, bezier_steps: int = 200, lr: float = 1e-3, points: int = 11,
                seed: int = 0, bezier_loss: str = "stage", note: Callable[[str], None] = lambda s: None) -> Analysis:
    """Loss, Hamming loss and TPR along the straight line and along a trained quadratic Bézier
    curve between two solutions of one stage (trained with different seeds), or of two stages
    with the same network.  The curve is fitted on ``a``'s training events, on its own loss
    (``bezier_loss`` 'stage') or on the edge BCE ('bce'; Kortus et al. train both), and judged
    on the analysis (validation) events."""
    if bezier_loss not in ("stage", "bce"):
        raise ConfigError(f"bezier_loss must be 'stage' or 'bce', not {bezier_loss!r}")
    if bezier_loss == "bce" and not a.edge_classifier:
        raise ConfigError(f"stage '{a.stage.name}' is not an edge classifier: a Bézier curve on the BCE needs edges")
    options = dict(bezier_steps=bezier_steps, lr=lr, points=points, seed=seed, bezier_loss=bezier_loss)
    folder = _folder(a, "connect", options, (b,))
    if (done := _cached(folder)) is not None:
        return done
    t0 = time.perf_counter()
    theta_a, theta_b = a.space.flat(), b.space.flat()
    ts = np.linspace(0.0, 1.0, points)
    note("connect: straight line ...")
    line = along_path(a.evaluate, lambda t: linear_point(theta_a, theta_b, t), ts)
    note(f"connect: training the Bézier control point ({bezier_steps} steps) ...")
    train = a.training_events()          # the curve is fitted on training events, judged on the analysis events
    losses = a.batch_losses(None if bezier_loss == "stage" else a.bce_loss(), train)
    control = train_bezier(losses, theta_a, theta_b, bezier_steps, lr, seed)
    curve = along_path(a.evaluate, lambda t: bezier_point(theta_a, control, theta_b, t), ts)
    plt = _figure()
    keys = [k for k in line if k != "t"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, key in zip(np.atleast_1d(axes), keys):
        ax.plot(ts, line[key], "o-", label="straight line")
        ax.plot(ts, curve[key], "s-", label="Bézier curve")
        ax.set_xlabel("t")
        ax.set_ylabel(key)
    np.atleast_1d(axes)[0].legend()
    save_figure(fig, folder / "paths.png")
    seconds = time.perf_counter() - t0

    results = {"linear": {k: v.tolist() for k, v in line.items()}, "bezier": {k: v.tolist() for k, v in curve.items()},
               "linear_extremes": path_extremes(line), "bezier_extremes": path_extremes(curve),
               "parameter_distance": float((theta_a - theta_b).norm()), "seconds": seconds, "options": options}
    lines = _header(a, "Mode connectivity") + [
        f"Second solution: weights {b.weights.parent.name} (stage '{b.stage.name}'); "
        f"‖θa − θb‖ = {results['parameter_distance']:.4g}; Bézier curve trained on the "
        f"{'stage loss' if bezier_loss == 'stage' else 'edge BCE'} over {len(train)} training events "
        f"({bezier_steps} steps); {seconds:.1f} s.", "",
        "Min / max / mean along each path (Hamming losses ×10⁻³):", "",
        "| path | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, ext in (("straight line", results["linear_extremes"]), ("Bézier curve", results["bezier_extremes"])):
        lines.append(f"| {name} | " + " | ".join(_extremes_cell(k, ext[k]) for k in keys) + " |")
    lines += ["", "| t | " + " | ".join(f"line {k}" for k in keys) + " | " + " | ".join(f"Bézier {k}" for k in keys) + " |",
              "|" + "---|" * (1 + 2 * len(keys))]
    for i, t in enumerate(ts):
        lines.append(f"| {t:.2f} | " + " | ".join(f"{line[k][i]:.4g}" for k in keys) + " | "
                     + " | ".join(f"{curve[k][i]:.4g}" for k in keys) + " |")
    lines += ["", "![paths](paths.png)"]
    return _finish(folder, results, lines)


def path_extremes(path: dict) -> dict:
    """Min, max and mean of each figure along a path (``along_path``'s arrays)."""
    return {k: {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())} for k, v in path.items() if k != "t"}


def _extremes_cell(key: str, ext: dict) -> str:
    scale = 1e3 if "hamming" in key else 1.0
    return " / ".join(f"{scale * ext[m]:.4g}" for m in ("min", "max", "mean"))


def similarity_layers(target: AnalysisTarget) -> dict[str, str]:
    """The layers ``linear_cka`` compares, label -> submodule path: for each of the network's
    MLPs (encoders, message-passing networks, decoders, at any depth: the line-graph GNN holds an
    interaction network) its last module, whose output is the MLP's (the edge MLPs run through
    ``forward_edges``, which calls their layers, not the MLP itself); a top-level child holding
    none of them counts whole."""
    layers = {}
    for name, module in target.module.net.named_modules():
        nets = getattr(module, "nets", None)
        if nets is not None:
            layers[name] = f"{name}.nets.0.{len(nets[0]) - 1}"
    for name, _ in target.module.net.named_children():
        if not any(label == name or label.startswith(f"{name}.") for label in layers):
            layers[name] = name
    return layers


def run_similarity(a: AnalysisTarget, b: AnalysisTarget, note: Callable[[str], None] = lambda s: None) -> Analysis:
    """Linear CKA between every layer of model ``a`` and every layer of model ``b`` on the same
    events (hits or edges as samples), and the share of edges they decide differently."""
    folder = _folder(a, "similarity", {"other_events": [int(e.event_id) for e in b.events]}, (b,))
    if (done := _cached(folder)) is not None:
        return done
    t0 = time.perf_counter()
    layers_a, layers_b = similarity_layers(a), similarity_layers(b)
    acts_a: dict[str, list] = {}
    acts_b: dict[str, list] = {}
    for event in a.events:
        inputs = a.inputs(event)
        for store, target, layers in ((acts_a, a, layers_a), (acts_b, b, layers_b)):
            for name, out in layer_outputs(target.module.net, layers, *inputs).items():
                store.setdefault(name, []).append(out)
    names_a = [n for n in layers_a if n in acts_a]   # layers the forward pass called
    names_b = [n for n in layers_b if n in acts_b]
    cka = np.full((len(names_a), len(names_b)), np.nan)
    for i, na in enumerate(names_a):
        xa = torch.cat(acts_a[na])
        for j, nb in enumerate(names_b):
            xb = torch.cat(acts_b[nb])
            if xa.shape[0] == xb.shape[0]:
                cka[i, j] = linear_cka(xa, xb)
    b_on_a = AnalysisTarget(b.pipe, b.stage, b.module, a.events, b.weights, b.edge_choice)
    differ = disagreement(a.decisions(a.space.flat()), b_on_a.decisions(b.space.flat()))
    plt = _figure()
    fig, ax = plt.subplots(figsize=(1.2 * len(names_b) + 2, 1.0 * len(names_a) + 1.5))
    im = ax.imshow(cka, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names_b)), names_b, rotation=45, ha="right")
    ax.set_yticks(range(len(names_a)), names_a)
    ax.set_xlabel(f"{b.stage.name} ({b.weights.parent.name})")
    ax.set_ylabel(f"{a.stage.name} ({a.weights.parent.name})")
    for i in range(len(names_a)):
        for j in range(len(names_b)):
            if np.isfinite(cka[i, j]):
                ax.text(j, i, f"{cka[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label="linear CKA")
    save_figure(fig, folder / "cka.png")
    seconds = time.perf_counter() - t0
    results = {"layers_a": names_a, "layers_b": names_b, "cka": cka.tolist(), "disagreement": differ,
               "seconds": seconds}
    lines = _header(a, "Representation similarity") + [
        f"Against weights {b.weights.parent.name} (stage '{b.stage.name}' of {b.pipe.path.name}); "
        f"{seconds:.1f} s.", "",
        f"Edges decided differently at score 0.5: {differ:.4f}.", "",
        "| layer | " + " | ".join(names_b) + " |", "|" + "---|" * (len(names_b) + 1)]
    for i, na in enumerate(names_a):
        lines.append(f"| {na} | " + " | ".join("–" if not np.isfinite(v) else f"{v:.3f}" for v in cka[i]) + " |")
    lines += ["", "(A layer's samples are its output rows, hits or edges; layers with other row counts are not "
              "compared.)", "", "![CKA](cka.png)"]
    return _finish(folder, results, lines)

