"""Simulation, TrackML / ACTS readers, and bad-input handling."""
import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from trkx.io.acts import decode_geometry_id, trackml_weights
from trkx.io.trackml import DataError, read_trackml_event, write_trackml_event
from trkx.simulation import SimulationConfig, simulate_events
from trkx.stages.data.source import DataConfig, build_event, hit_table, truth_track_edges


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    cfg = SimulationConfig(n_vertices=2, particles_per_vertex=10, pt_min=1.0)
    ids = simulate_events(cfg, 2, seed=5, out_dir=d, first_event_id=1000, progress=False)
    assert ids == [1000, 1001]
    return d


def test_simulated_event_is_trackml_like(sim_dir):
    t = read_trackml_event(sim_dir, 1000)
    assert list(t.hits.columns) == ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"]
    assert set(t.hits.volume_id) <= {7, 8, 9, 12, 13, 14, 16, 17, 18}
    assert len(t.hits) > 100 and len(t.particles) >= 20
    assert t.truth.weight.sum() == pytest.approx(1.0, abs=1e-6)
    assert (t.truth.weight >= 0).all()
    # measurements lie near the true crossing: pixel smearing is 50 um / sqrt(12)
    pix = t.hits.volume_id.isin([7, 8, 9]).to_numpy()
    d = np.sqrt(((t.hits[["x", "y", "z"]].to_numpy() - t.truth[["tx", "ty", "tz"]].to_numpy()) ** 2).sum(1))
    assert np.median(d[pix]) < 0.05 and d[pix].max() < 1.0


def test_simulation_is_reproducible(tmp_path, sim_dir):
    cfg = SimulationConfig(n_vertices=2, particles_per_vertex=10, pt_min=1.0)
    simulate_events(cfg, 2, seed=5, out_dir=tmp_path, first_event_id=1000, progress=False)
    for kind in ("hits", "truth", "particles"):
        assert (tmp_path / f"event000001001-{kind}.csv").read_text() == \
            (sim_dir / f"event000001001-{kind}.csv").read_text()


def test_write_read_roundtrip_and_gz(sim_dir, tmp_path):
    t = read_trackml_event(sim_dir, 1001)
    write_trackml_event(tmp_path / "plain", t)
    write_trackml_event(tmp_path / "gz", t, compress=True)
    assert (tmp_path / "gz" / "event000001001-hits.csv.gz").exists()
    for d in ("plain", "gz"):
        back = read_trackml_event(tmp_path / d, 1001)
        pd.testing.assert_frame_equal(back.hits, t.hits)
        pd.testing.assert_frame_equal(back.truth, t.truth)
        pd.testing.assert_frame_equal(back.particles, t.particles)


def test_reader_accepts_unpadded_gz_names(sim_dir, tmp_path):
    for kind in ("hits", "truth", "particles"):
        with open(sim_dir / f"event000001000-{kind}.csv", "rb") as src, \
                gzip.open(tmp_path / f"event1000-{kind}.csv.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert len(read_trackml_event(tmp_path, 1000).hits) == len(read_trackml_event(sim_dir, 1000).hits)


def _copy(sim_dir, tmp_path):
    for p in sim_dir.glob("event000001000-*"):
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def test_missing_file(sim_dir, tmp_path):
    d = _copy(sim_dir, tmp_path)
    (d / "event000001000-truth.csv").unlink()
    with pytest.raises(DataError, match="event000001000-truth.csv: file not found"):
        read_trackml_event(d, 1000)


def test_truncated_csv_names_row(sim_dir, tmp_path):
    d = _copy(sim_dir, tmp_path)
    path = d / "event000001000-hits.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10] + [lines[10][:12]]) + "\n")   # cut mid-row
    with pytest.raises(DataError, match=r"hits.csv: row 10 \(line 11\): .*is missing"):
        read_trackml_event(d, 1000)


def test_nan_coordinate_names_row_and_column(sim_dir, tmp_path):
    d = _copy(sim_dir, tmp_path)
    path = d / "event000001000-hits.csv"
    df = pd.read_csv(path)
    df.loc[4, "z"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"hits.csv: row 5 \(line 6\): column 'z'"):
        read_trackml_event(d, 1000)


def test_empty_event(sim_dir, tmp_path):
    d = _copy(sim_dir, tmp_path)
    for kind in ("hits", "truth"):
        path = d / f"event000001000-{kind}.csv"
        path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match="event has no hits"):
        read_trackml_event(d, 1000)


