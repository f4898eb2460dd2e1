"""The allocator setting (``trkx.runtime``) off and on, side by side: the trained chain of a
pipeline on the same ACTS events (a pile-up scan's directory, with its CKF tracks), each setting in
its own process, one thread, stage by stage after one untimed warm-up event.

    python benchmarks/allocator.py configs/trackml.yaml runs/trackml/pileup_scan/mu200 --events 2

Prints a markdown table (seconds per event per stage, the chain, peak RSS; the tracks' efficiency
must agree between the rows) and writes it with the figures to ``<acts_dir>/allocator.{md,json}``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pileup_scan import in_child

SETTINGS = {"glibc defaults": "system", "trkx (freed memory kept)": ""}


def table(rows: dict[str, dict]) -> str:
    stages = list(next(iter(rows.values()))["stage_seconds"])
    lines = ["| allocator | " + " | ".join(f"{s} s" for s in stages) + " | chain s | peak RSS GiB | efficiency |",
             "|---" * (len(stages) + 4) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['stage_seconds'][s]:.3f}" for s in stages)
                     + f" | {r['seconds_per_event']:.3f} | {r['peak_rss_gib']:.2f}"
                     f" | {r['scores']['gnn']['track_efficiency']:.4f} |")
    base, kept = (rows[k]["seconds_per_event"] for k in SETTINGS)
    return "\n".join(lines) + f"\n\nchain time with freed memory kept / glibc defaults: {kept / base:.2f}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("acts_dir", type=Path, help="ACTS events with ckf/ tracks (a pile-up scan's mu<N> directory)")
    ap.add_argument("--events", type=int, default=2)
    args = ap.parse_args(argv)
    if not (args.acts_dir / "ckf").is_dir():
        print(f"{args.acts_dir}: no ckf/ directory (run benchmarks/pileup_scan.py first)", file=sys.stderr)
        return 2
    rows = {name: in_child("chain", args.pipeline, str(args.acts_dir), args.events, env={"TRKX_ALLOCATOR": value})
            for name, value in SETTINGS.items()}
    text = (f"`python benchmarks/allocator.py {args.pipeline} {args.acts_dir} --events {args.events}`\n\n"
            + table(rows))
    from trkx.storage import write_json, write_text
    write_json(args.acts_dir / "allocator.json", rows)
    write_text(args.acts_dir / "allocator.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
