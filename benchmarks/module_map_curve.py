"""The module map's learning curve: target edge efficiency, edges and time per event against the
number of training events the map is built from, measured on the pipeline's validation events.

    python benchmarks/module_map_curve.py configs/trackml.yaml --events 10 20 40 80 160

The map uses the pipeline's own module-map stage config (its pT threshold and margin); the first
N training events build it. Target edges: consecutive hits of particles with pT above the
evaluation's ``pt_min`` and at least ``min_hits`` hits. One thread."""
from __future__ import annotations

import argparse
import sys
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--events", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    args = ap.parse_args(argv)
    from trkx.event import edge_truth, orient_and_dedup
    from trkx.metrics.edges import edge_counts
    from trkx.runner import Pipeline
    from trkx.stages.graph_construction.module_map import ModuleMapConfig, build_module_map, module_map_edges
    from trkx.storage import load_event
    pipe = Pipeline(args.pipeline, progress=False)
    stage = next((s for s in pipe.stages if isinstance(s.config, ModuleMapConfig)), None)
    if stage is None:
        print(f"{args.pipeline}: the pipeline has no module_map stage", file=sys.stderr)
        return 2
    cfg, ev = stage.config, pipe.config.evaluation
    out = pipe.run_data()
    train = [load_event(p) for p in out.paths["train"][:max(args.events)]]
    val = [load_event(p) for p in out.paths["val"]]
    torch.set_num_threads(1)
    print(f"{pipe.path.name}: module map (pt_min {cfg.pt_min} GeV, margin {cfg.margin}) on {len(val)} validation "
          f"events; targets pT > {ev.pt_min} GeV, >= {ev.min_hits} hits\n")
    print("| training events | module pairs | target edge efficiency | edges / event | s / event |\n|---|---|---|---|---|")
    for n in args.events:
        if n > len(train):
            print(f"(only {len(train)} training events: {n} skipped)")
            continue
        mmap = build_module_map(train[:n], cfg)
        found = total = edges = seconds = 0.0
        for event in val:
            t0 = time.perf_counter()
            ei = orient_and_dedup(event, module_map_edges(event, mmap, cfg.max_candidates, cfg.granularity))
            seconds += time.perf_counter() - t0
            g = event.clone()
            g.edge_index, g.y = ei, edge_truth(g, ei)
            c = edge_counts(g, None, ev.pt_min, ev.min_hits)
            found, total, edges = found + c["target_found"], total + c["target_truth"], edges + ei.shape[1]
        print(f"| {n} | {len(mmap['modules']):,} | {found / total:.4f} | {edges / len(val):,.0f} | "
              f"{seconds / len(val):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
