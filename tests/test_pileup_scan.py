"""benchmarks/pileup_scan.py end to end on a tiny chain trained on Z -> mu mu + pile-up events."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from conftest import make_pipeline

pytest.importorskip("pythia8mc")
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("pileup_scan", BENCHMARKS / "pileup_scan.py")
pileup_scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pileup_scan)

COLLISIONS = {"generator": "pythia8", "collisions": {"hard_process": "zmumu", "pileup": 3.0}}


@pytest.fixture(scope="module")
def zmumu_chain(tmp_path_factory):
    from trkx.runner import run_pipeline
    root = tmp_path_factory.mktemp("zmumu")
    path = make_pipeline(root, {"data": {"simulation": COLLISIONS}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"])
    run_pipeline(path)
    return root, path


def test_scan_runs_the_chain_and_the_ckf_at_each_mu(zmumu_chain):
    root, path = zmumu_chain
    out = root / "scan"
    assert pileup_scan.main([str(path), "--mu", "0", "6", "--events", "1", "--out", str(out)]) == 0
    scan = json.loads((out / "scan.json").read_text())
    rows = {r["mu"]: r for r in scan["rows"]}
    assert set(rows) == {0.0, 6.0}
    # pile-up adds hits and graph edges; every stage and the CKF are timed
    assert rows[6.0]["chain"]["hits_per_event"] > rows[0.0]["chain"]["hits_per_event"]
    assert rows[6.0]["chain"]["edges_per_event"]["module_map"] > rows[0.0]["chain"]["edges_per_event"]["module_map"]
    for r in rows.values():
        assert set(r["chain"]["stage_seconds"]) == {"module_map", "gnn", "labeling"}
        assert r["ckf"]["seconds_per_event"] > 0 and r["chain"]["peak_rss_gib"] > 0
        assert 0 <= r["chain"]["scores"]["ckf"]["track_efficiency"] <= 1
    table = (out / "scan.md").read_text()
    assert "chain / CKF" in table and (out / "scan.png").stat().st_size > 0
    # the allocator benchmark on the scan's events: both settings run the same chain to the same tracks
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import allocator
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert allocator.main([str(path), str(out / "mu6"), "--events", "1"]) == 0
    rows = json.loads((out / "mu6" / "allocator.json").read_text())
    assert list(rows) == list(allocator.SETTINGS)
    assert [r["freed_memory_kept"] for r in rows.values()] == [False, True]
    effs = {r["scores"]["gnn"]["track_efficiency"] for r in rows.values()}
    assert len(effs) == 1 and "freed memory kept / glibc defaults" in (out / "mu6" / "allocator.md").read_text()
    assert allocator.main([str(path), str(root), "--events", "1"]) == 2      # no ckf/ there


def test_scan_refuses_gun_events_and_the_training_seed(zmumu_chain, tmp_path):
    root, path = zmumu_chain
    gun = make_pipeline(tmp_path)
    assert pileup_scan.main([str(gun), "--mu", "0"]) == 2
    assert pileup_scan.main([str(path), "--seed", "99", "--mu", "0"]) == 2
