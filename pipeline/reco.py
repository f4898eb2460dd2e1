"""``trkx reco``: a trained chain on events it has never seen (TrackML hits, with or without truth,
or ACTS measurements), one event at a time, never training.

The chain comes from a pipeline YAML (its cached weights) or from an exported bundle
(``trkx.bundle``).  Output: ``<out>/event<ID>.csv`` (TrackML submission format; or ``.parquet``,
``.root``: ``trkx.io.tracks``), ``timing.json``
and, where the input has truth, ``metrics.json``.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from trkx.chain import Chain
from trkx.cluster import map_ordered
from trkx.config import ConfigError
from trkx.errors import DataError
from trkx.evaluate import event_truth
from trkx.io import detect_format
from trkx.io.tracks import check_track_format, track_file, track_table, write_track_file
from trkx.outdir import check_output_dir, earlier_reco, finish_reco_dir, reco_files_before
from trkx.parallel import eager_worker, eval_mode
from trkx.provenance import stamped
from trkx.storage import write_json
from trkx.timing import stopwatch, summarize, timing_table


def chain_from_pipeline(path: str | Path) -> Chain:
    """The pipeline's stages with their cached trained state (nothing is trained)."""
    from trkx.runner import Pipeline
    pipe = Pipeline(path, progress=False)
    fps = pipe.load_trained()
    return Chain(pipe.data, pipe.stages, str(pipe.path), pipe.config.evaluation, fps)


def load_chain(path: str | Path, exported: bool = True) -> Chain:
    """A chain from a pipeline YAML or from a bundle directory (with its exported networks, or
    with ``exported=False`` its eager weights)."""
    path = Path(path)
    if path.is_dir():
        from trkx.bundle import load_bundle
        chain = load_bundle(path, exported=exported)
        chain.exported = exported
        return chain
    return chain_from_pipeline(path)


def input_events(directory: Path) -> tuple[list[int], callable]:
    """Event ids in ``directory`` and a reader: TrackML (``event<ID>-hits.csv``) or ACTS
    (``event<ID>-measurements.csv``), truth read where present."""
    fmt = detect_format(directory)
    return fmt.list_events(directory), lambda i: fmt.read(directory, i, require_truth=False)


def reco_event(chain: Chain, read, input_dir: Path, event_id: int, out_dir: Path, track_format: str) -> dict:
    """One event through the chain, its track file written: {"stages": seconds per step, "file",
    "truth": the event's truth table or None, "seconds": in all}."""
    where = f"{input_dir}: event {event_id}"
    stages: dict[str, float] = {}
    t: list[float] = []
    with stopwatch(t):
        tables = read(event_id)
        event = chain.source.event_graph(tables, str(input_dir))
    stages["read + build"] = t[0]
    with torch.no_grad():
        for stage in chain.stages:
            t = []
            try:
                with stopwatch(t):
                    event = stage.infer(event)
            except (ValueError, RuntimeError) as err:
                raise DataError(f"{where}: stage '{stage.name}': {err}") from None
            stages[stage.name] = t[0]
    if "track_id" not in event:
        raise ConfigError(f"{chain.origin}: the chain has no track building stage (no track_id to write)")
    path = track_file(out_dir, event_id, track_format)
    write_track_file(track_table(event, track_format), path)
    truth = event_truth(event).assign(event_id=event_id) if tables.truth is not None else None
    return {"stages": stages, "file": path.name, "truth": truth, "seconds": sum(stages.values())}


_WORKER_CHAINS: dict[tuple, tuple] = {}     # per cluster worker: (chain, reader) it has loaded


def _reco_task(origin: str, exported: bool, input_dir: str, out_dir: str, track_format: str, event_id: int) -> dict:
    """One input event as a cluster task; the worker loads the chain and finds the input's format
    once (not a directory scan per event)."""
    key = (origin, exported, input_dir)
    if key not in _WORKER_CHAINS:
        chain = load_chain(origin, exported=exported)
        eager_worker(chain.stages)
        _WORKER_CHAINS[key] = (chain, input_events(Path(input_dir))[1])
    chain, read = _WORKER_CHAINS[key]
    return reco_event(chain, read, Path(input_dir), event_id, Path(out_dir), track_format)


def reconstruct(chain: Chain, input_dir: str | Path, out_dir: str | Path, progress: bool | None = None,
                warmup: bool = False, overwrite: bool = False, track_format: str = "csv", client=None,
                throughput: dict | None = None) -> dict:
    """Run ``chain`` on every event of ``input_dir``, streaming: read, build, infer, write, forget.
    ``warmup``: run the first event once, untimed, before (torch.compile, allocator, caches).
    ``out_dir`` must be new, empty or an earlier reco output (whose files for events no longer in
    the input are removed), or ``overwrite`` is given (files are written beside what is there).
    ``track_format``: csv, parquet or root (``trkx.io.tracks``). ``client``: a dask.distributed
    Client (``trkx.cluster``): every event a task, on workers that load the chain themselves from
    its pipeline YAML or bundle (``throughput`` gets each worker's share).
    Returns {"events", "timing", "metrics" (None without truth)}."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    throughput = {} if throughput is None else throughput
    check_track_format(track_format)            # an unknown format fails before any work
    check_output_dir(out_dir, "reco output", earlier_reco, overwrite)
    before = reco_files_before(out_dir)
    ids, read = input_events(input_dir)
    show = sys.stderr.isatty() if progress is None else progress
    eval_mode(chain.stages)
    if warmup and ids:
        event = chain.source.event_graph(read(ids[0]), str(input_dir))
        with torch.no_grad():
            for stage in chain.stages:
                event = stage.infer(event)
    per_stage: dict[str, list[float]] = {"read + build": []} | {s.name: [] for s in chain.stages}
    truth_frames, with_truth, written = [], True, ["timing.json"]
    if client is None:
        results = (reco_event(chain, read, input_dir, i, out_dir, track_format) for i in ids)
    else:       # --cluster: every event a task; each worker loads the chain once
        task = partial(_reco_task, str(Path(chain.origin).resolve()), chain.exported, str(input_dir.resolve()),
                       str(out_dir.resolve()), track_format)
        results = map_ordered(client, task, [ids], throughput)
    for result in tqdm(results, total=len(ids), desc="reco", disable=not show, leave=False):
        for name, seconds in result["stages"].items():
            per_stage[name].append(seconds)
        written.append(result["file"])
        with_truth = with_truth and result["truth"] is not None
        if with_truth:
            truth_frames.append(result["truth"])
    timing = summarize(per_stage)
    write_json(out_dir / "timing.json", stamped({"unit": "seconds per event", "threads": torch.get_num_threads(),
                                                 "chain": chain.origin, "stages": timing},
                                                chain.origin, chain.fingerprints))
    metrics = None
    if with_truth and chain.evaluation is not None:
        from trkx.evaluate import finite_json, read_tracks, track_level
        truth = pd.concat(truth_frames, ignore_index=True)
        metrics = track_level(truth, read_tracks(out_dir, ids), chain.evaluation, [chain.source] + chain.stages)
        write_json(out_dir / "metrics.json", finite_json(stamped(metrics, chain.origin, chain.fingerprints)))
        written.append("metrics.json")
    finish_reco_dir(out_dir, written, before)
    return {"events": len(ids), "timing": timing, "metrics": metrics, "table": timing_table(timing)}
