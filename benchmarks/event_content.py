"""What a pipeline's simulated events hold, from the TrackML CSVs its data stage wrote.

    python benchmarks/event_content.py configs/trackml.yaml [--split test]

Per event (mean ± standard deviation over the split): generated particles, charged particles
leaving hits, hits, hits per particle with hits, the share of particles (with hits) and of hits
from secondaries (made in the material, ``primary`` 0), from the hard scatter, and from loopers:
particles with hits whose helix diameter 2 pT / (0.3 B) is below the outer tracker radius, so
that they curl back inside it (pT below about 0.31 GeV in 2 T with the generic detector's 1.03 m)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

OUTER_RADIUS_M = 1.03     # generic detector: the last long-strip barrel layer


def event_figures(tables, bfield_tesla: float) -> dict:
    p, t = tables.particles, tables.truth
    hits_of = t[t.particle_id != 0].groupby("particle_id").size()
    with_hits = p[p.particle_id.isin(hits_of.index)]
    pt = np.hypot(with_hits.px, with_hits.py)
    looper = 2 * pt / (0.3 * bfield_tesla) < OUTER_RADIUS_M
    secondary = with_hits.primary == 0 if "primary" in p else np.zeros(len(with_hits), bool)
    hard = with_hits.hard_scatter == 1 if "hard_scatter" in p else np.zeros(len(with_hits), bool)
    nh = hits_of.reindex(with_hits.particle_id).to_numpy()
    n_hits = len(tables.hits)
    return {"generator particles (charged and neutral)": len(p[p.primary == 1]) if "primary" in p else len(p),
            "particles with hits": len(with_hits), "hits": n_hits,
            "noise hits": int((t.particle_id == 0).sum()),
            "hits per particle": float(nh.mean()),
            "secondaries (share of particles with hits)": float(np.mean(secondary)),
            "secondaries (share of hits)": float(nh[np.asarray(secondary)].sum() / n_hits),
            "loopers (share of particles with hits)": float(np.mean(looper)),
            "loopers (share of hits)": float(nh[np.asarray(looper)].sum() / n_hits),
            "hard scatter (share of particles with hits)": float(np.mean(hard)),
            "pT > 1 GeV particles with >= 3 hits": int(((pt > 1.0) & (nh >= 3)).sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = ap.parse_args(argv)
    from trkx.io.trackml import read_trackml_event
    from trkx.runner import Pipeline
    pipe = Pipeline(args.pipeline, progress=False)
    if pipe.data.config.source != "simulate":
        print(f"{args.pipeline}: the data stage reads files; this summary is for simulated events", file=sys.stderr)
        return 2
    out = pipe.run_data()
    csv = out.paths[args.split][0].parent.parent / "csv"
    ids = [int(p.stem.removeprefix("event")) for p in out.paths[args.split]]
    rows = [event_figures(read_trackml_event(csv, i), pipe.data.config.simulation.bfield_tesla) for i in ids]
    print(f"{pipe.path.name}, {len(rows)} {args.split} events (mean ± std per event)\n")
    print("| quantity | per event |\n|---|---|")
    for key in rows[0]:
        v = np.array([r[key] for r in rows], dtype=float)
        fmt = (lambda x: f"{x:.3f}") if "share" in key or "per particle" in key else (lambda x: f"{x:,.0f}")
        print(f"| {key} | {fmt(v.mean())} ± {fmt(v.std())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
