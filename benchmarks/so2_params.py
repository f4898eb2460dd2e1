"""Efficiency against parameter count: the SO(2)-equivariant GNN beside the unconstrained
interaction GNN, each trained at several sizes with the pipeline's recipe on the same events.

    python benchmarks/so2_params.py configs/pipeline.yaml [--stage gnn] [--hidden-so2 6 16 34 79]
        [--hidden-interaction 7 17 35 80]

The default hidden sizes give about 1k, 5k, 20k and 100k parameters for each network.  Every
point is the stage's YAML with ``architecture`` and ``hidden`` set, in a workdir of its own under
``<workdir>/so2_params/`` sharing the pipeline's cache (the data and the upstream stages are not
made again).  Columns: parameters, the stage's target edge efficiency and purity at score 0.5, the
chain's track efficiency and fake rate, and the seconds of the variant's `trkx run` (its training, mostly).  Writes ``so2_params.json``, ``.md``
and ``so2_params.png`` there."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trkx.evaluate import evaluate  # noqa: E402
from trkx.provenance import stamped  # noqa: E402
from trkx.runner import Pipeline  # noqa: E402
from trkx.storage import write_json, write_text  # noqa: E402
from trkx.variants import variant_pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--stage", default="gnn")
    ap.add_argument("--hidden-so2", nargs="+", type=int, default=[6, 16, 34, 79])
    ap.add_argument("--hidden-interaction", nargs="+", type=int, default=[7, 17, 35, 80])
    a = ap.parse_args(argv)
    base = Pipeline(a.pipeline, progress=False)
    if a.stage not in base.stage_names():
        raise SystemExit(f"--stage: no stage '{a.stage}' in {a.pipeline}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="trkx-so2-") as tmp:
        for arch, sizes in (("so2", a.hidden_so2), ("interaction", a.hidden_interaction)):
            for hidden in sizes:
                slug = f"{arch}_h{hidden}"
                path = variant_pipeline(base, a.stage, {"architecture": arch, "hidden": hidden},
                                        base.workdir / "so2_params" / slug, Path(tmp), slug)
                pipe = Pipeline(path, progress=False)
                start = time.perf_counter()
                outputs = pipe.run()
                wall = time.perf_counter() - start
                metrics = evaluate(pipe, outputs)
                i = pipe.stage_names().index(a.stage)
                net = pipe.stages[i - 1].model.net
                rows.append({"architecture": arch, "hidden": hidden,
                             "parameters": sum(p.numel() for p in net.parameters()),
                             "edge": metrics["edge"][a.stage]["target"],
                             "track_efficiency": metrics["track_efficiency"], "fake_rate": metrics["fake_rate"],
                             "run_seconds": wall})
                print(f"{slug}: {rows[-1]['parameters']:,} parameters, track efficiency "
                      f"{rows[-1]['track_efficiency']:.4f} ({wall:.0f} s)", flush=True)
    lines = [f"SO(2)-equivariant vs unconstrained GNN (`python benchmarks/so2_params.py {a.pipeline}`), "
             f"{len(outputs[0].paths['test'])} test events", "",
             "| network | hidden | parameters | edge efficiency | edge purity | track efficiency | fake rate | run s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['architecture']} | {r['hidden']} | {r['parameters']:,} | {r['edge']['efficiency']:.4f} | "
                     f"{r['edge']['purity']:.4f} | {r['track_efficiency']:.4f} | {r['fake_rate']:.4f} | "
                     f"{r['run_seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    out = base.workdir / "so2_params"
    write_text(out / "so2_params.md", text)
    write_json(out / "so2_params.json", stamped({"pipeline": a.pipeline, "stage": a.stage, "rows": rows}, base.path))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for arch, label in (("so2", "SO(2)-equivariant"), ("interaction", "unconstrained")):
        pts = [r for r in rows if r["architecture"] == arch]
        axes[0].plot([r["parameters"] for r in pts], [r["edge"]["efficiency"] for r in pts], "o-", label=label)
        axes[1].plot([r["parameters"] for r in pts], [r["track_efficiency"] for r in pts], "o-", label=label)
    for ax, name in zip(axes, ("target edge efficiency (score 0.5)", "track efficiency (double majority)")):
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "so2_params.png", dpi=110)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
