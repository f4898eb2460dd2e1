"""Hyperparameter search for one learned stage with Optuna (``trkx tune``).

The search space is a YAML file::

    objective: val_f1          # a metric the stage validates each epoch (default: its checkpoint monitor)
    direction: maximize        # or minimize (default: the monitor's)
    epochs: 6                  # epochs per trial (default: the stage's)
    space:
      hidden: {choices: [32, 64, 128]}
      lr: {low: 0.0005, high: 0.01, log: true}
      n_iterations: {low: 3, high: 8}      # integers when both bounds are

Each trial trains the stage from its YAML with the sampled keys on the pipeline's training events,
reports the objective after every validation (bad trials are pruned by Optuna's median rule) and
scores the trial by the objective's best epoch.  The study lives in ``<workdir>/tune/<stage>/
study.db`` (a rerun adds trials); the best config is written as ``best.yaml``, a table
``study.md`` and a plot ``study.png`` (objective against trial) beside it, and the trials with their
provenance in ``study.json``."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import yaml

from trkx.config import ConfigError, config_to_dict, load_yaml, parse_config
from trkx.provenance import provenance, stamped
from trkx.runner import Pipeline, seed_everything
from trkx.stage import EventSet, load_stage
from trkx.storage import CorruptEntryError, first_line, write_json


@dataclass
class TuneConfig:
    space: dict[str, Any]
    objective: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    epochs: int | None = None
    pruning_warmup_epochs: int = 1   # epochs before a trial may be pruned

    def validate(self) -> None:
        if not self.space:
            raise ValueError("key 'space': give at least one key to search")
        for key, spec in self.space.items():
            if not isinstance(spec, dict) or not ({"choices"} <= set(spec) or {"low", "high"} <= set(spec)):
                raise ValueError(f"key 'space.{key}': expected {{choices: [...]}} or {{low: .., high: .., log: ..}}")
            if "low" in spec and not spec["low"] < spec["high"]:
                raise ValueError(f"key 'space.{key}': low must be below high")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("key 'epochs': must be >= 1")


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """One value per key of ``space``: a choice, an integer range (both bounds integers) or a float range."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, list(spec["choices"]))
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log", False)))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)))
    return values


def set_nested(cfg: dict, dotted: str, value: Any) -> None:
    """``cfg["a"]["b"] = value`` for ``dotted`` = "a.b" (sections such as ``sampling.eta_sectors``)."""
    *path, last = dotted.split(".")
    for part in path:
        cfg = cfg.setdefault(part, {})
    cfg[last] = value


class OptunaPruning(pl.Callback):
    """Reports the objective to the trial after each validation and stops a trial Optuna prunes
    (optuna-integration's callback is written for the ``lightning`` package, not ``pytorch_lightning``)."""

    def __init__(self, trial, metric: str, warmup: int):
        self.trial, self.metric, self.warmup = trial, metric, warmup

    def on_validation_end(self, trainer, module):
        value = trainer.callback_metrics.get(self.metric)
        if value is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), epoch)
        if epoch >= self.warmup and self.trial.should_prune():
            import optuna
            raise optuna.TrialPruned(f"epoch {epoch}: {self.metric} = {float(value):.4f}")


@dataclass
class TuneResult:
    best_value: float
    best_params: dict[str, Any]
    best_yaml: Path
    summary: Path
    plot: Path
    trials: list[dict] = field(default_factory=list)


