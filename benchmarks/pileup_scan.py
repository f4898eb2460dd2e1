"""How the chain's cost grows with pile-up: the chain trained on a pipeline (configs/trackml.yaml,
<mu> = 200) applied to new events at several <mu>, beside ACTS seeding + CKF on the same events.

    python benchmarks/pileup_scan.py configs/trackml.yaml --mu 0 50 100 200 300 --events 3

For each <mu> the pipeline's data config makes ``--events`` new crossings (its generator and
hard process, pile-up set to <mu>, seed ``--seed``: none of them is a training or test event);
ACTS simulates and reconstructs them with the CKF in one process, the chain runs on the same hits
in another (each process's peak RSS is the memory figure).  Both run on one thread; the chain is
timed stage by stage after one untimed warm-up event.  Output: ``--out`` (default
``<workdir>/pileup_scan``) with scan.json, scan.md and scan.png."""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def simulate_and_ckf(sim: dict, seed: int, n: int, out_dir: str, base_dir: str) -> dict:
    """ACTS simulation + seeding + CKF on one thread; seconds per event per algorithm, peak RSS."""
    from trkx.ckf import run_ckf
    from trkx.config import parse_config
    from trkx.simulation import SimulationConfig
    t0 = time.perf_counter()
    per_alg = run_ckf(parse_config(SimulationConfig, sim, "pile-up scan"), seed, 0, n, Path(out_dir),
                      base_dir=Path(base_dir))
    return {"per_algorithm_s": per_alg, "seconds_per_event": float(sum(per_alg.values())),
            "wall_s": time.perf_counter() - t0, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_chain(pipeline: str, acts_dir: str, n: int) -> dict:
    """The trained chain on the ACTS events of ``acts_dir`` (one thread): per-stage seconds,
    hits and edges per event, GNN and CKF track metrics on the same truth, peak RSS."""
    import pandas as pd
    import torch

    from trkx.ckf import TRACKS_CSV, ckf_track_labels
    from trkx.evaluate import event_truth, track_level
    from trkx.io.acts import read_acts_event
    from trkx.reco import chain_from_pipeline

    torch.set_num_threads(1)
    acts_dir = Path(acts_dir)
    chain = chain_from_pipeline(pipeline)
    for stage in chain.stages:
        if getattr(stage, "model", None) is not None:
            stage.model.eval()
    events = [chain.source.event_graph(read_acts_event(acts_dir, k), str(acts_dir)) for k in range(n)]
    for event in events:
        event.event_id = int(event.event_id)
    seconds = {s.name: [] for s in chain.stages}
    edges = {s.name: [] for s in chain.stages}
    truth, gnn_tracks, ckf_tracks = [], [], []
    with torch.no_grad():
        warm = events[0].clone()
        for stage in chain.stages:
            warm = stage.infer(warm)
        for k, event in enumerate(events):
            truth.append(event_truth(event))
            hit_ids = event.hit_id.numpy()
            for stage in chain.stages:
                t0 = time.perf_counter()
                event = stage.infer(event)
                seconds[stage.name].append(time.perf_counter() - t0)
                edges[stage.name].append(int(event.edge_index.shape[1]) if "edge_index" in event else 0)
            gnn_tracks.append(pd.DataFrame({"event_id": k, "hit_id": hit_ids, "track_id": event.track_id.numpy()}))
            ckf_tracks.append(pd.DataFrame({"event_id": k, "hit_id": hit_ids,
                                            "track_id": ckf_track_labels(acts_dir / "ckf" / TRACKS_CSV.format(k), hit_ids)}))
    truth = pd.concat(truth, ignore_index=True)
    keys = ("track_efficiency", "fake_rate", "duplicate_rate")
    scores = {}
    for name, tracks in (("gnn", gnn_tracks), ("ckf", ckf_tracks)):
        m = track_level(truth, pd.concat(tracks, ignore_index=True), chain.evaluation)
        scores[name] = {**{k: m[k] for k in keys}, "field_cut_efficiency": m["field_cut"]["efficiency"],
                        **({"hard_scatter_efficiency": m["hard_scatter"]["efficiency"]} if "hard_scatter" in m else {})}
    return {"hits_per_event": float(np.mean([e.num_nodes for e in events])),
            "edges_per_event": {s: float(np.mean(v)) for s, v in edges.items()},
            "stage_seconds": {s: float(np.mean(v)) for s, v in seconds.items()},
            "seconds_per_event": float(np.mean(np.sum([v for v in seconds.values()], axis=0))),
            "scores": scores, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


CHILDREN = {"ckf": simulate_and_ckf, "chain": run_chain}


def in_child(kind: str, *args, env: dict | None = None) -> dict:
    """``CHILDREN[kind](*args)`` in a fresh Python process (its own peak RSS, nothing shared with
    the others; ``env`` added to its environment); arguments and result travel as JSON files."""
    with tempfile.TemporaryDirectory(prefix="trkx-scan-") as tmp:
        src, dst = Path(tmp) / "args.json", Path(tmp) / "result.json"
        src.write_text(json.dumps(args))
        proc = subprocess.run([sys.executable, __file__, "--child", kind, str(src), str(dst)],
                              env={**os.environ, **(env or {})})
        if proc.returncode != 0:
            raise RuntimeError(f"the {kind} process failed (exit {proc.returncode})")
        return json.loads(dst.read_text())


def scan_table(rows: list[dict]) -> str:
    stages = list(rows[0]["chain"]["stage_seconds"])
    head = ["<mu>", "hits / event", "edges / event (graph)", *[f"{s} s" for s in stages], "chain s", "CKF s",
            "chain / CKF", "chain GiB", "CKF+sim GiB", "eff GNN", "eff CKF", "fake GNN", "fake CKF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c, k = r["chain"], r["ckf"]
        graph = next(iter(c["edges_per_event"].values()))
        cells = [f"{r['mu']:g}", f"{c['hits_per_event']:,.0f}", f"{graph:,.0f}",
                 *[f"{c['stage_seconds'][s]:.3f}" for s in stages], f"{c['seconds_per_event']:.3f}",
                 f"{k['seconds_per_event']:.3f}", f"{c['seconds_per_event'] / k['seconds_per_event']:.2f}",
                 f"{c['peak_rss_gib']:.2f}", f"{k['peak_rss_gib']:.2f}",
                 f"{c['scores']['gnn']['track_efficiency']:.4f}", f"{c['scores']['ckf']['track_efficiency']:.4f}",
                 f"{c['scores']['gnn']['fake_rate']:.4f}", f"{c['scores']['ckf']['fake_rate']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scan_plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trkx.report import save_figure
    mu = [r["mu"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    ax[0].plot(mu, [r["chain"]["hits_per_event"] for r in rows], "o-", label="hits")
    ax[0].plot(mu, [next(iter(r["chain"]["edges_per_event"].values())) for r in rows], "s-", label="graph edges")
    ax[0].set_yscale("log")
    ax[0].set_title("per event", fontsize=9)
    bottom = np.zeros(len(rows))
    for stage in rows[0]["chain"]["stage_seconds"]:
        v = np.array([r["chain"]["stage_seconds"][stage] for r in rows])
        ax[1].bar(np.arange(len(rows)) - 0.2, v, 0.4, bottom=bottom, label=f"GNN chain: {stage}")
        bottom += v
    ax[1].bar(np.arange(len(rows)) + 0.2, [r["ckf"]["seconds_per_event"] for r in rows], 0.4, color="grey",
              label="ACTS seeding + CKF")
    ax[1].set_xticks(np.arange(len(rows)), [f"{m:g}" for m in mu])
    ax[1].set_ylabel("seconds per event (one thread)")
    ax[1].set_title("time per event", fontsize=9)
    for name, style in (("gnn", "o-"), ("ckf", "s--")):
        ax[2].plot(mu, [r["chain"]["scores"][name]["track_efficiency"] for r in rows], style, label=f"{name.upper()} efficiency")
        ax[2].plot(mu, [r["chain"]["scores"][name]["fake_rate"] for r in rows], style, alpha=0.5, label=f"{name.upper()} fake rate")
    ax[2].set_ylim(0, 1.02)
    ax[2].set_title("double-majority efficiency (pT > 1 GeV) and fake rate", fontsize=9)
    for a in ax:
        a.set_xlabel("<mu>")
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--mu", type=float, nargs="+", default=[0, 50, 100, 200, 300])
    ap.add_argument("--events", type=int, default=3)
    ap.add_argument("--seed", type=int, default=90210, help="simulation seed of the scan's events")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from trkx.config import config_to_dict
    from trkx.runner import Pipeline
    from trkx.storage import write_json, write_text
    pipe = Pipeline(args.pipeline, progress=False)
    data = pipe.data.config
    if data.source != "simulate" or data.simulation.generator == "gun":
        print(f"{args.pipeline}: the scan needs a collision generator (simulation.generator pythia8 or hepmc3)",
              file=sys.stderr)
        return 2
    if args.seed == data.seed:
        print(f"--seed {args.seed} is the pipeline's own: its events would be the training events", file=sys.stderr)
        return 2
    out = args.out or pipe.workdir / "pileup_scan"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for mu in args.mu:
        sim = copy.deepcopy(data.simulation)
        sim.collisions.pileup = float(mu)
        acts_dir = out / f"mu{mu:g}"
        ckf = in_child("ckf", config_to_dict(sim), args.seed, args.events, str(acts_dir), str(pipe.data.base_dir))
        chain = in_child("chain", str(pipe.path), str(acts_dir), args.events)
        rows.append({"mu": mu, "ckf": ckf, "chain": chain})
        print(f"<mu> = {mu:g}: {chain['hits_per_event']:,.0f} hits, chain {chain['seconds_per_event']:.3f} s, "
              f"CKF {ckf['seconds_per_event']:.3f} s, efficiency GNN {chain['scores']['gnn']['track_efficiency']:.4f} "
              f"CKF {chain['scores']['ckf']['track_efficiency']:.4f}", flush=True)
    write_json(out / "scan.json", {"pipeline": str(pipe.path), "events_per_mu": args.events, "seed": args.seed,
                                   "threads": 1, "rows": rows})
    write_text(out / "scan.md", f"Pile-up scan of {pipe.path.name} ({args.events} events per <mu>, one thread; "
                                f"`python benchmarks/pileup_scan.py {args.pipeline} --mu {' '.join(f'{m:g}' for m in args.mu)} "
                                f"--events {args.events}`)\n\n" + scan_table(rows))
    scan_plot(rows, out / "scan.png")
    print(scan_table(rows))
    print(f"written: {out / 'scan.md'}, {out / 'scan.png'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        kind, src, dst = sys.argv[2:5]
        from trkx.runtime import keep_freed_memory
        kept = keep_freed_memory()     # as the command line does: the same allocator for chain and CKF
        result = CHILDREN[kind](*json.loads(Path(src).read_text()))
        Path(dst).write_text(json.dumps({**result, "freed_memory_kept": kept}))
        sys.exit(0)
    sys.exit(main())
