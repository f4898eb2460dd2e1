"""The fault and attack battery (benchmarks/faults.py) as tests: every case through the real
command line on a copy of a trained tiny pipeline: the expected exit status, one error line, the
data it must not touch intact, and no planted code run."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("faults", Path(__file__).parents[1] / "benchmarks" / "faults.py")
faults = importlib.util.module_from_spec(_spec)
sys.modules["faults"] = faults            # its dataclasses look their module up there
_spec.loader.exec_module(faults)

NEEDS_MOUNT = {"read-only file system", "full disk"}


def _can_mount(tmp: Path) -> bool:
    target = tmp / "probe"
    target.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(target)],
                                           capture_output=True).returncode != 0:
        return False
    subprocess.run(["umount", str(target)], capture_output=True)
    return True


@pytest.fixture(scope="module")
def battery_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return faults.prepare(root), root, _can_mount(root)


@pytest.mark.parametrize("case", faults.CASES, ids=[c.name for c in faults.CASES])
def test_fault_case(case, battery_base):
    base, root, can_mount = battery_base
    if case.name in NEEDS_MOUNT and not can_mount:
        pytest.skip("needs root and mount to make a read-only or full file system")
    try:
        outcome = faults.run_case(case, base, root / "cases")
    finally:
        for mnt in (root / "cases").glob("*/mnt"):
            subprocess.run(["umount", str(mnt)], capture_output=True)
    assert outcome.ok, faults.table([outcome])
