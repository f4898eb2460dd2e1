"""Pipeline runner: data -> every stage in order -> tracks, with a per-event on-disk cache and timing.

Cache layout, the data source included: ``<cachedir>/<stage>/<fingerprint>/{train,val,test}/event<ID>.pt``
where the fingerprint hashes the stage config, the upstream fingerprint, the trained weights and
whatever else the stage read (``Stage.input_digest``: a source's input files).  Every file is
written to a temporary name and renamed, so a killed run leaves no half entry and resumes.
"""
from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from trkx.cluster import map_ordered, open_cluster, throughput_line
from trkx.codehash import code_digest
from trkx.config import ConfigError, config_to_dict, load_yaml, parse_config
from trkx.fingerprint import fingerprint, weights_digest
from trkx.io.tracks import check_track_format, track_file, track_table, write_track_file
from trkx.parallel import eager_worker, infer_one, infer_parallel, warm_up
from trkx.provenance import git_state, stamped
from trkx.stage import SPLITS, DataSource, EventSet, Stage, TrackBuilder, load_stage
from trkx.storage import (CorruptEntryError, UnsafeFileError, clean_stale_temps, entry_lock, load_event, read_json,
                          safe_load, save_event, write_json)
from trkx.timing import summarize, timing_table


@dataclass
class EvalConfig:
    """Track-level evaluation: target particles and matching style."""
    matching: Literal["atlas", "one_way", "two_way", "perfect", "lhc"] = "two_way"
    matching_fraction: float = 0.5
    pt_min: float = 1.0       # GeV, target particles
    min_hits: int = 3
    eta_max: float = 4.0
    min_track_hits: int = 3   # shorter reconstructed tracks are not counted as candidates


@dataclass
class PipelineConfig:
    workdir: str                        # outputs: tracks/, metrics.json, timing.json, report.md
    data: str
    cachedir: str | None = None         # stage cache (default: the workdir); pipelines may share one
    stages: list[str] = field(default_factory=list)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    evaluation: EvalConfig = field(default_factory=EvalConfig)


STARTUP_JSON = "startup.time.json"    # in a stage's entry: the warm-up seconds of the run that computed it
ROLE_WORDS = {"data": "data source", "embedding": "embedding", "graph_construction": "graph construction",
              "edge_classification": "edge classification", "track_building": "track building"}


def check_chain(stages: list[Stage], paths: list[Path], where: str) -> None:
    """The order of a chain, checked before anything runs: the data source first and only there,
    every stage after the roles it ``requires`` (graph construction before an edge classifier, an
    edge classifier before a track builder that reads scores), at most one track builder and
    nothing after it.  One ConfigError naming the pipeline file and the misplaced stage."""
    seen: set[str] = set()
    for i, (stage, path) in enumerate(zip(stages, paths)):
        role = stage.role
        label = f"stage '{stage.name}' ({ROLE_WORDS.get(role, role or 'no role')}, {path.name})"
        if (role == "data") != (i == 0):
            raise ConfigError(f"{where}: {label}: " + ("a data source belongs under 'data:', not in 'stages:'"
                                                      if role == "data" else "'data:' must name a data source"))
        if "track_building" in seen:
            raise ConfigError(f"{where}: {label} comes after the track builder; track building must be last")
        for need in stage.requires():
            if need not in seen:
                article = "an" if ROLE_WORDS[need][0] in "aeiou" else "a"
                raise ConfigError(f"{where}: {label} needs {article} {ROLE_WORDS[need]} stage before it")
        seen.add(role)


def bind_track_builders(stages: list[Stage]) -> None:
    """Each track builder reads the score of the last edge classifier before it (unless its
    config names a field)."""
    last = None
    for stage in stages:
        if stage.role == "edge_classification":
            last = stage
        elif isinstance(stage, TrackBuilder) and last is not None:
            stage.bind_score(last)


