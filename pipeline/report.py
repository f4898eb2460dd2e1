"""``report.md`` with PNG plots: efficiency vs pT and eta, edge efficiency / purity per stage,
stage timing."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trkx.evaluate import extra_summaries  # noqa: E402
from trkx.storage import atomic_path, read_json, write_text  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _efficiency_plot(series: dict[str, dict], xlabel: str, title: str, path: Path, log: bool = False) -> None:
    """Binned efficiency of one or several methods ({label: binned}) on one plot."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, (label, binned) in enumerate(series.items()):
        edges = np.asarray(binned["edges"])
        centres = 0.5 * (edges[1:] + edges[:-1])
        eff = np.asarray(binned["efficiency"], dtype=float)
        err = np.asarray(binned["error"], dtype=float)
        shift = 1.0 + 0.02 * k if log else 0.0   # side by side, not on top of each other
        x = centres * shift if log else centres + 0.02 * k * (edges[1] - edges[0])
        ax.errorbar(x, eff, xerr=0.5 * (edges[1:] - edges[:-1]), yerr=err, fmt="o", ms=4, capsize=2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("track efficiency")
    ax.set_ylim(0, 1.05)
    ax.axhline(1.0, color="grey", lw=0.5)
    if log:
        ax.set_xscale("log")
    if len(series) > 1:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _edge_plot(edge: dict, path: Path) -> None:
    stages = list(edge)
    eff = [edge[s]["target"]["efficiency"] or 0.0 for s in stages]
    pur = [edge[s]["target"]["purity"] or 0.0 for s in stages]
    x = np.arange(len(stages))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.bar(x - 0.18, eff, 0.36, label="efficiency (target truth edges)")
    ax.bar(x + 0.18, pur, 0.36, label="purity (target edges / kept)")
    for xi, (e, p) in enumerate(zip(eff, pur)):
        ax.text(xi - 0.18, e + 0.01, f"{e:.3f}", ha="center", fontsize=7)
        ax.text(xi + 0.18, p + 0.01, f"{p:.3f}", ha="center", fontsize=7)
    ax.set_xticks(x, stages)
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("edge efficiency and purity after each stage", fontsize=9)
    save_figure(fig, path)


def _timing_plot(timing: dict, path: Path) -> None:
    stages = [s for s in timing["order"] if s != "total"]
    mean = [timing["stages"][s]["mean"] for s in stages]
    std = [timing["stages"][s]["std"] for s in stages]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.barh(stages, mean, xerr=std, color="tab:green")
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds per event ({timing['device']})")
    ax.set_title(f"stage timing, total {timing['stages']['total']['mean']:.3f} s/event", fontsize=9)
    save_figure(fig, path)


def origin_lines(metrics: dict, ckf: dict | None) -> list[str]:
    """The field's target cut and the hard-scatter efficiency, with the CKF's beside them."""
    rows = []
    if "field_cut" in metrics:
        f = metrics["field_cut"]
        rows.append((f"pT > {f['pt_min']} GeV, abs(eta) < {f['eta_max']} (HEPT / ACORN cut)", "field_cut"))
    if "hard_scatter" in metrics:
        rows.append(("hard-scatter particles (configured cut)", "hard_scatter"))
    if not rows:
        return []
    fmt = lambda x: "—" if x is None else f"{x:.4f}"  # noqa: E731  (no target particle: NaN, null in JSON)
    head = "| target particles | efficiency | targets |" + (" ACTS CKF |" if ckf else "")
    lines = ["", head, "|---|---|---|" + ("---|" if ckf else "")]
    for label, key in rows:
        m = metrics[key]
        other = f" {fmt(ckf[key]['efficiency'])} |" if ckf and key in ckf else (" — |" if ckf else "")
        lines.append(f"| {label} | {fmt(m['efficiency'])} | {m['n_target_particles']} |{other}")
    return lines + [""]


def write_report(workdir: Path, title: str = "trkx report") -> Path:
    """Plots under ``workdir/plots`` and ``workdir/report.md`` from metrics.json and timing.json."""
    metrics = read_json(workdir / "metrics.json", "metrics file")
    timing = read_json(workdir / "timing.json", "timing file")
    plots = workdir / "plots"
    plots.mkdir(exist_ok=True)
    lines = [f"# {title}", ""]
    if "track_efficiency" in metrics:
        t = metrics["target"]
        lines += ["## Tracks", "",
                  f"Target particles: pT > {t['pt_min']} GeV, >= {t['min_hits']} hits; {metrics['events']} test events.",
                  "", "| matching | efficiency | fake rate | duplicate rate | tracks |", "|---|---|---|---|---|"]
        for style, m in metrics["styles"].items():
            mark = " (configured)" if style == metrics["matching"] else ""
            lines.append(f"| {style}{mark} | {m['efficiency']:.4f} | {m['fake_rate']:.4f} | "
                         f"{m['duplicate_rate']:.4f} | {m['n_tracks']} |")
        v, vw = metrics["v_score"], metrics["v_score_weighted"]
        lines += ["", f"TrackML score: **{metrics['trackml_score']:.4f}**.  "
                      f"V-measure {v['v_measure']:.4f} (homogeneity {v['homogeneity']:.4f}, completeness "
                      f"{v['completeness']:.4f}); hit-weighted V-measure {vw['v_measure']:.4f}.", ""]
        # the CKF baseline's curves beside the pipeline's, when `trkx baseline ckf` has run
        ckf_path = workdir / "baseline_ckf" / "metrics.json"
        ckf = read_json(ckf_path, "metrics file") if ckf_path.exists() else None
        for key, xlabel, title, name, log in (
                ("efficiency_vs_pt", "particle pT [GeV]", f"{metrics['matching']} matching, >= {t['min_hits']} hits",
                 "efficiency_vs_pt.png", True),
                ("efficiency_vs_eta", "particle eta", f"{metrics['matching']} matching, pT > {t['pt_min']} GeV",
                 "efficiency_vs_eta.png", False),
                ("efficiency_vs_prod_r", "production radius [mm]",
                 f"{metrics['matching']} matching, pT > {t['pt_min']} GeV", "efficiency_vs_prod_r.png", True)):
            if key not in metrics or (ckf and key not in ckf):
                continue
            series = {"GNN pipeline": metrics[key]} if ckf else {"": metrics[key]}
            if ckf:
                series["ACTS CKF"] = ckf[key]
            # no target particle in any bin (proton CT: every proton has pT = 0): no plot
            if any(np.isfinite(np.asarray(b["efficiency"], dtype=float)).any() for b in series.values()):
                _efficiency_plot(series, xlabel, title, plots / name, log)
                lines.append(f"![{key.replace('_', ' ')}](plots/{name})")
        lines += origin_lines(metrics, ckf)
        for summary in extra_summaries(metrics):   # figures a stage declares (proton CT: per frame)
            lines += ["", summary + ".", ""]
    if metrics.get("edge"):
        lines += ["## Edges", "", "| stage | target efficiency | target purity | all-edge efficiency | all-edge purity | ROC AUC | edges / event |",
                  "|---|---|---|---|---|---|---|"]
        fmt = lambda x: "—" if x is None else f"{x:.4f}"  # noqa: E731
        for stage, m in metrics["edge"].items():
            lines.append(f"| {stage} | {fmt(m['target']['efficiency'])} | {fmt(m['target']['purity'])} | "
                         f"{fmt(m['all']['efficiency'])} | {fmt(m['all']['purity'])} | {fmt(m.get('roc_auc'))} | "
                         f"{m['all']['edges_per_event']:.0f} |")
        lines += ["", "Per detector region, edges inside one region (target efficiency / target purity):", "",
                  "| stage | " + " | ".join(next(iter(metrics["edge"].values()))["per_region"]) + " |",
                  "|---|" + "---|" * len(next(iter(metrics["edge"].values()))["per_region"])]
        for stage, m in metrics["edge"].items():
            lines.append(f"| {stage} | " + " | ".join(f"{fmt(r['efficiency'])} / {fmt(r['purity'])}"
                                                    for r in m["per_region"].values()) + " |")
        _edge_plot(metrics["edge"], plots / "edge_metrics.png")
        lines += ["", "![edge metrics](plots/edge_metrics.png)", ""]
    from trkx.timing import timing_table
    if "total" in timing["stages"]:     # a data-only pipeline has no stage to time
        lines += ["## Stage timing", "", "```", timing_table({k: timing["stages"][k] for k in timing["order"]}),
                  "```", ""]
        _timing_plot(timing, plots / "timing.png")
        lines += ["![stage timing](plots/timing.png)", ""]
    displays = sorted((workdir / "display").glob("event*.png"))
    if displays:        # `trkx display` pictures, each beside its interactive page
        lines += ["## Event display (`trkx display`)", ""]
        for png in displays:
            lines += [f"![{png.stem}](display/{png.name})", "",
                      f"Interactive: [display/{png.stem}.html](display/{png.stem}.html)", ""]
    baseline = workdir / "baseline_ckf" / "comparison.md"
    if baseline.exists():
        lines += ["## Classical baseline (`trkx baseline ckf`)", "", baseline.read_text().split("\n", 2)[2], ""]
    bench = workdir / "bench.md"
    if bench.exists():
        lines += ["## Benchmark (`trkx bench`)", "", bench.read_text().split("\n", 2)[2], ""]
    if metrics.get("provenance"):
        from trkx.provenance import provenance_text
        lines += ["## Provenance (metrics.json)", "", "```", provenance_text(metrics["provenance"]), "```", ""]
    path = workdir / "report.md"
    write_text(path, "\n".join(lines))
    return path
