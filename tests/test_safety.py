"""Data safety: a training killed with SIGKILL resumes to bit-identical weights, concurrent runs
on one cache train each stage once, nothing from disk runs code, and trkx never deletes what it
did not write."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from conftest import make_pipeline

from trkx.cli import main
from trkx.config import ConfigError, load_yaml
from trkx.fingerprint import weights_digest
from trkx.storage import CorruptEntryError, UnsafeFileError, atomic_path, safe_load

TRKX = [sys.executable, "-m", "trkx.cli"]


def _saved_step(ckpt: Path) -> int:
    try:
        return int(safe_load(ckpt, "checkpoint")["global_step"])
    except (FileNotFoundError, CorruptEntryError):
        return -1          # none yet, or being written


def _filter_weights(root: Path) -> list[Path]:
    return sorted((root / "work" / "filter").glob("weights-*/model.pt"))


def _train_filter(root: Path, kill_at_step: int | None = None) -> None:
    """``trkx train`` of the tiny filter in ``root``; with ``kill_at_step``, SIGKILL the training
    once its last.ckpt holds that step, then let ``trkx run`` resume it."""
    args = TRKX + ["train", "configs/stages/filter.yaml", "-p", "configs/pipeline.yaml"]
    if kill_at_step is None:
        subprocess.run(args, cwd=root, check=True, capture_output=True, timeout=600)
        return
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 300:
        ckpts = list((root / "work" / "filter").glob("weights-*/checkpoints/last.ckpt"))
        if ckpts and _saved_step(ckpts[0]) >= kill_at_step:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not _filter_weights(root)
    out = subprocess.run(TRKX + ["run", "configs/pipeline.yaml", "--no-progress"], cwd=root, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("every_n_steps", [0, 2], ids=["epoch-end checkpoints", "mid-epoch checkpoints"])
def test_a_training_killed_with_sigkill_resumes_to_bit_identical_weights(tmp_path, tiny_run, every_n_steps):
    """The filter (a random subset of edges per step from the global RNG, a shuffled event order)
    trained straight through, and killed after its first checkpoints then resumed by `trkx run`:
    the same weights to the bit, so the same fingerprint.  With checkpoints every 2 steps (3 per
    epoch) the kill lands within an epoch, and the resumed epoch skips exactly the batches it had
    done."""
    over = {"epochs": 12, "train_edges": 50, "trainer": {"checkpoint_every_n_steps": every_n_steps}}
    digests = []
    for name, kill in (("straight", None), ("killed", 5 if every_n_steps else 6)):
        path = make_pipeline(tmp_path / name, stage_overrides={"filter": over})
        root = path.parent.parent
        shutil.copytree(tiny_run[0].cachedir, root / "work",
                        ignore=shutil.ignore_patterns("filter", "gnn", "labeling", "tracks", "plots"))
        _train_filter(root, kill)
        (weights,) = _filter_weights(root)
        digests.append(weights_digest(weights))
    assert digests[0] == digests[1]


def test_three_concurrent_runs_train_each_stage_once_and_write_the_same_tracks(tmp_path):
    path = make_pipeline(tmp_path)
    procs = [subprocess.Popen(TRKX + ["run", str(path), "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    stderr = "".join(e for _, e in outs)
    for stage in ("embedding", "filter", "gnn"):           # one training per stage over the three runs
        assert stderr.count(f"{stage}: training on") == 1, stderr
    assert "waiting for another trkx process" in stderr
    tracks = sorted((tmp_path / "work" / "tracks").glob("*.csv"))
    assert len(tracks) == 2
    # each run's summary names the same fingerprints, and no temporary file is left anywhere
    summaries = [sorted(ln.split()[:2] for ln in o.splitlines() if "computed" in ln and "cached" in ln) for o, _ in outs]
    assert summaries[0] == summaries[1] == summaries[2]
    assert not list((tmp_path / "work").rglob("*.tmp"))
    for entry in (tmp_path / "work" / "gnn").glob("weights-*"):
        assert len(list(entry.glob("checkpoints/*.ckpt"))) == 2     # last and best of one training


def test_safe_load_refuses_a_pickle_that_runs_code_and_names_a_damaged_file(tmp_path):
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    torch.save({"state": Planted()}, tmp_path / "planted.pt")
    with pytest.raises(UnsafeFileError, match=r"planted.pt: refused to load this checkpoint: .*\(exec\)"):
        safe_load(tmp_path / "planted.pt", "checkpoint")
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CorruptEntryError, match="junk.pt: cannot read weights file") as err:
        safe_load(tmp_path / "junk.pt", "weights file")
    assert not isinstance(err.value, UnsafeFileError) and "\n" not in str(err.value)
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert safe_load(tmp_path / "ok.pt")["w"].sum() == 2


def test_written_files_follow_the_umask(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the renamed file gets the umask's mode."""
    code = ("import os; os.umask(0o027); from trkx.storage import write_text; "
            f"write_text({str(tmp_path / 'a.txt')!r}, 'x')")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    with atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("y")
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("text, error", [
    ("a: 1\nb: 2\na: 3\n", "line 3, column 1): key 'a' given twice (first on line 1)"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_strict_yaml_refuses_duplicate_keys_and_deep_nesting(tmp_path, text, error):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load_yaml(tmp_path / "c.yaml")


def test_yaml_reads_exponent_floats_as_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nr: 2.5E+2\nname: 1e5x\nn: 10\n")
    assert load_yaml(tmp_path / "c.yaml") == {"lr": 0.001, "r": 250.0, "name": "1e5x", "n": 10}


def test_export_replaces_an_earlier_bundle_but_not_user_files_unless_told(tmp_path, tiny_run):
    pipe = tiny_run[0]
    bundle = tmp_path / "bundle"
    runner = CliRunner()
    assert runner.invoke(main, ["export", str(pipe.path), str(bundle)]).exit_code == 0
    (bundle / "weights" / "stale.pt").write_bytes(b"")          # a file an earlier export left
    again = runner.invoke(main, ["export", str(pipe.path), str(bundle)])
    assert again.exit_code == 0 and not (bundle / "weights" / "stale.pt").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    refused = runner.invoke(main, ["export", str(pipe.path), str(mine)])
    assert refused.exit_code == 2 and "not an earlier trkx bundle" in refused.output
    assert (mine / "notes.txt").read_text() == "keep" and not (mine / "manifest.json").exists()
    told = runner.invoke(main, ["export", str(pipe.path), str(mine), "--overwrite"])
    assert told.exit_code == 0 and (mine / "manifest.json").is_file() and not (mine / "notes.txt").exists()
    assert not list(tmp_path.glob(".*"))                        # no staging directory left beside it


def test_reco_removes_its_own_stale_events_and_refuses_a_foreign_directory(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    hits = tmp_path / "hits"
    hits.mkdir()
    ids = [int(p.stem[5:]) for p in outputs[0].paths["test"]]
    for i in ids:
        shutil.copy(csv / f"event{i:09d}-hits.csv", hits)
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["reco", str(pipe.path), str(hits), str(out), "--no-progress"]).exit_code == 0
    (hits / f"event{ids[0]:09d}-hits.csv").unlink()              # one event fewer in the input
    assert runner.invoke(main, ["reco", str(pipe.path), str(hits), str(out), "--no-progress"]).exit_code == 0
    assert sorted(p.name for p in out.glob("event*.csv")) == [f"event{ids[1]}.csv"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("x")
    refused = runner.invoke(main, ["reco", str(pipe.path), str(hits), str(foreign), "--no-progress"])
    assert refused.exit_code == 2 and "not an earlier trkx reco output" in refused.output
    assert sorted(p.name for p in foreign.iterdir()) == ["data.csv"]


def test_a_read_only_complete_cache_still_runs(tmp_path, tiny_run):
    """Locks are taken where the cache can be written; a shared read-only cache that holds every
    entry is read without them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only file system")
    cache = tmp_path / "cache"
    shutil.copytree(tiny_run[0].cachedir, cache, ignore=shutil.ignore_patterns("tracks", "plots"))
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(cache), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("mount is not permitted here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True, capture_output=True)
        path = make_pipeline(tmp_path, cachedir=str(ro))
        result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert len(list((tmp_path / "work" / "tracks").glob("*.csv"))) == 2
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_verify_accepts_a_bundle_and_names_a_file_changed_after_export(tmp_path, tiny_run):
    runner = CliRunner()
    bundle = tmp_path / "bundle"
    assert runner.invoke(main, ["export", str(tiny_run[0].path), str(bundle)]).exit_code == 0
    ok = runner.invoke(main, ["verify", str(bundle)])
    assert ok.exit_code == 0 and "ok (5 stages" in ok.output
    cfg = bundle / "stages" / "labeling.yaml"
    cfg.write_text(cfg.read_text() + "# edited\n")
    bad = runner.invoke(main, ["verify", str(bundle)])
    assert bad.exit_code == 2 and "labeling.yaml: does not match the manifest's sha256" in bad.output


def test_simulate_refuses_a_directory_of_other_files_and_reruns_into_its_own(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "event000001000-hits.csv").write_text("someone's real event\n")
    runner = CliRunner()
    args = ["simulate", str(data), "-n", "1", "--vertices", "1", "--particles", "3"]
    refused = runner.invoke(main, args)
    assert refused.exit_code == 2 and "not an earlier trkx simulate output" in refused.output
    assert (data / "event000001000-hits.csv").read_text() == "someone's real event\n"
    fresh = tmp_path / "sim"
    assert runner.invoke(main, ["simulate", str(fresh), *args[2:]]).exit_code == 0
    assert runner.invoke(main, ["simulate", str(fresh), *args[2:]]).exit_code == 0      # its own: again


def test_a_deterministic_trainer_section_gives_the_same_weights_in_every_process(tmp_path, tiny_run):
    """`trainer: {deterministic: true}` trains on one thread: the influencer stage, whose
    two-thread training differs from process to process in its backward, comes out the same."""
    digests = set()
    for k in range(2):
        path = make_pipeline(tmp_path / f"run{k}", stages=["stages/module_map.yaml", "stages/influencer.yaml"],
                             stage_overrides={"influencer": {"trainer": {"deterministic": True}}},
                             cachedir=str(tmp_path / f"run{k}" / "work"))
        root = path.parent.parent
        shutil.copytree(tiny_run[0].cachedir / "data", root / "work" / "data")
        subprocess.run(TRKX + ["train", "configs/stages/influencer.yaml", "-p", "configs/pipeline.yaml"], cwd=root,
                       check=True, capture_output=True, timeout=600)
        (weights,) = sorted((root / "work" / "influencer").glob("weights-*/model.pt"))
        digests.add(weights_digest(weights))
    assert len(digests) == 1