def usable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint that loads (a training killed while writing it leaves a
    truncated file: then training starts over).  It is read with ``weights_only``: one that holds
    Python objects a checkpoint never holds is an UnsafeFileError (one line, exit 2), not run."""
    if not path.is_file():
        return False
    try:
        safe_load(path, "checkpoint")
    except UnsafeFileError:
        raise
    except CorruptEntryError as err:  # truncated or foreign file
        print(f"{err}; training starts over", file=sys.stderr)
        return False
    return True


def secondary_rank() -> bool:
    """Whether this process is a distributed training's rank other than the first (started by
    Lightning, torchrun or SLURM, which set these variables)."""
    return any(os.environ.get(var, "0") not in ("", "0") for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available")
    return choice


def training_config(cfg) -> dict:
    """The config fields that training reads: all but the ones the config class lists in
    ``inference_only`` (for example torch.compile at inference) or ``log_only`` (where the logs
    go), in nested sections too, so they do not retrain."""
    d = config_to_dict(cfg)
    _drop_untrained(cfg, d)
    return d


def _drop_untrained(cfg, d: dict) -> None:
    for klass in type(cfg).__mro__:          # a config class adds its keys to its bases' ones
        for key in vars(klass).get("inference_only", ()) + vars(klass).get("log_only", ()):
            d.pop(key, None)
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if dataclasses.is_dataclass(section) and isinstance(d.get(f.name), dict):
            _drop_untrained(section, d[f.name])
            default = type(section)()
            if f.metadata.get("omit_default") and d[f.name] == training_config(default):
                del d[f.name]        # only untrained keys differ: as if the section were absent


def cached_seconds(path: Path) -> float | None:
    """The inference seconds an event's ``.time.json`` holds (written after the event, so it marks
    the entry complete); None when it is missing or damaged: the event is computed again."""
    try:
        seconds = read_json(path, "timing file")["seconds"]
    except (FileNotFoundError, CorruptEntryError, KeyError, TypeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def read_index(path: Path) -> dict[str, list[int]] | None:
    """A data entry's ``index.json`` (event ids per split, written last); None when damaged, and
    the entry is made again."""
    try:
        index = read_json(path, "event index")
        ok = isinstance(index, dict) and all(isinstance(index.get(s), list) and
                                              all(isinstance(i, int) for i in index[s]) for s in SPLITS)
        problem = None if ok else f"{path}: damaged event index (not the event ids of {', '.join(SPLITS)})"
    except CorruptEntryError as err:
        problem = str(err)
    if problem is not None:
        print(f"{problem}; the events are made again", file=sys.stderr)
        return None
    return index


def stage_code(stage: Stage) -> dict:
    """The code ``stage`` runs, for its fingerprints: a digest of its module and every trkx module
    that module imports (``trkx.codehash``)."""
    return {"code": code_digest(type(stage).__module__)}


def entry_fingerprint(stage: Stage, upstream_fp: str | None, weights: Path | None, code: bool = True) -> str:
    """The cache key of ``stage``'s events: kind and config, the upstream fingerprint, the trained
    weights (by tensor content), what else it read (``input_digest``) and, with ``code``, the code
    it runs.  Without ``code`` it is the content fingerprint a bundle checks (a bundle must load
    in a later trkx)."""
    parts = [stage.kind, stage.resolved_config()] + ([stage_code(stage)] if code else [])
    if upstream_fp is not None:
        parts.append(upstream_fp)
    if weights is not None:
        parts.append(weights_digest(weights))
    extra = stage.input_digest()
    if extra is not None:
        parts.append(extra)
    return fingerprint(*parts)


def fingerprints(outputs: list["StageOutput"]) -> dict[str, str]:
    """Each stage's fingerprint in a run, by stage name (for provenance blocks)."""
    return {o.name: o.fingerprint for o in outputs}


@dataclass
class StageOutput:
    name: str
    fingerprint: str
    paths: dict[str, list[Path]]
    computed: int = 0
    cached: int = 0
    seconds: dict[str, float] = field(default_factory=dict)   # test-event id -> inference seconds
    startup: float | None = None    # seconds of the stage's warm-up (a compile) before its events were timed