def tune(stage_yaml: Path, pipeline: Path, space_yaml: Path, trials: int, progress: bool = False) -> TuneResult:
    """Run ``trials`` more Optuna trials for the stage of ``stage_yaml`` in ``pipeline``."""
    import optuna

    pipe = Pipeline(pipeline, progress=progress)
    target = Path(stage_yaml).resolve()
    idx = next((i for i, p in enumerate(pipe.stage_paths) if p.resolve() == target), None)
    if idx is None:
        raise ConfigError(f"{stage_yaml}: not one of the stages of {pipeline}")
    base_stage = pipe.stages[idx]
    if not hasattr(base_stage, "build"):
        raise ConfigError(f"{stage_yaml}: stage '{base_stage.name}' is not a trained network; nothing to tune")
    cfg = parse_config(TuneConfig, load_yaml(space_yaml), str(space_yaml))
    base = load_yaml(stage_yaml)
    up = pipe.upstream_of(base_stage)
    train, val = EventSet(up.paths["train"]), EventSet(up.paths["val"])
    metric, mode = base_stage.build(train[0].x.shape[1]).monitor
    metric = cfg.objective or metric
    direction = cfg.direction or ("maximize" if mode == "max" else "minimize")
    out = pipe.workdir / "tune" / base_stage.name
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = out / "study.db"
    try:   # an SQLite file (Optuna stores JSON in it, nothing is unpickled)
        study = optuna.create_study(study_name=base_stage.name, storage=f"sqlite:///{db}",
                                    load_if_exists=True, direction=direction,
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=3,
                                                                       n_warmup_steps=cfg.pruning_warmup_epochs))
    except Exception as err:   # SQLAlchemy's DatabaseError and kin for a damaged or foreign file
        raise CorruptEntryError(f"{db}: not a readable Optuna study database ({type(err).__name__}: "
                                f"{first_line(err)[:200]}); move it away to start a new study") from None
    # seeded from the pipeline, and differently for each rerun of the study
    study.sampler = optuna.samplers.TPESampler(seed=pipe.config.seed + len(study.trials))
    hand_set = {k: _get(config_to_dict(base_stage.config), k) for k in cfg.space}
    if not study.trials and all(_in_space(v, cfg.space[k]) for k, v in hand_set.items()):
        study.enqueue_trial(hand_set, user_attrs={"hand_set": True})   # trial 0: the YAML's own values

    def objective(trial) -> float:
        raw = copy.deepcopy(base)
        for key, value in suggest(trial, cfg.space).items():
            set_nested(raw, key, value)
        if cfg.epochs is not None:
            raw["epochs"] = cfg.epochs
        trial_yaml = out / f"trial{trial.number}.yaml"
        trial_yaml.write_text(yaml.safe_dump(raw, sort_keys=False))
        stage = load_stage(trial_yaml, device=pipe.device, seed=base_stage.seed)
        stage.name, stage.progress = base_stage.name, progress
        stage.log_dir = out / "logs" / f"trial{trial.number}"
        # with `trainer: {logger: mlflow | wandb}` in the stage YAML, each trial is a tracked run
        stage.tracking_dir, stage.run_name = pipe.workdir, f"{base_stage.name}-trial{trial.number}"
        stage.callbacks = [OptunaPruning(trial, metric, cfg.pruning_warmup_epochs)]
        seed_everything(stage.seed)
        history = stage.fit(train, val)["val_history"]
        values = [h[metric.removeprefix("val_")] for h in history if metric.removeprefix("val_") in h]
        if not values:
            raise ConfigError(f"{space_yaml}: objective '{metric}' is not among the validation figures "
                              f"({', '.join('val_' + k for k in history[-1]) if history else 'none'})")
        value = max(values) if direction == "maximize" else min(values)
        if stage.tracker is not None:
            stage.tracker.log_metrics({f"objective_{metric}": value})
            stage.finish_tracking([trial_yaml], provenance(pipe.path))
        return value

    study.optimize(objective, n_trials=trials, catch=())
    best = study.best_trial
    best_raw = copy.deepcopy(base)
    for key, value in best.params.items():
        set_nested(best_raw, key, value)
    best_yaml = out / "best.yaml"
    best_yaml.write_text(f"# trkx tune: best of {len(study.trials)} trials, {metric} = {best.value:.4f} "
                         f"(trial {best.number})\n" + yaml.safe_dump(best_raw, sort_keys=False))
    load_stage(best_yaml)        # it loads as a stage YAML
    rows = [{"trial": f"{t.number} (hand-set)" if t.user_attrs.get("hand_set") else t.number,
             "state": t.state.name.lower(), "value": t.value, **t.params} for t in study.trials]
    summary, plot = write_study(out, rows, metric, direction == "maximize", base_stage.name,
                                config_to_dict(base_stage.config), cfg.space)
    write_json(out / "study.json", stamped({"stage": base_stage.name, "objective": metric, "direction": direction,
                                            "best_trial": best.number, "best_value": best.value, "trials": rows},
                                           pipeline, {"upstream": up.fingerprint}))
    return TuneResult(best.value, best.params, best_yaml, summary, plot, rows)


def write_study(out: Path, rows: list[dict], metric: str, maximize: bool, name: str, base: dict,
                space: dict) -> tuple[Path, Path]:
    """``study.md`` (one row per trial, the hand-set values first) and ``study.png``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(space)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"# {name}: Optuna study ({metric})", "",
             f"Each trial's best epoch; a pruned trial's {metric} is the one it was stopped at.", "", "| trial | state | " + metric + " | " + " | ".join(keys) + " |",
             "|" + "---|" * (3 + len(keys))]
    if not any("hand-set" in str(r["trial"]) for r in rows):     # its values lie outside the space
        lines.append("| hand-set (not run) | — | — | " + " | ".join(fmt(_get(base, k)) for k in keys) + " |")
    for r in rows:
        value = "—" if r["value"] is None else f"{r['value']:.4f}"
        lines.append(f"| {r['trial']} | {r['state']} | {value} | " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |")
    summary = out / "study.md"
    summary.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r["value"] is not None]
    number = lambda r: int(str(r["trial"]).split()[0])  # noqa: E731
    ax.plot([number(r) for r in done], [r["value"] for r in done], "o", label="trial")
    if pruned:
        ax.plot([number(r) for r in pruned], [r["value"] for r in pruned], "x", color="grey", label="pruned (when stopped)")
    hand = [r for r in done if "hand-set" in str(r["trial"])]
    if hand:
        ax.axhline(hand[0]["value"], color="grey", ls=":", label="hand-set config")
    best, run = [], None
    for r in done:
        run = r["value"] if run is None else (max if maximize else min)(run, r["value"])
        best.append(run)
    ax.step([number(r) for r in done], best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{name}: objective against trial")
    ax.legend()
    fig.tight_layout()
    plot = out / "study.png"
    fig.savefig(plot, dpi=110)
    plt.close(fig)
    return summary, plot


def _in_space(value, spec: dict) -> bool:
    if "choices" in spec:
        return value in spec["choices"]
    return isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part, {}) if isinstance(cfg, dict) else {}
    return cfg if cfg != {} else "—"
