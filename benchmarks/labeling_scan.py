"""Track building tuned on the validation events, never the test events: the pipeline's chain up to
its last stage (the track builder) runs on the validation events, then the track builder runs with
every setting of a grid; double-majority efficiency, fake and duplicate rate per setting.

    python benchmarks/labeling_scan.py configs/trackml.yaml --set cut 0.3 0.5 0.7 --set min_hits 5 7 9

Each ``--set KEY VALUES...`` is one axis of the grid (values parsed as YAML: numbers, strings);
the track builder's YAML setting is marked.  Prints a markdown table and writes it, with the
figures as JSON, to ``<workdir>/labeling_scan/``."""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json

import pandas as pd
import yaml

from trkx.config import ConfigError, config_to_dict, parse_config
from trkx.evaluate import event_truth, track_level
from trkx.runner import Pipeline, bind_track_builders
from trkx.storage import load_event, write_json, write_text


def validation_events(pipe: Pipeline) -> list:
    """The validation events after every stage but the last (computed or from the cache)."""
    out = pipe.run_data()
    chain = pipe.stages[:-1]
    for i, stage in enumerate(chain):
        # the training events too where a later stage trains on them (not cached yet: trained now)
        later_trains = any(s.trainable for s in chain[i + 1:])
        out = pipe.run_stage(stage, out, splits=("train", "val") if later_trains else ("val",))
    if not out.paths["val"]:
        raise ConfigError(f"{pipe.path}: no validation events (n_val is 0)")
    return [load_event(p) for p in out.paths["val"]]


def score_setting(pipe: Pipeline, builder, events: list, setting: dict) -> dict:
    """Track-level figures of the track builder with ``setting`` on ``events``."""
    stage = copy.copy(builder)
    stage.config = parse_config(type(builder.config), {**config_to_dict(builder.config), **setting},
                                f"--set {setting}")
    truth, tracks = [], []
    for event in events:
        labelled = stage.infer(event.clone())
        truth.append(event_truth(labelled))
        tracks.append(pd.DataFrame({"event_id": int(labelled.event_id), "hit_id": labelled.hit_id.numpy(),
                                    "track_id": labelled.track_id.numpy()}))
    m = track_level(pd.concat(truth, ignore_index=True), pd.concat(tracks, ignore_index=True), pipe.config.evaluation)
    return {"setting": setting, "efficiency": m["track_efficiency"], "fake_rate": m["fake_rate"],
            "duplicate_rate": m["duplicate_rate"], "field_cut": m.get("field_cut", {}).get("efficiency")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--set", nargs="+", action="append", metavar=("KEY", "VALUE"), required=True,
                    help="a key of the track builder's config and the values to try")
    a = ap.parse_args(argv)
    axes = {s[0]: [yaml.safe_load(v) for v in s[1:]] for s in a.set}
    pipe = Pipeline(a.pipeline, progress=False)
    bind_track_builders(pipe.stages)
    builder = pipe.stages[-1]
    for key in axes:
        if key not in {f.name for f in dataclasses.fields(builder.config)}:
            raise SystemExit(f"--set: '{key}' is not a key of stage '{builder.name}'")
    if builder.trainable:
        # a trained builder (TrackNET, say): only the keys its inference reads, on its trained state
        fixed = [k for k in axes if k not in getattr(builder.config, "inference_only", ())]
        if fixed:
            raise SystemExit(f"--set: '{fixed[0]}' is a training key of stage '{builder.name}'; "
                             f"a scan varies inference keys only")
    events = validation_events(pipe)
    if builder.trainable:
        pipe.load_trained()
    rows = [score_setting(pipe, builder, events, dict(zip(axes, values))) for values in itertools.product(*axes.values())]
    current = {k: getattr(builder.config, k) for k in axes}
    lines = [f"{len(events)} validation events, stage '{builder.name}' ({builder.kind}); * = its YAML setting", "",
             "| " + " | ".join(axes) + " | efficiency | fake rate | duplicate rate |",
             "|" + "---|" * (len(axes) + 3)]
    for r in rows:
        mark = " *" if r["setting"] == current else ""
        lines.append("| " + " | ".join(str(v) for v in r["setting"].values()) +
                     f"{mark} | {r['efficiency']:.4f} | {r['fake_rate']:.4f} | {r['duplicate_rate']:.4f} |")
    text = "\n".join(lines)
    print(text)
    out = pipe.workdir / "labeling_scan"
    write_text(out / "scan.md", text + "\n")
    write_json(out / "scan.json", {"pipeline": str(pipe.path), "validation_events": len(events), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
