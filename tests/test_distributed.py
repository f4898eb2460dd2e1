"""Training at scale through Lightning: DDP on two CPU processes (gloo), logs, checkpoints and
resuming an interrupted training."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import make_pipeline

from trkx.storage import safe_load
from trkx.training import epoch_losses

TRKX = [sys.executable, "-m", "trkx.cli"]


def trkx(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(TRKX + list(args), cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"trkx {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def saved_step(ckpt: Path) -> int:
    """The global step of a checkpoint, -1 while there is none (or it is being written)."""
    try:
        return int(safe_load(ckpt, "checkpoint")["global_step"])
    except Exception:
        return -1


def gnn_pipeline(root: Path, tiny_run, **gnn) -> Path:
    return make_pipeline(root, stage_overrides={"gnn": gnn}, cachedir=str(tiny_run[0].cachedir))


def gnn_weights_dir(pipe_path: Path) -> Path:
    from trkx.runner import Pipeline
    pipe = Pipeline(pipe_path, progress=False)
    stage = pipe.stages[[s.name for s in pipe.stages].index("gnn")]
    return pipe.weights_path(stage, pipe.upstream_of(stage).fingerprint).parent


def train_report(pipe_path: Path) -> dict:
    return json.loads((gnn_weights_dir(pipe_path) / "train.json").read_text())


def test_ddp_on_two_cpu_processes_follows_one_process_with_the_same_effective_batch(tmp_path, tiny_run):
    """`trkx train` with devices 2, strategy ddp (gloo): each rank steps on its share of the events
    (Lightning's distributed sampler) and the gradients are averaged, so the loss curve follows
    one process that accumulates two events per step, within 10% per epoch."""
    trainer = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}
    ddp = gnn_pipeline(tmp_path / "ddp", tiny_run, epochs=3, trainer=trainer)
    one = gnn_pipeline(tmp_path / "one", tiny_run, epochs=3, trainer={"accelerator": "cpu", "accumulate_grad_batches": 2})
    for path in (ddp, one):
        trkx("train", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", cwd=path.parent.parent)
    assert train_report(ddp)["world_size"] == 2 and train_report(one)["world_size"] == 1
    a, b = epoch_losses(tmp_path / "ddp" / "work" / "gnn" / "logs"), epoch_losses(tmp_path / "one" / "work" / "gnn" / "logs")
    assert sorted(a) == sorted(b) == [0, 1, 2]
    for epoch in a:
        assert a[epoch] == pytest.approx(b[epoch], rel=0.10), (a, b)
    assert a[2] < a[0] and b[2] < b[0]


def test_logs_and_checkpoints_are_written_and_a_killed_training_resumes(tmp_path, tiny_run):
    path = gnn_pipeline(tmp_path, tiny_run, epochs=30)   # a few seconds: long enough to be killed
    root = path.parent.parent
    # upstream first (cached in the shared cache), so the kill below lands in the training
    trkx("infer", "configs/stages/filter.yaml", "-p", "configs/pipeline.yaml", cwd=root)
    proc = subprocess.Popen(TRKX + ["train", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt_dir = gnn_weights_dir(path) / "checkpoints"
    t0 = time.time()
    # kill the training (at whatever step it is) once it has checkpointed the end of epoch 1
    # (3 steps an epoch; last.ckpt is written at each epoch end)
    while proc.poll() is None and saved_step(ckpt_dir / "last.ckpt") < 6 and time.time() - t0 < 300:
        time.sleep(0.05)
    assert proc.poll() is None, "the training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (ckpt_dir.parent / "model.pt").exists()          # no weights from the killed run
    snapshot = tmp_path / "snapshot"
    shutil.copytree(ckpt_dir, snapshot)
    assert saved_step(snapshot / "last.ckpt") >= 6

    # `trkx run` resumes by itself ...
    trkx("run", "configs/pipeline.yaml", "--no-progress", cwd=root)
    report = train_report(path)
    assert report["resumed_from"] and [h["epoch"] for h in report["val_history"]] == list(range(30))
    losses = epoch_losses(root / "work" / "gnn" / "logs")
    assert min(losses) > 0 and max(losses) == 29       # the resumed run's log starts after epoch 0
    assert (root / "work" / "gnn" / "logs" / "csv").is_dir() and (ckpt_dir / "best.ckpt").is_file()

    # ... `trkx train --resume` does when asked, and `trkx train` alone starts over
    shutil.rmtree(ckpt_dir)
    shutil.copytree(snapshot, ckpt_dir)
    trkx("train", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", "--resume", cwd=root)
    assert train_report(path)["resumed_from"]
    trkx("train", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", cwd=root)
    assert train_report(path)["resumed_from"] is None
    assert min(epoch_losses(root / "work" / "gnn" / "logs")) == 0


def test_two_workers_give_the_tracks_of_one(tmp_path, tiny_run):
    """`trkx run --workers 2` recomputes every stage's events on two forked processes (the trained
    weights reused) and writes the same track files as the single-process run."""
    pipe = tiny_run[0]
    cache = tmp_path / "cache"
    shutil.copytree(pipe.cachedir, cache, ignore=shutil.ignore_patterns("tracks", "plots"))
    for stage in pipe.stages:                       # keep the data and the weights, drop the inferred events
        for entry in (cache / stage.name).iterdir():
            if not entry.name.startswith("weights-"):
                shutil.rmtree(entry)
    path = make_pipeline(tmp_path, cachedir=str(cache))
    out = trkx("run", "configs/pipeline.yaml", "--workers", "2", "--no-progress", cwd=path.parent.parent)
    for stage in pipe.stages:        # every event of every stage computed (none served from the cache)
        assert re.search(rf"^\s+{stage.name}\s+\w+\s+computed\s+[1-9]\d*\s+cached\s+0\s*$", out.stdout, re.M), out.stdout
        # in a pipe, progress is one line per stage (no bars)
        assert len(re.findall(rf"^{stage.name}: \d+ events computed", out.stderr, re.M)) == 1, out.stderr
    assert "\r" not in out.stderr
    mine = sorted((tmp_path / "work" / "tracks").glob("*.csv"))
    theirs = sorted((pipe.workdir / "tracks").glob("*.csv"))
    assert [p.name for p in mine] == [p.name for p in theirs] and mine
    for a, b in zip(mine, theirs):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_tune_runs_trials_and_writes_the_best_stage_yaml(tmp_path, tiny_run):
    path = gnn_pipeline(tmp_path, tiny_run, epochs=2)
    space = tmp_path / "space.yaml"
    space.write_text("epochs: 2\nspace:\n  hidden: {choices: [8, 16]}\n  lr: {low: 0.001, high: 0.01, log: true}\n")
    # (the tiny gnn.yaml has hidden 16 and the default lr 0.002: inside the space)
    root = path.parent.parent
    out = trkx("tune", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", "-s", str(space), "--trials", "3", cwd=root)
    study = root / "work" / "tune" / "gnn"
    table = (study / "study.md").read_text()
    assert table.count("| complete |") + table.count("| pruned |") == 3
    assert "| 0 (hand-set) | complete |" in table        # trial 0 is the stage YAML's own values
    best = yaml.safe_load((study / "best.yaml").read_text())
    assert best["hidden"] in (8, 16) and 0.001 <= best["lr"] <= 0.01 and best["stage"] == "gnn"
    # each trial trained its own sampled values, and best.yaml holds the best trial's
    rows = {r.split("|")[1].strip().split()[0]: [c.strip() for c in r.split("|")[2:-1]]
            for r in table.splitlines() if r.startswith("| ") and r.split("|")[1].strip()[0].isdigit()}
    for n, (_, _, hidden, lr) in rows.items():
        trial = yaml.safe_load((study / f"trial{n}.yaml").read_text())
        assert (str(trial["hidden"]), f"{trial['lr']:.4g}") == (hidden, lr)
    best_trial = re.search(r"\(trial (\d+)\)", (study / "best.yaml").read_text()).group(1)
    assert rows[best_trial][2:] == [str(best["hidden"]), f"{best['lr']:.4g}"]
    assert len({lr for *_, lr in rows.values()}) == 3             # the sampler tried new values
    assert (study / "study.png").stat().st_size > 0 and "best " in out.stdout
    # the best YAML is a stage YAML: it trains in the pipeline in place of the hand-set one
    from trkx.stage import load_stage
    assert load_stage(study / "best.yaml").config.hidden == best["hidden"]
    # a rerun adds trials to the same study
    trkx("tune", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", "-s", str(space), "--trials", "1", cwd=root)
    assert (study / "study.md").read_text().count("| complete |") + (study / "study.md").read_text().count("| pruned |") == 4
    # a search space naming no key, or a bad range, is one clear error
    space.write_text("space:\n  lr: {low: 0.01, high: 0.001}\n")
    bad = trkx("tune", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", "-s", str(space), cwd=root, check=False)
    assert bad.returncode == 2 and "space.lr" in bad.stderr and "low must be below high" in bad.stderr


def test_simulation_on_two_threads_gives_the_same_events(tmp_path):
    """`--workers 2` runs ACTS on two threads: each event's random numbers depend on its number
    only, so the TrackML files are byte for byte those of one thread."""
    import filecmp

    from trkx.stage import load_stage
    from trkx.simulation import simulate_events
    cfg = load_stage(Path(__file__).parent / "configs" / "stages" / "data.yaml").config.simulation
    for threads in (1, 2):
        simulate_events(cfg, 3, 11, tmp_path / f"t{threads}", progress=False, threads=threads)
    names = sorted(p.name for p in (tmp_path / "t1").iterdir())
    assert len(names) == 9 and names == sorted(p.name for p in (tmp_path / "t2").iterdir())
    assert all(filecmp.cmp(tmp_path / "t1" / n, tmp_path / "t2" / n, shallow=False) for n in names)


def test_a_trainer_section_lightning_rejects_is_one_error_naming_the_file(tmp_path, tiny_run):
    path = gnn_pipeline(tmp_path, tiny_run, epochs=1, trainer={"strategy": "no_such_strategy"})
    out = trkx("train", "configs/stages/gnn.yaml", "-p", "configs/pipeline.yaml", cwd=path.parent.parent, check=False)
    assert out.returncode == 2 and "gnn.yaml: trainer:" in out.stderr and "no_such_strategy" in out.stderr
    assert "Traceback" not in out.stderr
