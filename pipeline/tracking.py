"""Experiment tracking for the learned stages: the ``trainer:`` section's ``logger`` (csv,
tensorboard, mlflow or wandb), beside the CSV logs trkx always writes.

- ``mlflow``: a run per training in an experiment (``experiment``, default "trkx") of the store at
  ``tracking_uri``, by default ``<workdir>/mlruns`` (an SQLite database, ``mlflow.db``, and the
  artefacts beside it; MLflow 3 no longer writes plain-file stores). ``mlflow ui
  --backend-store-uri sqlite:///<workdir>/mlruns/mlflow.db`` shows it, offline.
- ``wandb``: an offline W&B run under ``<workdir>/wandb`` (``wandb sync`` uploads it later).

Each run gets the stage's config as hyperparameters, Lightning's per-step and per-epoch metrics,
and at the end the weights and ``train.json`` as artefacts, with the provenance block.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from trkx.config import ConfigError, config_to_dict

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def mlflow_store(trainer_cfg, workdir: Path) -> tuple[str, str | None]:
    """(tracking URI, artefact location) of a training's MLflow runs: ``tracking_uri`` with the
    store's own artefact place, or by default SQLite and artefacts under ``<workdir>/mlruns``."""
    if trainer_cfg.tracking_uri:
        return trainer_cfg.tracking_uri, None
    store = Path(workdir).resolve() / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()


def tracking_logger(trainer_cfg, workdir: Path, run_name: str):
    """The MLflow or W&B logger the ``trainer:`` section asks for (None for csv and tensorboard,
    which ``make_trainer`` writes beside the checkpoints); a ConfigError naming the package when
    the chosen logger's is not installed."""
    kind = trainer_cfg.logger
    if kind == "csv":
        return None
    package = PACKAGES[kind]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"trainer: logger '{kind}' needs the {package} package (pip install "
                          f"{'mlflow-skinny' if kind == 'mlflow' else package})")
    if kind == "tensorboard":
        return None
    if kind == "mlflow":
        from pytorch_lightning.loggers import MLFlowLogger
        uri, artifacts = mlflow_store(trainer_cfg, workdir)
        return MLFlowLogger(experiment_name=trainer_cfg.experiment, run_name=run_name, tracking_uri=uri,
                            artifact_location=artifacts, log_model=False)
    from pytorch_lightning.loggers import WandbLogger
    save = Path(workdir) / "wandb"
    save.mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=trainer_cfg.experiment, name=run_name, save_dir=str(save), offline=True)


def log_config(logger, config) -> None:
    """The stage's config as the run's hyperparameters (nested keys flattened by the logger)."""
    logger.log_hyperparams(config_to_dict(config))


def log_outcome(logger, stage_name: str, files: list[Path], provenance: dict) -> None:
    """The trained weights and ``train.json`` as artefacts of the run, and the provenance block
    (commit, packages, machine) as tags or summary; then the run is closed."""
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger
    flat = {f"provenance.{k}": str(v) for k, v in provenance.items() if not isinstance(v, dict)}
    if isinstance(logger, MLFlowLogger):
        client, run = logger.experiment, logger.run_id
        for path in files:
            client.log_artifact(run, str(path), "weights" if path.suffix != ".json" else None)
        client.log_dict(run, provenance, "provenance.json")
        for key, value in flat.items():
            client.set_tag(run, key, value)
    elif isinstance(logger, WandbLogger):
        import wandb
        artifact = wandb.Artifact(f"{stage_name}-weights", type="model", metadata=provenance)
        for path in files:
            artifact.add_file(str(path))
        logger.experiment.log_artifact(artifact)
        logger.experiment.summary.update(flat)
        logger.experiment.finish()
