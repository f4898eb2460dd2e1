"""Experiment tracking: a GNN training logged to MLflow (read back through MLflow's own client)
and to an offline W&B run; the logger never changes what is trained or its fingerprint."""
from __future__ import annotations

import json

import pytest
from conftest import make_pipeline

from trkx.config import ConfigError
from trkx.runner import Pipeline, training_config


def _train_gnn(tmp_path, trainer: dict):
    path = make_pipeline(tmp_path, {"gnn": {"epochs": 1, "trainer": trainer}})
    pipe = Pipeline(path, progress=False)
    gnn = next(s for s in pipe.stages if s.name == "gnn")
    pipe.run(until="gnn", write_outputs=False)
    return pipe, gnn


def test_the_logger_is_not_part_of_the_training_fingerprint(tmp_path):
    pipe = Pipeline(make_pipeline(tmp_path, {"gnn": {"trainer": {"logger": "mlflow", "experiment": "x"}}}))
    plain = Pipeline(make_pipeline(tmp_path / "b"))
    cfg = next(s for s in pipe.stages if s.name == "gnn").config
    assert cfg.trainer.logger == "mlflow"
    assert training_config(cfg) == training_config(next(s for s in plain.stages if s.name == "gnn").config)
    # a trained key in the same section still counts
    other = Pipeline(make_pipeline(tmp_path / "c", {"gnn": {"trainer": {"logger": "mlflow", "deterministic": True}}}))
    assert "trainer" in training_config(next(s for s in other.stages if s.name == "gnn").config)


def test_a_gnn_training_logged_to_mlflow_reads_back(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    pipe, gnn = _train_gnn(tmp_path, {"logger": "mlflow", "experiment": "trkx-test"})
    client = MlflowClient(tracking_uri=f"sqlite:///{pipe.workdir.resolve() / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("trkx-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_name == "gnn" and runs[0].info.status == "FINISHED"
    run = runs[0].info.run_id
    params = runs[0].data.params
    assert params["epochs"] == "1" and params["hidden"] == str(gnn.config.hidden)
    steps = client.get_metric_history(run, "train_loss_step")
    assert len(steps) >= 2 and "val_efficiency" in runs[0].data.metrics and "train_loss_epoch" in runs[0].data.metrics
    files = {a.path for a in client.list_artifacts(run)} | {a.path for a in client.list_artifacts(run, "weights")}
    assert {"train.json", "provenance.json", "weights/model.pt"} <= files
    local = client.download_artifacts(run, "provenance.json", str(tmp_path))
    assert json.loads(open(local).read())["pipeline"] == str(pipe.path.resolve())
    assert runs[0].data.tags["provenance.commit"]


def test_a_gnn_training_logged_to_an_offline_wandb_run(tmp_path):
    pytest.importorskip("wandb")
    pipe, _ = _train_gnn(tmp_path, {"logger": "wandb"})
    runs = list((pipe.workdir / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))


def test_a_logger_whose_package_is_missing_is_named(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match="logger 'mlflow' needs the mlflow package"):
        _train_gnn(tmp_path, {"logger": "mlflow"})


def test_tune_logs_each_trial_as_a_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from trkx.tune import tune
    path = make_pipeline(tmp_path, {"gnn": {"epochs": 1, "trainer": {"logger": "mlflow"}}})
    space = tmp_path / "space.yaml"
    space.write_text("epochs: 1\nspace:\n  lr: {low: 0.001, high: 0.01, log: true}\n")
    tune(path.parent / "stages" / "gnn.yaml", path, space, 2, progress=False)
    workdir = Pipeline(path).workdir
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir.resolve() / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("trkx").experiment_id])
    trials = sorted(r.info.run_name for r in runs if "trial" in r.info.run_name)
    assert trials == ["gnn-trial0", "gnn-trial1"]
    for r in runs:
        if "trial" in r.info.run_name:
            assert "objective_val_f1" in r.data.metrics and "lr" in r.data.params