class Pipeline:
    """A pipeline YAML, its data stage and its stages, validated up front."""

    def __init__(self, path: str | Path, progress: bool | None = None, workers: int = 1,
                 track_format: str = "csv"):
        self.path = Path(path)
        git_state()     # read now: a commit made while the run works is not the code it runs
        self.track_format = check_track_format(track_format)
        self.client = None          # a dask.distributed Client (--cluster): events run as its tasks
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = workers      # processes for per-event inference (and simulation threads)
        raw = load_yaml(self.path)
        self.config = parse_config(PipelineConfig, raw, str(self.path))
        base = self.path.parent
        self.workdir = self._resolve(self.config.workdir, base)
        self.cachedir = self._resolve(self.config.cachedir, base) if self.config.cachedir else self.workdir
        for key, path in (("workdir", self.workdir), ("cachedir", self.cachedir)):
            if path.exists() and not path.is_dir():
                raise ConfigError(f"{self.path}: key '{key}': {path} is a file, not a directory")
        self.device = resolve_device(self.config.device)
        # progress bars only where someone watches (a terminal), unless asked for explicitly
        self.progress = (self.config.progress and sys.stderr.isatty()) if progress is None else progress

        self.data_path = self._resolve(self.config.data, base)
        self.data: DataSource = load_stage(self.data_path, device=self.device, seed=self.config.seed,
                                           default_kind="data")
        self.stage_paths = [self._resolve(p, base) for p in self.config.stages]
        self.stages: list[Stage] = [load_stage(p, device=self.device, seed=self.config.seed + i + 1)
                                    for i, p in enumerate(self.stage_paths)]
        for s in [self.data] + self.stages:
            s.progress = self.progress
        self.data.workers = workers
        check_chain([self.data] + self.stages, [self.data_path] + self.stage_paths, str(self.path))
        names = [s.name for s in [self.data] + self.stages]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"{self.path}: stage name {sorted(dup)[0]!r} used twice; set 'name:' in its YAML")
        bind_track_builders(self.stages)

    @staticmethod
    def _resolve(p: str, base: Path) -> Path:
        path = Path(p)
        return path if path.is_absolute() else base / path

    def stage_names(self) -> list[str]:
        return [self.data.name] + [s.name for s in self.stages]

    # ---------------------------------------------------------------- stages
    def weights_path(self, stage: Stage, upstream_fp: str) -> Path:
        """Where ``stage``'s trained state lives: keyed by the config fields training reads, the
        upstream fingerprint, the seed, the code that trains and runs it (the stage's module and
        the trkx modules it imports: models, losses, training, ...) and the weights file layout."""
        train_fp = fingerprint(stage.kind, training_config(stage.config), upstream_fp, stage.seed,
                               stage.weights_format, stage_code(stage))
        return self.cachedir / stage.name / f"weights-{train_fp}" / "model.pt"

    def _load_weights(self, stage: Stage, weights: Path) -> None:
        try:
            stage.load(weights)
        except CorruptEntryError:
            raise
        except Exception as err:  # foreign format, shape mismatch
            raise CorruptEntryError(f"{weights}: cannot load weights ({type(err).__name__}: {err}); "
                                    f"delete it or run with --force {stage.name}") from None

    def train_stage(self, stage: Stage, upstream: StageOutput, force: bool = False, resume: bool | None = None) -> Path:
        """Train (or reuse) a trainable stage's weights; returns the weights path.  A Lightning
        stage logs to ``<workdir>/<stage>/logs`` and checkpoints next to its weights; an
        interrupted training resumes from ``last.ckpt`` (``resume``; by default unless ``force``)."""
        weights = self.weights_path(stage, upstream.fingerprint)
        if weights.exists() and not force:
            self._load_weights(stage, weights)
            return weights
        # one trainer per weights entry: a concurrent run waits here, then reads the result (the
        # other ranks of a DDP training re-run the command and train beside rank 0, unlocked)
        lock = nullcontext() if secondary_rank() else entry_lock(weights.parent, f"{stage.name} (training)")
        with lock:
            if weights.exists() and not force:
                self._load_weights(stage, weights)
                return weights
            return self._train_locked(stage, upstream, weights, force, resume)

    def _train_locked(self, stage: Stage, upstream: StageOutput, weights: Path, force: bool,
                      resume: bool | None) -> Path:
        clean_stale_temps(weights.parent)
        if hasattr(stage, "checkpoint_dir"):
            stage.log_dir = self.workdir / stage.name / "logs"
            stage.checkpoint_dir = weights.parent / "checkpoints"
            stage.tracking_dir = self.workdir
            wanted = not force if resume is None else resume
            stage.resume = wanted and usable_checkpoint(stage.checkpoint_dir / "last.ckpt")
            if not stage.resume:
                shutil.rmtree(stage.checkpoint_dir, ignore_errors=True)
        seed_everything(stage.seed)
        train, val = EventSet(upstream.paths["train"]), EventSet(upstream.paths["val"])
        if len(train) == 0:
            raise ConfigError(f"{stage.name}: no training events (n_train is 0 in the data config)")
        self.note(f"{stage.name}: training on {len(train)} events ...")
        t0 = time.perf_counter()
        report = stage.fit(train, val) or {}
        stage.save(weights)
        seconds = time.perf_counter() - t0
        self.note(f"{stage.name}: trained in {seconds:.1f} s")
        report["train_seconds"] = round(seconds, 1)     # this process's share when it resumed a training
        train_json = stamped(report, self.path, {"upstream": upstream.fingerprint, stage.name: weights.parent.name})
        write_json(weights.parent / "train.json", train_json)
        if hasattr(stage, "finish_tracking"):
            stage.finish_tracking([weights, weights.parent / "train.json"], train_json["provenance"])
        return weights

    def stage_fingerprint(self, stage: Stage, upstream: StageOutput | None, force: bool = False) -> str:
        """The cache key of ``stage``'s events: its kind and config, the upstream fingerprint, its
        weights (trained here if not cached) and what else it read (``input_digest``)."""
        if stage.trainable:
            weights = self.train_stage(stage, upstream, force)
            stage.weights_dir = weights.parent       # where a stage keeps what it derives from them
        return entry_fingerprint(stage, upstream.fingerprint if upstream else None,
                                 weights if stage.trainable else None)

    def load_trained(self) -> dict[str, str]:
        """Load every trained stage's state from the cache, training and running nothing; returns
        each stage's fingerprint.  A stage without trained weights is a ConfigError naming it."""
        fps = {self.data.name: entry_fingerprint(self.data, None, None)}
        up = fps[self.data.name]
        for stage in self.stages:
            weights = None
            if stage.trainable:
                weights = self.weights_path(stage, up)
                if not weights.exists():
                    raise ConfigError(f"{self.path}: stage '{stage.name}' is not trained; run `trkx run {self.path}` "
                                      f"or `trkx train {stage.source} -p {self.path}` first")
                self._load_weights(stage, weights)
                stage.weights_dir = weights.parent
            up = fps[stage.name] = entry_fingerprint(stage, up, weights)
        return fps

    def run_data(self, force: bool = False) -> StageOutput:
        """The data source's events (from the cache, or produced now)."""
        return self.run_stage(self.data, None, force=force)

    def run_stage(self, stage: Stage, upstream: StageOutput | None, force: bool = False,
                  splits: tuple[str, ...] = SPLITS) -> StageOutput:
        """Train (if needed) and run ``stage`` on the events of ``splits``; a data source
        (``upstream`` None) produces every split's events."""
        fp = self.stage_fingerprint(stage, upstream, force)
        root = self.cachedir / stage.name / fp
        # one writer per entry: a concurrent run waits, then finds the events written
        with entry_lock(root, f"{stage.name} ({fp})"):
            clean_stale_temps(root)
            return self._run_locked(stage, upstream, fp, root, force, splits)

    def _run_locked(self, stage: Stage, upstream: StageOutput | None, fp: str, root: Path, force: bool,
                    splits: tuple[str, ...]) -> StageOutput:
        out = StageOutput(stage.name, fp, {s: [] for s in SPLITS})
        if upstream is None:
            t0 = time.perf_counter()
            self._produce(stage, root, out, force)
            self.note(f"{stage.name}: {out.computed} events made, {out.cached} cached ({time.perf_counter() - t0:.1f} s)")
            return out
        todo = [(s, p) for s in splits for p in upstream.paths[s]]
        t0 = time.perf_counter()
        bar = tqdm(total=len(todo), desc=stage.name, disable=not self.progress, leave=False)
        if hasattr(stage, "model"):
            stage.model.eval()
        jobs = []
        for split, src in todo:
            dst = root / split / src.name
            out.paths[split].append(dst)
            tfile = dst.with_suffix(".time.json")
            seconds = cached_seconds(tfile) if dst.exists() and not force else None
            if seconds is not None:
                out.cached += 1
                if split == "test":
                    out.seconds[src.stem] = seconds
                bar.update(1)
            else:
                jobs.append((split, src, dst))
        workers = self.workers if self.device == "cpu" else 1   # forked workers cannot share a CUDA context
        throughput: dict = {}
        startup = root / STARTUP_JSON
        if jobs:        # the warm-up of the process that computes the events (none for workers)
            startup.unlink(missing_ok=True)
        if self.client is not None and jobs:       # --cluster: every event a Dask task
            weights = self.weights_path(stage, upstream.fingerprint) if stage.trainable else None
            task = partial(cluster_infer_task, str(self.path.resolve()), self.stages.index(stage),
                           str(weights) if weights else None, self.device)
            times = map_ordered(self.client, task, [[str(src) for _, src, _ in jobs], [str(dst) for *_, dst in jobs]],
                                throughput)
        elif workers > 1 and len(jobs) > 1:
            times = infer_parallel(stage, [(src, dst) for _, src, dst in jobs], workers, torch.device(self.device))
        else:
            if jobs and hasattr(stage, "warm_up"):   # a compile is timed apart, not as the first event's time
                write_json(startup, {"seconds": warm_up(stage, jobs[0][1], torch.device(self.device))})
            times = (infer_one(stage, src, dst, torch.device(self.device)) for _, src, dst in jobs)
        for (split, src, _), seconds in zip(jobs, times):
            out.computed += 1
            if split == "test":
                out.seconds[src.stem] = seconds
            bar.update(1)
        bar.close()
        out.startup = cached_seconds(startup)
        self.note(f"{stage.name}: {out.computed} events computed, {out.cached} cached "
                  f"({time.perf_counter() - t0:.1f} s)")
        if throughput:
            print(throughput_line(stage.name, throughput), file=sys.stderr, flush=True)
        return out

    def _produce(self, source: DataSource, root: Path, out: StageOutput, force: bool) -> None:
        """A data source's events into ``root/<split>/event<ID>.pt``; ``index.json`` (the event
        ids per split) is written last and marks the entry complete."""
        index_path = root / "index.json"
        index = read_index(index_path) if index_path.exists() and not force else None
        if index is not None:
            paths = {s: [root / s / f"event{i}.pt" for i in index[s]] for s in SPLITS}
            if all(p.exists() for ps in paths.values() for p in ps):
                out.paths, out.cached = paths, sum(map(len, paths.values()))
                return
        index: dict[str, list[int]] = {s: [] for s in SPLITS}
        bar = tqdm(total=sum(source.split_sizes().values()), desc=source.name, disable=not self.progress,
                   leave=False)
        for split, event_id, event in source.events(root, self.progress):
            dst = root / split / f"event{event_id}.pt"
            save_event(event, dst)
            index[split].append(event_id)
            out.paths[split].append(dst)
            out.computed += 1
            bar.update(1)
        bar.close()
        write_json(index_path, index)

    def note(self, line: str) -> None:
        """Progress where no bar is drawn (a pipe, a batch job's log): one line per stage step."""
        if not self.progress:
            print(line, file=sys.stderr, flush=True)

    def stage_for(self, stage_yaml: Path) -> Stage:
        """The stage of this pipeline whose YAML is ``stage_yaml``."""
        target = Path(stage_yaml).resolve()
        for stage, path in zip(self.stages, self.stage_paths):
            if path.resolve() == target:
                return stage
        raise ConfigError(f"{stage_yaml}: not one of the stages of {self.path} "
                          f"({', '.join(str(p) for p in self.stage_paths)})")

    def upstream_of(self, stage: Stage) -> StageOutput:
        """Output of the stage before ``stage`` (computing or loading everything up to it)."""
        out = self.run_data()
        for s in self.stages:
            if s is stage:
                break
            out = self.run_stage(s, out)
        return out

    def run(self, force: list[str] | tuple[str, ...] = (), until: str | None = None,
            write_outputs: bool = True) -> list[StageOutput]:
        """Run data and every stage (up to ``until``); ``force`` names stages to recompute with
        everything after them ('all' forces every stage)."""
        force = set(force)
        unknown = force - set(self.stage_names()) - {"all"}
        if unknown:
            raise ConfigError(f"--force: unknown stage {sorted(unknown)[0]!r} "
                              f"(stages: {', '.join(self.stage_names())})")
        seed_everything(self.config.seed)
        self.data.client = self.client      # --cluster: the simulation's events are tasks too
        forcing = "all" in force or self.data.name in force
        outputs = [self.run_data(force=forcing)]
        for i, stage in enumerate(self.stages):
            forcing = forcing or stage.name in force
            # training and validation events are only needed where a later stage trains on them
            later_trains = any(s.trainable for s in self.stages[i + 1:])
            splits = SPLITS if later_trains else ("test",)
            outputs.append(self.run_stage(stage, outputs[-1], force=forcing, splits=splits))
            if stage.name == until:
                break
        if write_outputs:
            self.write_timing(outputs)
            self.write_tracks(outputs[-1])
        return outputs

    # ---------------------------------------------------------------- outputs
    def write_timing(self, outputs: list[StageOutput]) -> dict:
        per_stage = {o.name: [o.seconds[k] for k in sorted(o.seconds)] for o in outputs[1:]}
        summary = summarize(per_stage)
        write_json(self.workdir / "timing.json", stamped({"unit": "seconds per test event", "device": self.device,
                                                          "stages": summary, "order": list(summary),
                                                          "per_event": {o.name: o.seconds for o in outputs[1:]},
                                                          "startup": {o.name: o.startup for o in outputs[1:]
                                                                      if o.startup is not None}},
                                                         self.path, fingerprints(outputs)))
        return summary

    def write_tracks(self, final: StageOutput) -> list[Path]:
        """``tracks/event<ID>.<format>`` (``trkx.io.tracks``) for every test event, if the chain
        labels hits."""
        written = []
        for src in final.paths["test"]:
            event = load_event(src)
            if "track_id" not in event:
                return written
            path = track_file(self.workdir / "tracks", src.stem.removeprefix("event"), self.track_format)
            write_track_file(track_table(event, self.track_format), path)
            written.append(path)
        # track files of events no longer in the test split (a lowered n_test), or in another
        # format, would join a submission
        for old in (self.workdir / "tracks").glob("event*"):
            if old not in written:
                old.unlink(missing_ok=True)
        return written

    def timing_report(self) -> str:
        data = read_json(self.workdir / "timing.json", "timing file")
        table = timing_table({k: data["stages"][k] for k in data["order"]})
        startup = {k: v for k, v in data.get("startup", {}).items() if v >= 0.05}
        if startup:
            table += "\nwarm-up before the timed events (a compile, once in the process that computed them): " + \
                ", ".join(f"{k} {v:.1f} s" for k, v in startup.items())
        return table


