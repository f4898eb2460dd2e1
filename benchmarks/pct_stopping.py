"""Where protons stop in the DTC, per water phantom: the distribution of the last layer each 230 MeV
proton reaches (with and without nuclear interactions), and how long a frame takes to simulate.

    python benchmarks/pct_stopping.py [--protons 10000]

Prints a markdown table (layer 0 and 1 are the trackers; the calorimeter starts at layer 2).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from trkx.stages.data.pct import PCTConfig, simulate_frames
from trkx.stages.data.pct_physics import WATER


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protons", type=int, default=10_000)
    a = ap.parse_args()
    lines = ["| phantom | residual range (water) | stopping layer: mean ± std | 5% / 50% / 95% | "
             "with nuclear interactions: ending before the 1st percentile |", "|---|---|---|---|---|"]
    for phantom in (100.0, 150.0, 200.0):
        last = {}
        for nuclear in (False, True):
            cfg = PCTConfig(phantom_mm=phantom, protons_per_frame=a.protons // 100, nuclear_interactions=nuclear)
            df = pd.concat(simulate_frames(cfg, 100, np.random.default_rng(1)), keys=range(100), names=["frame"])
            last[nuclear] = df.groupby(["frame", "particle_id"]).layer_id.max()
        clean = last[False].to_numpy()
        # with nuclear interactions: protons ending before the first percentile of the clean stopping layers
        lost = float((last[True].to_numpy() < np.percentile(clean, 1)).mean())
        residual = (WATER.range_table.csda_range(230.0) - phantom / 10 * WATER.density) * 10
        lines.append(f"| {phantom:.0f} mm | {residual:.0f} mm | {clean.mean():.1f} ± {clean.std():.2f} | "
                     f"{np.percentile(clean, 5):.0f} / {np.percentile(clean, 50):.0f} / {np.percentile(clean, 95):.0f} | "
                     f"{lost:.1%} |")
    cfg = PCTConfig(protons_per_frame=100)
    rng = np.random.default_rng(2)
    simulate_frames(cfg, 1, rng)          # warm-up: range tables, Landau tables
    t0 = time.perf_counter()
    simulate_frames(cfg, 20, rng)
    one = []
    for _ in range(5):
        t1 = time.perf_counter()
        simulate_frames(cfg, 1, rng)
        one.append(time.perf_counter() - t1)
    lines += ["", f"Simulation time, 150 mm phantom, 100 protons per frame: {np.median(one) * 1e3:.0f} ms for one "
                  f"frame alone, {(time.perf_counter() - t0 - sum(one)) / 20 * 1e3:.1f} ms per frame when 20 frames "
                  "are transported together."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
