"""Benchmarks that print ratios measured side by side in one run.

``stage_benchmark``: every stage's inference on the test events, repeated, with each stage's
backend alternatives (graph building backends, connected components SciPy vs cuGraph, precision
32 vs mixed).  ``graph_building_benchmark``: FRNN backends on the same embedded points (the
pipeline's embedded test events; configs/benchmark_metric_learning.yaml embeds the dense benchmark events).
"""
from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trkx.provenance import stamped
from trkx.storage import load_event, write_json, write_text
from trkx.timing import format_seconds, stopwatch

# --------------------------------------------------------------------------- stage timing


def _with(stage, **changes):
    """A shallow copy of ``stage`` with some config fields replaced (model shared)."""
    alt = copy.copy(stage)
    alt.config = dataclasses.replace(stage.config, **changes)
    return alt


def _variants(stage) -> list[tuple[str, object]]:
    """(label, stage object) alternatives of one stage, the configured one first."""
    options = stage.bench_options()         # declared by the stage: the core knows no stage's keys
    if not options:
        return [("configured", stage)]
    (field, values), = options.items()
    current = getattr(stage.config, field)
    return [(f"{field}={current}", stage)] + [(f"{field}={v}", _with(stage, **{field: v}))
                                              for v in values if v != current]


def stage_benchmark(pipeline_path: str | Path, repeats: int = 3, progress: bool = True) -> dict:
    """Time inference per stage and variant on the test events; writes bench.json and bench.md."""
    from trkx.runner import Pipeline, fingerprints

    pipe = Pipeline(pipeline_path, progress=progress)
    outputs = pipe.run(write_outputs=False)
    rows: dict[str, dict[str, list[float]]] = {"data loading": {"read .pt": []}}
    variants = {stage.name: _variants(stage) for stage in pipe.stages}
    for stage in pipe.stages:
        rows[stage.name] = {label: [] for label, _ in variants[stage.name]}
        if hasattr(stage, "model"):
            stage.model.eval()
    test_paths = outputs[0].paths["test"]
    for _ in tqdm(range(repeats), desc="bench", disable=not progress, leave=False):
        for path in test_paths:
            t: list[float] = []
            with stopwatch(t):
                event = load_event(path)
            rows["data loading"]["read .pt"].append(t[0])
            for stage in pipe.stages:
                result = None
                for label, variant in variants[stage.name]:
                    t = []
                    with torch.no_grad(), stopwatch(t, pipe.device):
                        out = variant.infer(event.clone())
                    rows[stage.name][label].append(t[0])
                    result = out if result is None else result
                event = result   # the configured variant feeds the next stage
    summary = {stage: {label: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                       for label, v in variants.items()} for stage, variants in rows.items()}
    configured = sum(next(iter(v.values()))["mean"] for v in summary.values())
    fastest = sum(min(x["mean"] for x in v.values()) for v in summary.values())
    result = {"device": pipe.device, "repeats": repeats, "events": len(test_paths), "stages": summary,
              "total_configured_s": configured, "total_fastest_s": fastest}
    write_json(pipe.workdir / "bench.json", stamped(result, pipe.path, fingerprints(outputs)))
    write_text(pipe.workdir / "bench.md", bench_markdown(result))
    return result


