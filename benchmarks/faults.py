"""Fault and attack battery: every case of the security review (issue 21) through the real `trkx`
command line, on a copy of a small trained pipeline, printed as a table.

    python benchmarks/faults.py [--keep DIR]

Each row: the case, the exit status (expected in brackets), how many lines the error took, whether
the data the case must not touch is intact, and whether anything planted ran.  A planted pickle
tries to write a marker file; "ran" is whether the marker appeared.  tests/test_faults.py runs the
same cases and asserts every row.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIGS = REPO / "tests" / "configs"
TRKX = [sys.executable, "-m", "trkx.cli"]


class Planted:
    """Unpickled without ``weights_only``, this runs ``exec`` and writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def plant(path: Path, marker: Path) -> None:
    """Replace ``path`` by a torch file whose pickle runs code when loaded unsafely."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": Planted(marker)}, path)


@dataclass
class Scratch:
    """One case's copy of the trained tiny pipeline: ``root/configs`` and ``root/work``."""
    root: Path

    @property
    def pipeline(self) -> Path:
        return self.root / "configs" / "pipeline.yaml"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def marker(self) -> Path:
        return self.root / "PLANTED-CODE-RAN"

    def stage_yaml(self, name: str) -> Path:
        return self.root / "configs" / "stages" / f"{name}.yaml"

    def edit_yaml(self, path: Path, **changes) -> None:
        data = yaml.safe_load(path.read_text())
        data.update(changes)
        path.write_text(yaml.safe_dump(data))

    def weights(self, stage: str) -> Path:
        (found,) = sorted((self.work / stage).glob("weights-*/model.pt"))
        return found

    def entries(self, stage: str) -> list[Path]:
        return sorted(p for p in (self.work / stage).iterdir() if p.is_dir() and not p.name.startswith("weights-"))

    def test_csvs(self, dst: Path, kinds=("hits",)) -> Path:
        """The test events' CSVs (the two last event ids; hits, optionally truth and particles) in ``dst``."""
        (data_entry,) = self.entries("data")
        csv = data_entry / "csv"
        ids = sorted(int(p.name[5:14]) for p in csv.glob("event*-hits.csv"))[-2:]
        dst.mkdir(parents=True, exist_ok=True)
        for i in ids:
            for kind in kinds:
                shutil.copy(csv / f"event{i:09d}-{kind}.csv", dst)
        return dst

    def trackml_source(self) -> Path:
        """The simulated CSVs as a ``source: trackml`` input directory for the data stage."""
        (data_entry,) = self.entries("data")
        src = self.root / "trackml"
        shutil.copytree(data_entry / "csv", src, ignore=shutil.ignore_patterns(".*"))
        self.edit_yaml(self.stage_yaml("data"), source="trackml", input_dir=str(src))
        return src


@dataclass
class Case:
    name: str
    setup: Callable[[Scratch], list[str]]        # returns the trkx arguments
    expect: int = 2
    keep: Callable[[Scratch], list[Path]] = field(default=lambda s: [])   # must come out unchanged
    check: Callable[[Scratch], bool] | None = None   # an extra condition on the outcome
    signal_after: Callable[[Scratch], bool] | None = None   # send SIGINT once this holds
    says: str = ""                # the error line must contain this


@dataclass
class Outcome:
    case: str
    expected: int
    status: int
    error_lines: int
    traceback: bool
    intact: bool
    ran: bool
    message: str
    says: str = ""

    @property
    def ok(self) -> bool:
        one_line = self.expected == 0 or self.error_lines == 1
        return (self.status == self.expected and one_line and not self.traceback and self.intact and not self.ran
                and self.says in self.message)


