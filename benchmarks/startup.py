"""Start-up of `trkx reco` on one test event, cold and warm: the wall time of a whole process
(import, loading, compiling where a stage compiles, one event) when no compiled network is kept
yet ("cold": the kept AOTInductor packages are moved aside first and put back after) and when the
previous process has kept them ("warm"), each run ``--repeat`` times.

    python benchmarks/startup.py configs/benchmark.yaml [--repeat 2]

The pipeline must be trained (`trkx run`).  Writes <workdir>/startup.json and prints a table."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trkx.provenance import stamped
from trkx.runner import Pipeline
from trkx.storage import write_json


def reco_seconds(pipeline: str, hits: Path, out: Path) -> float:
    """Wall seconds of one `trkx reco` process (one thread)."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trkx.cli", "reco", pipeline, str(hits), str(out), "--no-progress",
                    "--threads", "1"], check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    pipe = Pipeline(a.pipeline, progress=False)
    outputs = pipe.run(write_outputs=False)
    event = outputs[0].paths["test"][0]
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv" / f"event{int(event.stem[5:]):09d}-hits.csv"
    packages = sorted(pipe.cachedir.glob("*/weights-*/aoti-*.pt2"))
    with tempfile.TemporaryDirectory(prefix="trkx-startup-") as tmp:
        tmp = Path(tmp)
        (tmp / "hits").mkdir()
        shutil.copy(csv, tmp / "hits")
        aside = tmp / "aside"
        aside.mkdir()
        cold = []
        for _ in range(a.repeat):
            moved = [shutil.move(p, aside / f"{k}.pt2") for k, p in enumerate(sorted(pipe.cachedir.glob("*/weights-*/aoti-*.pt2")))]
            cold.append(reco_seconds(a.pipeline, tmp / "hits", tmp / "out"))
            for p in moved:
                Path(p).unlink()
        warm = [reco_seconds(a.pipeline, tmp / "hits", tmp / "out") for _ in range(a.repeat)]
    kept = sorted(str(p.relative_to(pipe.cachedir)) for p in pipe.cachedir.glob("*/weights-*/aoti-*.pt2"))
    result = {"pipeline": a.pipeline, "event": int(event.stem[5:]), "cold_s": cold, "warm_s": warm,
              "packages_before": [str(p.relative_to(pipe.cachedir)) for p in packages], "packages_kept": kept}
    write_json(pipe.workdir / "startup.json", stamped(result, pipe.path))
    print(f"`trkx reco` on one test event of {a.pipeline} (one thread, whole process):\n\n"
          f"| start | seconds (each run) | mean |\n|---|---|---|\n"
          f"| cold (nothing compiled kept) | {', '.join(f'{s:.1f}' for s in cold)} | {np.mean(cold):.1f} |\n"
          f"| warm (the package kept by the run before) | {', '.join(f'{s:.1f}' for s in warm)} | {np.mean(warm):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
