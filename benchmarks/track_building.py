"""Track-building methods side by side on the same scored graphs.

    python benchmarks/track_building.py [configs/benchmark.yaml] [--cuts 0.3,0.5,0.7] [--split test]

Runs the pipeline up to the stage before its track builder (from the cache), then labels the
chosen split's events with every method (cc, junction, walkthrough, assignment) at every cut,
and scores each with the pipeline's own evaluation settings: double-majority efficiency, fake and
duplicate rate, TrackML score, and seconds per event.  ``--split val`` tunes on the validation
events, so the choice is not made on the test events that the documentation reports.
"""
import argparse
import dataclasses

import pandas as pd
import torch

from trkx.evaluate import track_level, truth_table
from trkx.runner import Pipeline
from trkx.stages.track_building.labeling import TrackLabeling
from trkx.storage import load_event
from trkx.timing import stopwatch

METHODS = ("cc", "junction", "walkthrough", "assignment")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", nargs="?", default="configs/benchmark.yaml")
    ap.add_argument("--cuts", default="0.3,0.5,0.7")
    ap.add_argument("--split", default="test", choices=("val", "test"))
    a = ap.parse_args()
    pipe = Pipeline(a.pipeline, progress=False)
    builder = pipe.stages[-1]
    if not isinstance(builder, TrackLabeling):
        raise SystemExit(f"{a.pipeline}: the last stage is not a labeling stage")
    outputs = pipe.run(until=pipe.stages[-3].name, write_outputs=False)
    paths = pipe.run_stage(pipe.stages[-2], outputs[-1], splits=(a.split,)).paths[a.split]
    events = [load_event(p) for p in paths]
    truth = truth_table(outputs[0].paths[a.split])
    rows = []
    for method in METHODS:
        for cut in (float(c) for c in a.cuts.split(",")):
            stage = TrackLabeling(dataclasses.replace(builder.config, method=method, cut=cut))
            frames, seconds = [], []
            for e in events:
                with torch.no_grad(), stopwatch(seconds):
                    out = stage.infer(e.clone())
                frames.append(pd.DataFrame({"event_id": int(e.event_id), "hit_id": out.hit_id.numpy(),
                                            "track_id": out.track_id.numpy()}))
            m = track_level(truth, pd.concat(frames, ignore_index=True), pipe.config.evaluation)
            rows.append((method, cut, m["track_efficiency"], m["fake_rate"], m["duplicate_rate"],
                         m["trackml_score"], sum(seconds) / len(seconds)))
    print(f"Track building on the {len(events)} {a.split} events of {a.pipeline} "
          f"({pipe.config.evaluation.matching} matching, pT > {pipe.config.evaluation.pt_min} GeV)\n")
    print("| method | cut | efficiency | fake rate | duplicate rate | TrackML score | s / event |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.4f} | {r[6]:.3f} |")


if __name__ == "__main__":
    main()