def bench_markdown(result: dict) -> str:
    lines = [f"# Stage timing ({result['device']}, {result['events']} test events x {result['repeats']} repeats)",
             "", "| stage | variant | seconds per event (mean ± std) | ratio to configured |",
             "|---|---|---|---|"]
    for stage, variants in result["stages"].items():
        base = next(iter(variants.values()))["mean"]
        for label, row in variants.items():
            ratio = row["mean"] / base if base else float("nan")
            lines.append(f"| {stage} | {label} | {format_seconds(row['mean'], row['std'])} | {ratio:.2f} |")
    lines.append(f"| **total** | configured | {result['total_configured_s']:.4f} | 1.00 |")
    lines.append(f"| **total** | fastest variant per stage | {result['total_fastest_s']:.4f} | "
                 f"{result['total_fastest_s'] / result['total_configured_s']:.2f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- graph building


def embedded_points(pipeline_path: str | Path, progress: bool = True):
    """The pipeline's embedded test events (training and embedding them if not cached), its
    graph-stage config and the pipeline."""
    from trkx.runner import Pipeline

    pipe = Pipeline(pipeline_path, progress=progress)
    emb = next((s for s in pipe.stages if s.role == "embedding"), None)
    graph = next((s for s in pipe.stages if s.role == "graph_construction" and hasattr(s.config, "feature")), None)
    if emb is None or graph is None:
        from trkx.config import ConfigError
        raise ConfigError(f"{pipeline_path}: --graph-building needs an embedding and a graph stage")
    outputs = pipe.run(until=emb.name, write_outputs=False)
    points = [load_event(p)[graph.config.feature] for p in outputs[-1].paths["test"]]
    return points, graph.config, pipe


def run_graph_building(pipeline_path: str | Path, repeats: int = 3, scaling: bool = False) -> str:
    """``trkx bench --graph-building``: the benchmark on the pipeline's embedded test events, written
    as bench_graph_building.json / .md (and .png with ``scaling``) in the workdir; returns the table."""
    points, graph_cfg, pipe = embedded_points(pipeline_path)
    res = graph_building_benchmark(points, graph_cfg.r, graph_cfg.k_max, repeats=repeats, scaling=scaling)
    text = graph_building_markdown(res)
    write_json(pipe.workdir / "bench_graph_building.json", stamped(res, pipe.path))
    if scaling:
        graph_building_plot(res, pipe.workdir / "bench_graph_building.png")
        text += "\n![graph building scaling](bench_graph_building.png)\n"
    write_text(pipe.workdir / "bench_graph_building.md", text)
    return text


def _time_backends(p: torch.Tensor, r: float, k_max: int, repeats: int, backends: list[str]) -> dict:
    """Median seconds of each backend on points ``p`` (backends interleaved within every repeat, so
    a drift in machine speed hits all alike), edge counts and identity with the kd-tree's edges."""
    from trkx.ops.frnn import build_edges

    edges = {b: build_edges(p, r, k_max, b) for b in backends}      # warm-up, and the identity check
    reference = edges["kdtree"] if "kdtree" in edges else build_edges(p, r, k_max, "kdtree")
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(repeats):
        for b in backends:
            with stopwatch(times[b], p.device):
                build_edges(p, r, k_max, b)
    return {b: {"median_s": statistics.median(times[b]), "edges": int(e.shape[1]),
                "identical": bool(e.shape == reference.shape and torch.equal(e.cpu(), reference.cpu()))}
            for b, e in edges.items()}


def _scaling_inputs(points: list[torch.Tensor], seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Point sets of growing size from the embedded test events: a 20k-hit random subsample of the
    first event, the first event, then the events overlaid (concatenated: pile-up in latent space)."""
    g = torch.Generator().manual_seed(seed)
    first = points[0]
    out = []
    if first.shape[0] > 20_000:
        out.append(("20k-hit subsample of event 1", first[torch.randperm(first.shape[0], generator=g)[:20_000]]))
    out.append(("event 1", first))
    for k in range(2, len(points) + 1):
        out.append((f"events 1-{k} overlaid", torch.cat(points[:k])))
    return out


def graph_building_benchmark(points: list[torch.Tensor], r: float, k_max: int, repeats: int = 5,
                             backends: list[str] | None = None, scaling: bool = False,
                             faiss_max_hits: int = 80_000) -> dict:
    """Median time per event of each backend on the same points, edges/s, ratios; checks identity.
    ``scaling``: also time growing point sets (see ``_scaling_inputs``); brute-force faiss only up
    to ``faiss_max_hits``."""
    from trkx.ops.frnn import available_backends

    backends = backends or available_backends()
    result = {"r": r, "k_max": k_max, "repeats": repeats, "hits": [int(p.shape[0]) for p in points],
              "dim": int(points[0].shape[1]), "backends": {}}
    per_event = [_time_backends(p, r, k_max, repeats, backends) for p in tqdm(points, desc="graph building", leave=False)]
    for b in backends:
        total = float(sum(ev[b]["median_s"] for ev in per_event))
        result["backends"][b] = {"median_s_per_event": total / len(points),
                                 "edges_per_s": sum(ev[b]["edges"] for ev in per_event) / total,
                                 "identical_to_kdtree": all(ev[b]["identical"] for ev in per_event)}
    _add_ratios(result["backends"], "median_s_per_event")
    if scaling:
        rows = []
        for label, p in tqdm(_scaling_inputs(points), desc="scaling", leave=False):
            chosen = [b for b in backends if b != "faiss" or p.shape[0] <= faiss_max_hits]
            timed = _time_backends(p, r, k_max, repeats, chosen)
            _add_ratios(timed, "median_s")
            rows.append({"label": label, "hits": int(p.shape[0]), "backends": timed})
        result["scaling"] = rows
        result["faiss_max_hits"] = faiss_max_hits
    return result


def _add_ratios(rows: dict, key: str) -> None:
    for row in rows.values():
        for ref in ("kdtree", "faiss"):
            if ref in rows:
                row[f"speedup_vs_{ref}"] = rows[ref][key] / row[key]


def graph_building_markdown(res: dict) -> str:
    lines = [f"# Graph building: {len(res['hits'])} events, {int(np.mean(res['hits']))} hits on average, "
             f"{res['dim']}-d embedding, r = {res['r']}, k_max = {res['k_max']}, median of {res['repeats']}",
             "", "| backend | median s / event | edges / s | speed-up vs kdtree | speed-up vs faiss | identical edges |",
             "|---|---|---|---|---|---|"]
    for b, row in res["backends"].items():
        lines.append(f"| {b} | {row['median_s_per_event']:.4f} | {row['edges_per_s']:.3g} | "
                     f"{row.get('speedup_vs_kdtree', float('nan')):.2f} | {row.get('speedup_vs_faiss', float('nan')):.2f} | "
                     f"{'yes' if row['identical_to_kdtree'] else 'NO'} |")
    if "scaling" in res:
        names = list(res["backends"])
        lines += ["", f"## Scaling (seconds, median of {res['repeats']}; faiss is brute force, timed up to "
                      f"{res['faiss_max_hits']:,} hits)", "",
                  "| points | hits | edges | " + " | ".join(names) + " | grid vs kdtree | grid vs faiss | identical |",
                  "|---|---|---|" + "---|" * (len(names) + 3)]
        for row in res["scaling"]:
            t = row["backends"]
            grid = t.get("grid", {})
            lines.append(f"| {row['label']} | {row['hits']:,} | {t['kdtree']['edges']:,} | "
                         + " | ".join(f"{t[b]['median_s']:.4f}" if b in t else "—" for b in names)
                         + f" | {grid.get('speedup_vs_kdtree', float('nan')):.2f} | "
                         + (f"{grid['speedup_vs_faiss']:.2f}" if "speedup_vs_faiss" in grid else "—")
                         + f" | {'yes' if all(v['identical'] for v in t.values()) else 'NO'} |")
    return "\n".join(lines) + "\n"


def graph_building_plot(res: dict, path: Path) -> None:
    """Seconds per point set against hits, one line per backend (log-log)."""
    from trkx.report import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for b in res["backends"]:
        pts = [(row["hits"], row["backends"][b]["median_s"]) for row in res["scaling"] if b in row["backends"]]
        ax.plot(*zip(*pts), marker="o", label=b)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hits in the point set")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"graph building, {res['dim']}-d embedding, r = {res['r']}, k_max = {res['k_max']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, path)


# --------------------------------------------------------------------------- GNN checkpointing


def _gnn_step_worker(mode: str, n_nodes: int, n_edges: int, hidden: int, iterations: int, precision: str,
                     conn) -> None:
    """One GNN training step in a fresh process; reports (peak extra memory bytes, seconds)."""
    import resource

    from torch_geometric.data import Data

    from trkx.config import parse_config
    from trkx.stage import stage_class
    from trkx.training import autocast_context

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    event = Data(num_nodes=n_nodes, x=torch.randn(n_nodes, 3, generator=g),
                 edge_index=torch.randint(0, n_nodes, (2, n_edges), generator=g),
                 r=torch.rand(n_nodes, generator=g) * 1000 + 30, phi=torch.rand(n_nodes, generator=g) * 6 - 3,
                 z=torch.randn(n_nodes, generator=g) * 500, region=torch.randint(0, 3, (n_nodes,), generator=g),
                 particle_id=torch.randint(1, n_nodes // 10, (n_nodes,), generator=g),
                 pt=torch.full((n_nodes,), 2.0), track_edges=torch.stack([torch.arange(n_nodes - 1), torch.arange(1, n_nodes)]))
    event.y = event.particle_id[event.edge_index[0]] == event.particle_id[event.edge_index[1]]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gnn = stage_class("gnn", "bench")
    cfg = parse_config(gnn.Config, {"hidden": hidden, "n_iterations": iterations, "checkpointing": mode}, "bench")
    model = gnn(cfg).build(3).to(device)
    event = event.to(device)
    model.train()
    times = []
    for step in range(3):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        t0 = time.perf_counter()
        with autocast_context(precision, device):
            loss = model.training_step(event, 0)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
        if step == 0:
            first_peak = peak
    conn.send((first_peak, statistics.median(times[1:]), str(device)))


def checkpointing_benchmark(n_nodes: int = 50000, n_edges: int = 500000, hidden: int = 64,
                            iterations: int = 6, precision: str = "32") -> dict:
    """Peak training memory and step time for checkpointing none / partial / maximal on one graph
    (each mode in its own process so that peak memory is not shared)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {"nodes": n_nodes, "edges": n_edges, "hidden": hidden, "iterations": iterations, "modes": {}}
    for mode in ("none", "partial", "maximal"):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_gnn_step_worker, args=(mode, n_nodes, n_edges, hidden, iterations, precision, child))
        proc.start()
        peak, seconds, device = parent.recv()
        proc.join()
        out["device"] = device
        out["modes"][mode] = {"peak_memory_mb": peak / 2**20, "step_s": seconds}
    base = out["modes"]["none"]
    for row in out["modes"].values():
        row["memory_ratio"] = row["peak_memory_mb"] / base["peak_memory_mb"] if base["peak_memory_mb"] else float("nan")
        row["time_ratio"] = row["step_s"] / base["step_s"]
    return out


def checkpointing_markdown(res: dict) -> str:
    lines = [f"# GNN gradient checkpointing ({res['device']}): {res['nodes']} nodes, {res['edges']} edges, "
             f"hidden {res['hidden']}, {res['iterations']} iterations", "",
             "| checkpointing | peak training memory (MB) | step time (s) | memory vs none | time vs none |",
             "|---|---|---|---|---|"]
    for mode, row in res["modes"].items():
        lines.append(f"| {mode} | {row['peak_memory_mb']:.0f} | {row['step_s']:.2f} | {row['memory_ratio']:.2f} | "
                     f"{row['time_ratio']:.2f} |")
    return "\n".join(lines) + "\n"