def digest(paths: list[Path]) -> dict[str, str]:
    """Content digests of files, and of every file under directories."""
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
        if not p.exists():
            out[str(p)] = "missing"
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def error_lines(stderr: str) -> tuple[int, str]:
    """Lines from the first error (or interruption) line to the end, and that first line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith(("error:", "interrupted")):
            return len(lines) - i, ln
    return (len(lines), lines[-1]) if lines else (0, "")


def run_case(case: Case, base: Path, scratch_root: Path) -> Outcome:
    """Copy the trained pipeline, set the case up, run trkx, and judge the outcome."""
    root = scratch_root / case.name.replace(" ", "_").replace("/", "_")
    shutil.copytree(base, root, symlinks=True)
    s = Scratch(root)
    s.edit_yaml(s.pipeline, workdir=str(s.work))
    args = case.setup(s)
    keep = case.keep(s)
    before = digest(keep)
    # trkx sees Ctrl-C as a user would, however this harness was started: a shell's background job
    # (`cmd &` without job control) ignores SIGINT, and a child would inherit that
    proc = subprocess.Popen(TRKX + args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if case.signal_after is not None:
        t0 = time.time()
        while proc.poll() is None and not case.signal_after(s) and time.time() - t0 < 300:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    n, first = error_lines(err)
    after = digest(keep)
    intact = all(after.get(k) == v for k, v in before.items()) and not list(s.work.rglob(".*.tmp")) and (case.check is None or case.check(s))
    return Outcome(case.name, case.expect, proc.returncode, n if proc.returncode else 0, "Traceback" in err,
                   intact, s.marker.exists(), first if proc.returncode else "", case.says)


# ---------------------------------------------------------------- the cases
def _run(s: Scratch) -> list[str]:
    return ["run", str(s.pipeline), "--no-progress"]


def ckpt_pickle(s: Scratch) -> list[str]:
    weights = s.weights("gnn")
    weights.unlink()                                   # no model.pt: the runner looks at last.ckpt
    plant(weights.parent / "checkpoints" / "last.ckpt", s.marker)
    return _run(s)


def ckpt_pickle_resume(s: Scratch) -> list[str]:
    plant(s.weights("gnn").parent / "checkpoints" / "last.ckpt", s.marker)
    return ["train", str(s.stage_yaml("gnn")), "-p", str(s.pipeline), "--resume"]


def weights_pickle(s: Scratch) -> list[str]:
    plant(s.weights("filter"), s.marker)
    return _run(s)


def event_pickle(s: Scratch) -> list[str]:
    (entry,) = s.entries("labeling")
    plant(sorted((entry / "test").glob("event*.pt"))[0], s.marker)
    return _run(s)


def module_pickle(s: Scratch) -> list[str]:
    plant(s.weights("filter"), s.marker)     # the same loader as a module map, a cut table
    return ["export", str(s.pipeline), str(s.root / "bundle")]


def study_pickle(s: Scratch) -> list[str]:
    plant(s.work / "tune" / "gnn" / "study.db", s.marker)
    space = s.root / "space.yaml"
    space.write_text("epochs: 1\nspace:\n  hidden: {choices: [8, 16]}\n")
    return ["tune", str(s.stage_yaml("gnn")), "-p", str(s.pipeline), "-s", str(space), "-n", "1"]


def _export_to(s: Scratch, where: Path, *extra: str) -> list[str]:
    return ["export", str(s.pipeline), str(where), *extra]


def user_files(s: Scratch) -> Path:
    d = s.root / "mine"
    d.mkdir(exist_ok=True)
    (d / "thesis.tex").write_text("four years of work\n")
    return d


def bundle_at(s: Scratch) -> Path:
    """A bundle exported in the setup (a direct call, not timed as the case).  Every case's
    scratch is a copy of one trained pipeline, so the first case's export is kept beside the
    scratches and later cases copy it (a bundle is self-contained) instead of exporting again."""
    b = s.root / "bundle"
    pristine = s.root.parent / "_exported_bundle"
    if pristine.is_dir():
        shutil.copytree(pristine, b)
    else:
        subprocess.run(TRKX + ["export", str(s.pipeline), str(b)], check=True, capture_output=True, cwd=s.root)
        shutil.copytree(b, pristine)
    return b


def _reco(s: Scratch, bundle: Path, hits: Path | None = None) -> list[str]:
    hits = hits or s.test_csvs(s.root / "hits")
    return ["reco", str(bundle), str(hits), str(s.root / "out"), "--no-progress"]


def manifest_edit(edit: Callable[[dict, Path], object]) -> Callable[[Scratch], list[str]]:
    def setup(s: Scratch) -> list[str]:
        import json
        b = bundle_at(s)
        m = json.loads((b / "manifest.json").read_text())
        m = edit(m, b) or m
        (b / "manifest.json").write_text(json.dumps(m))
        return _reco(s, b)
    return setup


def _swap_filter_gnn(m: dict, b: Path) -> None:
    names = [e["name"] for e in m["stages"]]
    i, j = names.index("filter"), names.index("gnn")
    for key in ("config", "weights", "torchscript"):
        m["stages"][i][key], m["stages"][j][key] = m["stages"][j][key], m["stages"][i][key]


def _bundle_weights_pickle(m: dict, b: Path) -> None:
    """A pickle in weights/ with its sha256 updated, so the loader itself is what refuses it."""
    marker = b.parent / "PLANTED-CODE-RAN"
    plant(b / "weights" / "gnn.pt", marker)
    m["sha256"]["weights/gnn.pt"] = hashlib.sha256((b / "weights" / "gnn.pt").read_bytes()).hexdigest()


def _bundle_replace_torchscript(m: dict, b: Path) -> None:
    (b / "torchscript" / "gnn.pt").write_bytes(b"not a network")


def _bundle_drop_torchscript(m: dict, b: Path) -> None:
    (b / "torchscript" / "gnn.pt").unlink()


def trackml_with(edit: Callable[[Path], None], reco: bool = False) -> Callable[[Scratch], list[str]]:
    """A ``source: trackml`` pipeline (or, with ``reco``, a truth-free reco input) whose first event
    file is edited."""
    def setup(s: Scratch) -> list[str]:
        if reco:
            hits = s.test_csvs(s.root / "hits")
            edit(hits)
            return _reco(s, bundle_at(s), hits)
        edit(s.trackml_source())
        return _run(s)
    return setup


def _edit_first(kind: str, fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        path = sorted(directory.glob(f"event*-{kind}.csv"))[0]
        path.write_text("\n".join(fn(path.read_text().splitlines())) + "\n")
    return edit


def _dup_hit(lines: list[str]) -> list[str]:
    return lines[:3] + [lines[2]] + lines[4:]          # row 3 repeats row 2's hit, row 4's hit is gone


def _float_hit(lines: list[str]) -> list[str]:
    first, rest = lines[1].split(",", 1)
    return [lines[0], f"{first}.5,{rest}"] + lines[2:]


def _module_overflow(lines: list[str]) -> list[str]:
    cols = lines[0].split(",")
    row = lines[1].split(",")
    row[cols.index("module_id")] = "1e30"
    return [lines[0], ",".join(row)] + lines[2:]


def _drop_particle(lines: list[str]) -> list[str]:
    return lines[:1] + lines[2:]                         # the first particle is gone, its hits remain


def stale_tracks(s: Scratch) -> list[str]:
    (s.work / "tracks" / "event999.csv").write_text("hit_id,track_id\n1,0\n")
    return _run(s)


def no_stale_tracks(s: Scratch) -> bool:
    return not (s.work / "tracks" / "event999.csv").exists()


def corrupt_index(s: Scratch) -> list[str]:
    (entry,) = s.entries("data")
    (entry / "index.json").write_text('{"train": [1, 2')
    return _run(s)


def corrupt_time(s: Scratch) -> list[str]:
    (entry,) = s.entries("labeling")
    sorted((entry / "test").glob("*.time.json"))[0].write_text("{not json")
    return _run(s)


def tracks_written(s: Scratch) -> bool:
    return len(list((s.work / "tracks").glob("event*.csv"))) == 2


def mount(s: Scratch, options: str, size: str = "64k") -> Path:
    """A tmpfs of ``size`` at ``root/mnt`` (root only), mounted with ``options``."""
    mnt = s.root / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},{options}", "tmpfs", str(mnt)], check=True,
                   capture_output=True)
    return mnt


def read_only_fs(s: Scratch) -> list[str]:
    """The outputs on a read-only file system (the cache is read, then the first write fails)."""
    s.edit_yaml(s.pipeline, workdir=str(mount(s, "ro")), cachedir=str(s.work))
    return _run(s)


def full_disk(s: Scratch) -> list[str]:
    s.edit_yaml(s.pipeline, workdir=str(mount(s, "rw", "16k")), cachedir=str(s.work))
    return _run(s)


def interrupt_training(s: Scratch) -> list[str]:
    s.edit_yaml(s.stage_yaml("gnn"), epochs=100_000)     # hours: it is stopped long before
    return _run(s)


def training_started(s: Scratch) -> bool:
    """A checkpoint of the new training (a weights entry with no model.pt yet) exists."""
    return any(not (c.parent.parent / "model.pt").exists() for c in (s.work / "gnn").glob("weights-*/checkpoints/last.ckpt"))


def deep_yaml(s: Scratch) -> list[str]:
    s.stage_yaml("gnn").write_text("stage: gnn\nhidden: " + "[" * 100_000 + "]" * 100_000 + "\n")
    return _run(s)


def alias_bomb(s: Scratch) -> list[str]:
    """``features:`` whose first item expands to 9^9 strings through aliases (a few lines of YAML)."""
    nested = ["&a0 [r, r, r, r, r, r, r, r, r]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = s.stage_yaml("data")
    path.write_text(path.read_text() + f"features: [[{', '.join(nested)}]]\n")
    return _run(s)


def _yaml_append(stage: str, text: str) -> Callable[[Scratch], list[str]]:
    def setup(s: Scratch) -> list[str]:
        path = s.stage_yaml(stage)
        path.write_text(path.read_text() + text)
        return _run(s)
    return setup


def _yaml_replace(stage: str, pattern: str, text: str) -> Callable[[Scratch], list[str]]:
    def setup(s: Scratch) -> list[str]:
        path = s.stage_yaml(stage)
        path.write_text(re.sub(pattern, text, path.read_text(), flags=re.M))
        return _run(s)
    return setup


def _stage_key(stage: str, **changes) -> Callable[[Scratch], list[str]]:
    def setup(s: Scratch) -> list[str]:
        s.edit_yaml(s.stage_yaml(stage), **changes)
        return _run(s)
    return setup


def _pipeline_key(**changes) -> Callable[[Scratch], list[str]]:
    def setup(s: Scratch) -> list[str]:
        s.edit_yaml(s.pipeline, **changes)
        return _run(s)
    return setup


def workdir_file(s: Scratch) -> list[str]:
    f = s.root / "afile"
    f.write_text("x\n")
    s.edit_yaml(s.pipeline, workdir=str(f))
    return _run(s)


def data_only(s: Scratch) -> list[str]:
    s.edit_yaml(s.pipeline, stages=[])
    return _run(s)


def cache(s: Scratch) -> list[Path]:
    return [s.work]


def weights_and_data(s: Scratch) -> list[Path]:
    return [p for p in s.work.glob("*/weights-*/model.pt")] + [s.work / "data"]


CASES = [
    # critical: code from the cache
    Case("pickle in last.ckpt, trkx run", ckpt_pickle, keep=weights_and_data),
    Case("pickle in last.ckpt, train --resume", ckpt_pickle_resume, keep=weights_and_data),
    Case("pickle in a weights file", weights_pickle, keep=lambda s: [s.work / "data"]),
    Case("pickle in an event graph", event_pickle, keep=weights_and_data),
    Case("pickle in weights, export", module_pickle, keep=lambda s: [s.work / "data"]),
    Case("pickle as the study database", study_pickle, keep=weights_and_data),
    Case("pickle in bundle weights/", manifest_edit(_bundle_weights_pickle)),
    # high: export deleting its target
    Case("export into a dir of user files", lambda s: _export_to(s, user_files(s)), keep=lambda s: [s.root / "mine"]),
    Case("export into the workdir", lambda s: _export_to(s, s.work), keep=cache),
    Case("export into the workdir, --overwrite", lambda s: _export_to(s, s.work, "--overwrite"), keep=cache),
    Case("export into the cwd", lambda s: _export_to(s, Path(".")), keep=lambda s: [s.root / "configs", s.work]),
    Case("export over an earlier bundle", lambda s: _export_to(s, bundle_at(s)), expect=0, keep=cache),
    # medium: sizes, hit ids, silent value changes
    Case("n_train 10^12", _stage_key("data", n_train=10**12), keep=cache),
    Case("duplicate hit ids, run", trackml_with(_edit_first("hits", _dup_hit)), keep=cache),
    Case("duplicate hit ids, reco (no truth)", trackml_with(_edit_first("hits", _dup_hit), reco=True),
         check=lambda s: not list((s.root / "out").glob("event*.csv"))),
    Case("float hit id", trackml_with(_edit_first("hits", _float_hit)), keep=cache),
    Case("module_id 1e30", trackml_with(_edit_first("hits", _module_overflow)), keep=cache),
    Case("particle missing from particles.csv", trackml_with(_edit_first("particles", _drop_particle)), keep=cache),
    Case("r: 1e400 (inf)", _yaml_replace("graph", r"^r: .*$", "r: 1e400"), keep=cache,
         says="not a finite number"),
    Case("duplicate YAML key", _yaml_append("gnn", "hidden: 32\n"), keep=cache, says="given twice"),
    # tracebacks where one line is promised
    Case("corrupt index.json (remade)", corrupt_index, expect=0, keep=lambda s: [s.work / "gnn"], check=tracks_written),
    Case("corrupt .time.json (recomputed)", corrupt_time, expect=0, keep=lambda s: [s.work / "gnn"],
         check=tracks_written),
    Case("read-only file system", read_only_fs, keep=cache, says="read-only file system"),
    Case("full disk", full_disk, keep=cache, says="no space left"),
    Case("workdir is a file", workdir_file, keep=lambda s: [s.root / "afile"]),
    Case("hidden: 10**20", _stage_key("gnn", hidden=10**20), keep=cache),
    Case("hidden: 10**12", _stage_key("gnn", hidden=10**12), keep=cache),
    Case("100k-deep YAML", deep_yaml, keep=cache),
    Case("bundle: replaced TorchScript", manifest_edit(_bundle_replace_torchscript)),
    Case("bundle: missing TorchScript", manifest_edit(_bundle_drop_torchscript)),
    Case("bundle: manifest is a list", manifest_edit(lambda m, b: [m])),
    Case("bundle: manifest lacks data", manifest_edit(lambda m, b: {k: v for k, v in m.items() if k != "data"})),
    Case("SIGINT during training", interrupt_training, expect=130, signal_after=training_started, keep=weights_and_data,
         says="resumes from"),
    Case("data-only pipeline", data_only, expect=0, keep=weights_and_data),
    # low
    Case("YAML alias bomb under features", alias_bomb, keep=cache),
    Case("stage name ../../x", _yaml_append("labeling", "name: ../../x\n"), keep=cache,
         check=lambda s: not (s.root.parent / "x").exists()),
    Case("manifest path outside the bundle", manifest_edit(
        lambda m, b: m["stages"][0].update(config="../../../../../../etc/passwd"))),
    Case("manifest with filter and GNN swapped", manifest_edit(_swap_filter_gnn)),
    Case("stale track file of a dropped event", stale_tracks, expect=0, check=no_stale_tracks),
]


def prepare(root: Path) -> Path:
    """The tiny test pipeline, trained once under ``root/base``: every case starts from a copy."""
    base = root / "base"
    shutil.copytree(TINY_CONFIGS, base / "configs")
    s = Scratch(base)
    s.edit_yaml(s.pipeline, workdir=str(s.work))
    subprocess.run(TRKX + _run(s), check=True, capture_output=True, cwd=base)
    return base


def short(line: str) -> str:
    """An error line with the scratch paths cut to their last two parts."""
    return re.sub(r"/\S*/([^/\s]+/[^/\s]+)", r"…/\1", line)[:150]


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | exit (expected) | error lines | data intact | planted code ran | first error line |",
            "|---|---|---|---|---|---|"]
    for o in outcomes:
        lines = "—" if o.expected == 0 else str(o.error_lines) + (" + traceback" if o.traceback else "")
        rows.append(f"| {o.case} | {o.status} ({o.expected}) | {lines} | {'yes' if o.intact else 'NO'} | "
                    f"{'YES' if o.ran else 'no'} | {short(o.message).replace('|', '/')} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="Work under this directory and keep it (default: a temporary one).")
    ap.add_argument("--only", help="Run only the cases whose name contains this.")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="trkx-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.time()
        base = prepare(root)
        outcomes = []
        for case in CASES:
            if a.only and a.only not in case.name:
                continue
            outcomes.append(run_case(case, base, root / "cases"))
            print(f"{'ok ' if outcomes[-1].ok else 'BAD'} {case.name}", file=sys.stderr, flush=True)
        print(table(outcomes))
        bad = [o.case for o in outcomes if not o.ok]
        print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} cases as guaranteed ({time.time() - t0:.0f} s)"
              + (f"; failing: {', '.join(bad)}" if bad else ""))
        return 1 if bad else 0
    finally:
        for mnt in (root / "cases").glob("*/mnt"):
            subprocess.run(["umount", str(mnt)], capture_output=True)
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
