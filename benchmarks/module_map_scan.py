"""Module-map settings scored on the validation events, never the test events: the map is built
from the pipeline's training events with every setting of a grid, then its graph of each
validation event is measured: module pairs, target edge efficiency (consecutive hits of particles
above the evaluation's ``pt_min`` with at least ``min_hits`` hits), edges and seconds per event.

    python benchmarks/module_map_scan.py configs/trackml.yaml --set margin 0.2 0.3 --set triplets.quantile 0.001 0.005

Each ``--set KEY VALUES...`` is one axis (values parsed as YAML; a dotted key reaches into a
section).  Prints a markdown table and writes it, with the figures as JSON, to
``<workdir>/module_map_scan/``.  One thread."""
from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time

import torch
import yaml

from trkx.config import ConfigError, config_to_dict, parse_config
from trkx.metrics.edges import edge_counts
from trkx.runner import Pipeline
from trkx.storage import load_event, write_json, write_text


def with_setting(config_dict: dict, setting: dict) -> dict:
    """A copy of a config dict with the (dotted) keys of ``setting`` replaced."""
    out = copy.deepcopy(config_dict)
    for key, value in setting.items():
        *sections, last = key.split(".")
        node = out
        for s in sections:
            node = node.setdefault(s, {})
        node[last] = value
    return out


def score_setting(stage, setting: dict, train: list, val: list, eval_cfg) -> dict:
    """Build the map with ``setting`` from ``train``; its figures on ``val``."""
    trial = copy.copy(stage)
    trial.config = parse_config(type(stage.config), with_setting(config_to_dict(stage.config), setting),
                                f"--set {setting}")
    trial.fit(train, [])
    found = total = edges = seconds = 0.0
    for event in val:
        t0 = time.perf_counter()
        graph = trial.infer(event.clone())
        seconds += time.perf_counter() - t0
        c = edge_counts(graph, None, eval_cfg.pt_min, eval_cfg.min_hits)
        found, total, edges = found + c["target_found"], total + c["target_truth"], edges + graph.edge_index.shape[1]
    return {"setting": setting, "module_pairs": int(len(trial.map["modules"])),
            "target_edge_efficiency": found / total if total else float("nan"),
            "edges_per_event": edges / len(val), "seconds_per_event": seconds / len(val)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--set", nargs="+", action="append", metavar=("KEY", "VALUE"), required=True,
                    help="a (dotted) key of the module map's config and the values to try")
    a = ap.parse_args(argv)
    axes = {s[0]: [yaml.safe_load(v) for v in s[1:]] for s in a.set}
    pipe = Pipeline(a.pipeline, progress=False)
    stage = next((s for s in pipe.stages if s.kind == "module_map"), None)
    if stage is None:
        print(f"{a.pipeline}: the pipeline has no module_map stage", file=sys.stderr)
        return 2
    out = pipe.run_data()
    if not out.paths["val"]:
        raise ConfigError(f"{pipe.path}: no validation events (n_val is 0)")
    train = [load_event(p) for p in out.paths["train"]]
    val = [load_event(p) for p in out.paths["val"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _scan(pipe, stage, axes, train, val)
    finally:
        torch.set_num_threads(threads)     # a caller in the same process keeps its threads


def _scan(pipe, stage, axes: dict, train: list, val: list) -> int:
    ev = pipe.config.evaluation
    head = (f"{len(val)} validation events, map from {len(train)} training events; targets pT > {ev.pt_min} GeV, "
            f">= {ev.min_hits} hits; * = the YAML's setting")
    print(head + "\n", flush=True)
    lines = ["| " + " | ".join(axes) + " | module pairs | target edge efficiency | edges / event | s / event |",
             "|" + "---|" * (len(axes) + 4)]
    print("\n".join(lines), flush=True)
    own = config_to_dict(stage.config)
    rows = []
    for values in itertools.product(*axes.values()):
        setting = dict(zip(axes, values))
        row = score_setting(stage, setting, train, val, ev)
        rows.append(row)
        mark = " *" if with_setting(own, setting) == own else ""
        line = ("| " + " | ".join(str(v) for v in values) + f"{mark} | {row['module_pairs']:,} | "
                f"{row['target_edge_efficiency']:.4f} | {row['edges_per_event']:,.0f} | {row['seconds_per_event']:.2f} |")
        lines.append(line)
        print(line, flush=True)
    folder = pipe.workdir / "module_map_scan"
    write_text(folder / "scan.md", head + "\n\n" + "\n".join(lines) + "\n")
    write_json(folder / "scan.json", {"validation_events": len(val), "training_events": len(train), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
