"""Robustness to an inefficient graph: the edge-classification chain and the hierarchical GNN on
graphs that lost a share of their true edges at random (the ``degrade`` stage, placed after the
filter), each retrained on its degraded graphs; the HGNN paper's claim is that its super-nodes
join tracks the flat chain loses.

    python benchmarks/degraded_graphs.py configs/pipeline.yaml configs/pipeline_hgnn.yaml \
        [--after filter] [--efficiency 1.0 0.95 0.9]

Each pipeline runs once per graph efficiency in a workdir of its own under
``<first workdir>/degraded_graphs/``, sharing its cache (data and the stages up to ``--after``
are reused).  Columns: the share of the true edges the graph keeps (target edges, pT > the
evaluation's cut, measured after the degrade stage), then per pipeline the double-majority
efficiency and fake rate.  Writes ``degraded_graphs.json``, ``.md`` and ``.png`` there."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trkx.evaluate import evaluate  # noqa: E402
from trkx.provenance import stamped  # noqa: E402
from trkx.runner import Pipeline  # noqa: E402
from trkx.storage import write_json, write_text  # noqa: E402
from trkx.variants import with_stage_after  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipelines", nargs="+")
    ap.add_argument("--after", default="filter", help="the stage the degrade stage follows")
    ap.add_argument("--efficiency", nargs="+", type=float, default=[1.0, 0.95, 0.9])
    a = ap.parse_args(argv)
    first = Pipeline(a.pipelines[0], progress=False)
    out = first.workdir / "degraded_graphs"
    rows = []
    with tempfile.TemporaryDirectory(prefix="trkx-degraded-") as tmp:
        for eff in a.efficiency:
            row = {"kept": eff, "methods": {}}
            for path in a.pipelines:
                base = Pipeline(path, progress=False)
                if a.after not in base.stage_names():
                    raise SystemExit(f"--after: no stage '{a.after}' in {path}")
                slug = f"{base.stages[-1].name}_eff{eff:g}"
                if eff < 1.0:
                    variant = with_stage_after(base, a.after, {"stage": "degrade", "name": "degrade",
                                                               "efficiency": eff}, out / slug, Path(tmp), slug)
                    pipe, graph = Pipeline(variant, progress=False), "degrade"
                else:       # the pipeline itself: nothing dropped
                    pipe, graph = base, a.after
                metrics = evaluate(pipe, pipe.run())
                row["graph_target_efficiency"] = metrics["edge"][graph]["target"]["efficiency"]
                row["methods"][base.stages[-1].name] = {"efficiency": metrics["track_efficiency"],
                                                       "fake_rate": metrics["fake_rate"]}
                print(f"{slug}: graph {row['graph_target_efficiency']:.4f}, track efficiency "
                      f"{metrics['track_efficiency']:.4f}, fake rate {metrics['fake_rate']:.4f}", flush=True)
            rows.append(row)
    names = list(rows[0]["methods"])
    lines = [f"Degraded graphs (`python benchmarks/degraded_graphs.py {' '.join(a.pipelines)}`), true edges "
             f"dropped at random after '{a.after}'", "",
             "| true edges kept | graph target efficiency | " + " | ".join(f"{n}: efficiency / fake rate" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['kept']:g} | {r['graph_target_efficiency']:.4f} | " + " | ".join(
            f"{r['methods'][n]['efficiency']:.4f} / {r['methods'][n]['fake_rate']:.4f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    write_text(out / "degraded_graphs.md", text)
    write_json(out / "degraded_graphs.json", stamped({"pipelines": a.pipelines, "rows": rows}, first.path))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for n in names:
        ax.plot([r["graph_target_efficiency"] for r in rows], [r["methods"][n]["efficiency"] for r in rows], "o-", label=n)
    ax.set_xlabel("graph target edge efficiency")
    ax.set_ylabel("track efficiency (double majority)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "degraded_graphs.png", dpi=110)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