def test_garbage_file(sim_dir, tmp_path):
    d = _copy(sim_dir, tmp_path)
    (d / "event000001000-particles.csv").write_bytes(b"")
    with pytest.raises(DataError, match="particles.csv: empty file"):
        read_trackml_event(d, 1000)


def test_event_graph_fields(sim_dir):
    t = read_trackml_event(sim_dir, 1000)
    e = build_event(hit_table(t), DataConfig(), 1000, "x")
    n = len(t.hits)
    for f in ("hit_id", "x", "r", "phi", "z", "region", "volume_id", "layer_id", "module_id", "particle_id",
              "pt", "eta", "weight"):
        assert e[f].shape[0] == n, f
    assert e.x.shape == (n, 3) and e.region.unique().tolist() == [0, 1, 2]
    # truth edges join hits of one particle, and every particle with k hits has k-1 edges
    te = e.track_edges
    assert (e.particle_id[te[0]] == e.particle_id[te[1]]).all()
    counts = np.bincount(pd.factorize(t.truth.particle_id)[0])
    assert te.shape[1] == int((counts - 1).sum())


def test_truth_edges_follow_distance_order():
    pid = np.array([5, 5, 5, 7, 7, 0, 0])
    dist = np.array([3.0, 1.0, 2.0, 9.0, 4.0, 1.0, 2.0])
    edges = truth_track_edges(pid, dist)
    assert sorted(map(tuple, edges.T.tolist())) == [(1, 2), (2, 0), (4, 3)]


def test_geometry_id_decoding():
    gid = np.array([(8 << 56) | (4 << 36) | (123 << 8)], dtype=np.uint64).astype(np.int64)
    v, l, m = decode_geometry_id(gid)
    assert (v[0], l[0], m[0]) == (8, 4, 123)


def test_trackml_weights_zero_for_short_and_noise():
    pid = np.array([1, 1, 1, 2, 2, 2, 2, 0])
    order = np.array([0, 1, 2, 0, 1, 2, 3, 0])
    nhits = np.array([3, 3, 3, 4, 4, 4, 4, 1])
    w = trackml_weights(pid, order, nhits, np.full(8, 5.0))
    assert w[:3].sum() == 0 and w[7] == 0 and w.sum() == pytest.approx(1.0)
    assert w[3] > w[5]  # the first hit weighs more than a middle one


def test_a_source_is_a_registered_format_or_a_generator(tmp_path):
    """`source:` takes the generators (simulate, pct) and every format registered in trkx.io; a
    registered format is what the data stage and `trkx reco` read."""
    from trkx.config import ConfigError, parse_config
    from trkx.io import FORMATS, detect_format, register_format
    from trkx.stages.data.source import DataConfig
    with pytest.raises(ConfigError, match=r"key 'source': expected one of 'pct', 'simulate', 'acts', 'trackml'"):
        parse_config(DataConfig, {"source": "toyfmt", "input_dir": "x"}, "data.yaml")
    register_format("toyfmt", r"toy\d+\.txt$", lambda d: [1], lambda d, i, require_truth=True: None)
    try:
        assert parse_config(DataConfig, {"source": "toyfmt", "input_dir": "x"}, "data.yaml").source == "toyfmt"
        (tmp_path / "toy1.txt").write_text("")
        assert detect_format(tmp_path).name == "toyfmt"
    finally:
        del FORMATS["toyfmt"]
