"""Tracks as TrackML CSV, Parquet and ROOT: each reads back to the same hit -> track map."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import uproot
from click.testing import CliRunner
from torch_geometric.data import Data

from trkx.cli import main
from trkx.errors import DataError
from trkx.evaluate import evaluate, read_tracks
from trkx.io.tracks import read_track_file, track_file, track_table, write_track_file
from trkx.runner import Pipeline


def _fitted_event() -> Data:
    """Six hits on two fitted tracks and one hit on none, as a condensation stage leaves them."""
    track_id = torch.tensor([0, 0, 0, 1, 1, -1, 1])
    return Data(hit_id=torch.arange(10, 17), track_id=track_id,
                track_pt=torch.tensor([1.5, 1.5, 1.5, 0.7, 0.7, float("nan"), 0.7]),
                track_eta=torch.tensor([0.1, 0.1, 0.1, -2.0, -2.0, float("nan"), -2.0]))


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_fitted_tracks_read_back_with_their_parameters(tmp_path, fmt):
    path = track_file(tmp_path, 7, fmt)
    write_track_file(track_table(_fitted_event(), fmt), path)
    back = read_track_file(path)
    assert list(back.columns) == ["hit_id", "track_id", "track_pt", "track_eta", "track_hits"]
    assert back.hit_id.tolist() == list(range(10, 17)) and back.track_id.tolist() == [0, 0, 0, 1, 1, -1, 1]
    assert back.track_hits.tolist() == [3, 3, 3, 3, 3, 0, 3]
    assert np.allclose(back.track_pt.to_numpy()[[0, 3]], [1.5, 0.7])
    if fmt == "root":     # a real TTree, for ROOT users: named, with one branch per column
        with uproot.open(path) as f:
            assert f["tracks"].num_entries == 7 and "track_eta" in f["tracks"].keys()


def test_the_csv_stays_the_two_column_trackml_submission(tmp_path):
    path = track_file(tmp_path, 7, "csv")
    write_track_file(track_table(_fitted_event(), "csv"), path)
    assert path.read_text().splitlines()[:2] == ["hit_id,track_id", "10,0"]


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_reco_writes_the_same_hit_track_map_in_every_format(tiny_run, tmp_path, fmt):
    pipe, outputs, _ = tiny_run
    csv = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    ids = [int(p.stem[5:]) for p in outputs[0].paths["test"]]
    (tmp_path / "hits").mkdir()
    for i in ids:
        shutil.copy(csv / f"event{i:09d}-hits.csv", tmp_path / "hits")
    result = CliRunner().invoke(main, ["reco", str(pipe.path), str(tmp_path / "hits"), str(tmp_path / "out"),
                                       "--no-progress", "--format", fmt])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("event*")) == sorted(f"event{i}.{fmt}" for i in ids)
    pd.testing.assert_frame_equal(read_tracks(tmp_path / "out", ids), read_tracks(pipe.workdir / "tracks", ids))


def test_run_in_another_format_replaces_the_csvs_and_gives_the_same_metrics(tiny_run, tmp_path):
    pipe, outputs, _ = tiny_run
    other = Pipeline(pipe.path, progress=False, track_format="root")
    other.workdir = tmp_path / "work"          # the same cache, outputs elsewhere
    (other.workdir / "tracks").mkdir(parents=True)
    (other.workdir / "tracks" / "event1.csv").write_text("hit_id,track_id\n1,0\n")   # an earlier run's
    metrics = evaluate(other, other.run())
    names = sorted(p.name for p in (other.workdir / "tracks").iterdir())
    assert names == sorted(f"{p.stem}.root" for p in outputs[0].paths["test"])
    mine = evaluate(pipe, outputs)
    for key in ("track_efficiency", "fake_rate", "duplicate_rate", "trackml_score"):
        assert metrics[key] == mine[key]


def test_a_corrupt_or_ambiguous_track_file_is_named(tmp_path):
    bad = tmp_path / "event3.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="event3.parquet: unreadable parquet"):
        read_tracks(tmp_path, [3])
    (tmp_path / "event3.csv").write_text("hit_id,track_id\n1,0\n")
    with pytest.raises(DataError, match="more than one format"):
        read_tracks(tmp_path, [3])


def test_an_unknown_format_is_refused_before_any_work(tiny_run, tmp_path):
    result = CliRunner().invoke(main, ["reco", str(tiny_run[0].path), str(tmp_path), str(tmp_path / "o"),
                                       "--format", "hdf5"])
    assert result.exit_code == 2 and "hdf5" in result.output
