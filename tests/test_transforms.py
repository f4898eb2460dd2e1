"""Ariadne-style transforms on a hand-made hit table."""
import numpy as np
import pandas as pd
import pytest

from trkx.config import ConfigError
from trkx.stages.data.transforms import (Compose, ConstraintsNormalize, DropFakes, DropShort, DropSpinningTracks,
                                         MinMaxScale, Normalize, PtCut, StandardScale, ToBuckets, ToCartesian,
                                         ToCylindrical, build_transforms, length_buckets)


@pytest.fixture
def table():
    # particle 1: 3 hits moving outwards; particle 2: 2 hits; particle 3: a looper (moves inwards at hit 2); noise
    return pd.DataFrame({
        "hit_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "x": [30.0, 70.0, 110.0, 0.0, 0.0, 40.0, 60.0, 5.0],
        "y": [0.0, 0.0, 0.0, 30.0, 70.0, 0.0, 0.0, 5.0],
        "z": [10.0, 20.0, 30.0, -5.0, -10.0, 0.0, 0.0, 1.0],
        "tpx": [1.0, 1.0, 1.0, 0.0, 0.0, 0.3, -0.3, 0.0],
        "tpy": [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        "particle_id": [1, 1, 1, 2, 2, 3, 3, 0],
        "pt": [2.0, 2.0, 2.0, 0.6, 0.6, 0.3, 0.3, 0.0],
    })


def test_cylindrical_and_back(table):
    cyl = ToCylindrical()(table)
    assert cyl.r.tolist()[:2] == [30.0, 70.0]
    assert cyl.phi[3] == pytest.approx(np.pi / 2)
    back = ToCartesian()(cyl.drop(columns=["x", "y"]))
    assert np.allclose(back.x, table.x) and np.allclose(back.y, table.y, atol=1e-12)


def test_scalings(table):
    t = ToCylindrical()(table)
    s = StandardScale(columns=["r"])(t)
    assert s.r.mean() == pytest.approx(0) and s.r.std(ddof=0) == pytest.approx(1)
    m = MinMaxScale(columns=["z"], lo=-1, hi=1)(t)
    assert (m.z.min(), m.z.max()) == (-1, 1)
    n = Normalize(columns=["r", "z"], scales=[10.0, 2.0])(t)
    assert n.r[0] == 3.0 and n.z[0] == 5.0


def test_drops(table):
    assert 0 not in DropFakes()(table).particle_id.tolist()
    assert set(DropShort(min_hits=3)(table).particle_id) == {1, 0}
    assert set(DropSpinningTracks()(table).particle_id) == {1, 2, 0}
    assert set(PtCut(min_pt=0.5)(table).particle_id) == {1, 2, 0}
    assert set(PtCut(min_pt=0.5, drop_noise=True)(table).particle_id) == {1, 2}


def test_compose_from_yaml(table):
    c = build_transforms([{"name": "DropFakes"}, {"name": "PtCut", "min_pt": 1.0}], "data.yaml")
    assert isinstance(c, Compose)
    assert c(table).particle_id.unique().tolist() == [1]
    with pytest.raises(ConfigError, match="data.yaml: unknown key 'transforms\\[0\\].min_p'"):
        build_transforms([{"name": "PtCut", "min_p": 1.0}], "data.yaml")
    with pytest.raises(ConfigError, match="Normalize: columns and scales differ"):
        build_transforms([{"name": "Normalize", "columns": ["r"], "scales": [1.0, 2.0]}], "data.yaml")


def test_constraints_normalize_uses_the_detector_not_the_event(table):
    t = ConstraintsNormalize(columns=["x", "z"], constraints={"x": [-200.0, 200.0], "z": [-50.0, 50.0]})(table)
    assert t.x.tolist()[:3] == pytest.approx([0.15, 0.35, 0.55])      # 2 (x + 200) / 400 - 1
    assert t.z[0] == pytest.approx(0.2) and t.y.equals(table.y)
    # one event's own extents do not move the mapping (MinMaxScale's would)
    half = ConstraintsNormalize(columns=["x"], constraints={"x": [-200.0, 200.0]})(table.iloc[:2])
    assert half.x.tolist() == pytest.approx([0.15, 0.35])


def test_constraints_normalize_rejects_hits_outside_and_bad_constraints(table):
    with pytest.raises(ValueError, match=r"row 2: x = 110.0 outside"):
        ConstraintsNormalize(columns=["x"], constraints={"x": [-100.0, 100.0]})(table)
    with pytest.raises(ConfigError, match="constraints"):
        build_transforms([{"name": "ConstraintsNormalize", "columns": ["x"], "constraints": {"x": [1.0, 1.0]}}], "data.yaml")


def test_to_buckets_groups_tracks_by_length(table):
    b = ToBuckets()(table)
    assert b.bucket.tolist() == [0, 2, 2, 2, 2, 3, 3, 3]        # noise, the two 2-hit tracks, the 3-hit one
    assert b.hit_id.tolist() == [8, 4, 5, 6, 7, 1, 2, 3]           # each track's hits keep their order
    capped = ToBuckets(min_length=3, max_length=2)
    with pytest.raises(ValueError):
        capped.validate()
    only_long = ToBuckets(min_length=3)(table)
    assert set(only_long.particle_id) == {0, 1}


def test_length_buckets_batches_items_of_one_length():
    lengths = np.array([3, 5, 3, 3, 5, 4, 3])
    batches = length_buckets(lengths, batch_size=2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    assert all(len(set(lengths[b])) == 1 and len(b) <= 2 for b in batches)
    shuffled = length_buckets(lengths, 2, np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(7))
