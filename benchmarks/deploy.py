"""Deployment timing: the same trained chain as Python from the bundle's weights ("eager": a stage
that compiles its network compiles it in this process), Python with the bundle's exported networks
(its compiled packages where it has them, TorchScript otherwise) and the C++ tool
(cpp/build/trkx-reco, the same files), one thread each, on the pipeline's test events read as
truth-free TrackML hit files; and how many hits' track assignment differs between them.

    python benchmarks/deploy.py [configs/pipeline.yaml] [--events N]

Each variant runs the first event once untimed (compilation, allocator warm-up), then every
event; seconds per event include reading the hits.  Writes <workdir>/deploy.json and deploy.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trkx.bundle import export_bundle, load_bundle
from trkx.provenance import stamped
from trkx.reco import reconstruct
from trkx.runner import Pipeline
from trkx.storage import write_json, write_text

TOOL = Path(__file__).parents[1] / "cpp" / "build" / "trkx-reco"


def same_track(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per hit: whether its track is the same set of hits in both labelings (``-1``: no track;
    two unassigned hits agree).  A track is the same where all its hits share one label in the
    other labeling and that label's hits all share this track."""
    pairs = pd.DataFrame({"a": a, "b": b})
    b_per_a = pairs.groupby("a").b.transform("nunique").to_numpy()
    a_per_b = pairs.groupby("b").a.transform("nunique").to_numpy()
    both_free = (a < 0) & (b < 0)
    return both_free | ((a >= 0) & (b >= 0) & (b_per_a == 1) & (a_per_b == 1))


def differing_hits(a: Path, b: Path, ids: list[int]) -> float:
    """Fraction of hits whose track (as a set of hits) differs between two track dirs."""
    diff = total = 0
    for i in ids:
        x, y = pd.read_csv(a / f"event{i}.csv"), pd.read_csv(b / f"event{i}.csv")
        y = y.set_index("hit_id").loc[x.hit_id]
        diff += int((~same_track(x.track_id.to_numpy(), y.track_id.to_numpy())).sum())
        total += len(x)
    return diff / total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", nargs="?", default="configs/pipeline.yaml")
    ap.add_argument("--events", type=int, default=0, help="test events to use (0: all)")
    a = ap.parse_args()
    pipe = Pipeline(a.pipeline, progress=False)
    outputs = pipe.run(write_outputs=False)   # from the cache after `trkx run`
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="trkx-deploy-"))
    try:
        bundle = pipe.workdir / "bundle"
        manifest = export_bundle(a.pipeline, bundle)
        csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
        ids = [int(p.stem[5:]) for p in outputs[0].paths["test"]][: a.events or None]
        (work / "hits").mkdir()
        for i in ids:
            shutil.copy(csv / f"event{i:09d}-hits.csv", work / "hits")
        rows = {}
        for label, exported in (("Python eager", False), ("Python, exported networks", True)):
            res = reconstruct(load_bundle(bundle, exported=exported), work / "hits", work / label, progress=False,
                              warmup=True)
            rows[label] = {"mean": res["timing"]["total"]["mean"], "std": res["timing"]["total"]["std"],
                           "stages": {k: v["mean"] for k, v in res["timing"].items() if k != "total"}}
        if manifest["cpp"]["supported"] and TOOL.exists():
            (work / "cpp").mkdir()
            files = [str(work / "hits" / f"event{i:09d}-hits.csv") for i in ids]
            args = [str(TOOL), str(bundle), "--threads", "1", "--timing", str(work / "cpp_timing.json"),
                    files[0], str(work / "warmup.csv")]
            for f, i in zip(files, ids):
                args += [f, str(work / "cpp" / f"event{i}.csv")]
            subprocess.run(args, check=True, timeout=3600)
            per_event = json.loads((work / "cpp_timing.json").read_text())[1:]
            totals = [sum(v for k, v in e.items() if k != "event") for e in per_event]
            rows["C++ (LibTorch)"] = {"mean": float(np.mean(totals)), "std": float(np.std(totals)),
                                      "stages": {k: float(np.mean([e[k] for e in per_event]))
                                                 for k in per_event[0] if k != "event"}}
            rows["C++ (LibTorch)"]["differing_hits_vs_python"] = differing_hits(work / "Python eager", work / "cpp", ids)
        rows["Python, exported networks"]["differing_hits_vs_python"] = \
            differing_hits(work / "Python eager", work / "Python, exported networks", ids)
        base = rows["Python eager"]["mean"]
        result = {"pipeline": str(a.pipeline), "events": len(ids), "threads": 1, "rows": rows,
                  "cpp": manifest["cpp"]}
        lines = [f"# Deployment: {a.pipeline}, {len(ids)} test events, one thread", "",
                 "| variant | seconds per event | ratio to Python eager | hits assigned differently from Python eager |",
                 "|---|---|---|---|"]
        for label, row in rows.items():
            d = row.get("differing_hits_vs_python")
            lines.append(f"| {label} | {row['mean']:.4f} ± {row['std']:.4f} | {row['mean'] / base:.2f} | "
                         f"{'—' if d is None else f'{d:.2e}'} |")
        if "C++ (LibTorch)" not in rows:
            lines.append(f"\nNo C++ row: {manifest['cpp'].get('reason', 'cpp/build/trkx-reco is not built (make cpp)')}.")
        text = "\n".join(lines) + "\n"
        write_json(pipe.workdir / "deploy.json", stamped(result, pipe.path))
        write_text(pipe.workdir / "deploy.md", text)
        print(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