_WORKER_STAGES: dict[tuple, Stage] = {}     # per cluster worker process: the stages it has loaded


def worker_stage(pipeline: str, index: int, weights: str | None) -> Stage:
    """On a cluster worker: the pipeline's stage ``index`` with its trained state from the cache,
    loaded once per process (eager: no compile wait per worker, as ``--workers``)."""
    key = (pipeline, index, weights)
    if key not in _WORKER_STAGES:
        pipe = Pipeline(pipeline, progress=False)
        stage = pipe.stages[index]
        if weights is not None:
            pipe._load_weights(stage, Path(weights))
            stage.weights_dir = Path(weights).parent
        eager_worker([stage])
        _WORKER_STAGES[key] = stage
    return _WORKER_STAGES[key]


def cluster_infer_task(pipeline: str, index: int, weights: str | None, device: str, src: str, dst: str) -> float:
    """One event of one stage as a cluster task (``trkx.cluster.map_ordered``); returns its seconds."""
    return infer_one(worker_stage(pipeline, index, weights), Path(src), Path(dst), torch.device(device))


def run_pipeline(path: str | Path, force=(), progress: bool | None = None, workers: int = 1,
                 track_format: str = "csv", cluster: str | None = None) -> tuple[Pipeline, list[StageOutput], float]:
    """Run the pipeline at ``path``: in this process, on ``workers`` forked ones, or with
    ``cluster`` (``local:N`` or a Dask scheduler's address: ``trkx.cluster``) one task per event."""
    pipe = Pipeline(path, progress=progress, workers=workers, track_format=track_format)
    t0 = time.perf_counter()
    with open_cluster(cluster, note=lambda line: print(line, file=sys.stderr, flush=True)) as client:
        pipe.client = client
        try:
            outputs = pipe.run(force=force)
        finally:
            pipe.client = None
    return pipe, outputs, time.perf_counter() - t0
