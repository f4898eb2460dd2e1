"""Runner: outputs contract, cache reuse, selective recompute, --force, resume, reproducibility."""
import json
import os
import subprocess

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from trkx.cli import main
from trkx.evaluate import evaluate, read_tracks, track_level, truth_table
from trkx.runner import Pipeline, run_pipeline
from trkx.storage import CorruptEntryError, load_event, writer_tag

from conftest import make_pipeline


def test_outputs_contract(tiny_run):
    pipe, outputs, _ = tiny_run
    work = pipe.workdir
    test_ids = [p.stem for p in outputs[0].paths["test"]]
    for eid in test_ids:
        df = pd.read_csv(work / "tracks" / f"{eid}.csv")
        assert list(df.columns) == ["hit_id", "track_id"]
        event = load_event(outputs[0].paths["test"][test_ids.index(eid)])
        assert sorted(df.hit_id) == sorted(event.hit_id.tolist())
    timing = json.loads((work / "timing.json").read_text())
    assert set(timing["order"]) == {"embedding", "graph", "filter", "gnn", "labeling", "total"}
    assert all(timing["stages"][s]["n"] == len(test_ids) for s in timing["order"])
    # every cached event graph carries the stage's fields under the data-model names
    last = load_event(outputs[-1].paths["test"][0])
    for field in ("embedding", "edge_index", "y", "filter_score", "gnn_score", "track_id", "track_edges"):
        assert field in last, field


def test_metrics_recompute_from_track_files(tiny_run):
    pipe, outputs, _ = tiny_run
    metrics = evaluate(pipe, outputs)
    on_disk = json.loads((pipe.workdir / "metrics.json").read_text())
    truth = truth_table(outputs[0].paths["test"])
    again = track_level(truth, read_tracks(pipe.workdir / "tracks", sorted(truth.event_id.unique())),
                        pipe.config.evaluation)
    for key in ("track_efficiency", "fake_rate", "duplicate_rate", "trackml_score"):
        assert on_disk[key] == pytest.approx(again[key]) == pytest.approx(metrics[key])
    for key in ("edge", "v_score", "v_score_weighted"):
        assert key in on_disk
    assert set(on_disk["edge"]) == {"graph", "filter", "gnn"}


def test_second_run_hits_cache_and_is_fast(tiny_run):
    pipe, outputs, first = tiny_run
    _, again, second = run_pipeline(pipe.path)
    assert all(o.computed == 0 for o in again)
    assert [o.fingerprint for o in again] == [o.fingerprint for o in outputs]
    assert second * 5 < first, (first, second)


def test_changing_one_stage_recomputes_it_and_after(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    # same workdir, the filter cut changed
    path = make_pipeline(tmp_path, {"filter": {"cut": 0.2}}, workdir=str(pipe.workdir))
    _, new, _ = run_pipeline(path)
    computed = {o.name: o.computed for o in new}
    assert computed["data"] == computed["embedding"] == computed["graph"] == 0
    assert computed["filter"] > 0 and computed["gnn"] > 0 and computed["labeling"] > 0


def test_force_recomputes_named_stage_onwards(tiny_run):
    pipe, outputs, _ = tiny_run
    p = Pipeline(pipe.path)
    new = p.run(force=["gnn"])
    computed = {o.name: o.computed for o in new}
    assert computed["graph"] == 0 and computed["filter"] == 0
    assert computed["gnn"] > 0 and computed["labeling"] > 0
    # retraining with the same seed reproduces the weights, hence the same fingerprints
    assert [o.fingerprint for o in new] == [o.fingerprint for o in outputs]


def test_same_config_same_tracks(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    path = make_pipeline(tmp_path)
    other, new, _ = run_pipeline(path)
    mine, theirs = sorted((pipe.workdir / "tracks").iterdir()), sorted((other.workdir / "tracks").iterdir())
    assert [p.name for p in mine] == [p.name for p in theirs] and len(mine) == pipe.data.config.n_test
    for a, b in zip(mine, theirs):
        assert a.read_text() == b.read_text()


def test_killed_run_resumes_to_the_same_result(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    path = make_pipeline(tmp_path)
    first, out1, _ = run_pipeline(path)
    tracks1 = {p.name: p.read_text() for p in (first.workdir / "tracks").iterdir()}
    # emulate a kill in the middle of the gnn and labeling stages: some entries missing, a temp file left
    gnn_dir = first.workdir / "gnn" / out1[4].fingerprint / "test"
    victim = sorted(gnn_dir.glob("*.pt"))[0]
    victim.unlink()
    dead = subprocess.Popen(["true"])
    dead.wait()                       # a writer that has ended: its temporary file is stale
    (gnn_dir / f".{victim.name}.{writer_tag(dead.pid)}.abc123.tmp").write_bytes(b"partial")
    live = gnn_dir / f".{victim.name}.{writer_tag(os.getpid())}.abc456.tmp"
    live.write_bytes(b"still being written")     # a live writer's (this process's): kept
    for p in (first.workdir / "labeling" / out1[5].fingerprint).rglob("*.pt"):
        p.unlink()
    second, out2, _ = run_pipeline(path)
    assert {o.name: o.computed for o in out2}["gnn"] == 1
    assert list(gnn_dir.glob("*.tmp")) == [live]
    assert {p.name: p.read_text() for p in (second.workdir / "tracks").iterdir()} == tracks1


def test_corrupt_cache_entry_is_reported(tmp_path, tiny_run):
    pipe, outputs, _ = tiny_run
    path = make_pipeline(tmp_path)
    first, out1, _ = run_pipeline(path)
    entry = out1[2].paths["test"][0]
    entry.write_bytes(entry.read_bytes()[:100])   # truncated archive
    with pytest.raises(CorruptEntryError, match=entry.name):
        load_event(entry)
    # the stage after it reads it: the run stops with the file named, nothing half-written
    result = CliRunner().invoke(main, ["run", str(path), "--force", "filter", "--no-progress"])
    assert result.exit_code == 2 and entry.name in result.output
    assert not list(first.workdir.rglob("*.tmp"))


def test_force_unknown_stage(tiny_run):
    pipe, _, _ = tiny_run
    result = CliRunner().invoke(main, ["run", str(pipe.path), "--force", "gnnn"])
    assert result.exit_code == 2 and "unknown stage 'gnnn'" in result.output


def test_cli_run_prints_timing_and_headline(tiny_run):
    pipe, _, _ = tiny_run
    result = CliRunner().invoke(main, ["run", str(pipe.path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "track efficiency" in result.output and "TrackML score" in result.output


def test_train_and_infer_commands(tiny_run):
    pipe, _, _ = tiny_run
    stage_yaml = pipe.stage_paths[3]   # gnn
    result = CliRunner().invoke(main, ["train", str(stage_yaml), "--pipeline", str(pipe.path)])
    assert result.exit_code == 0, result.output
    assert "trained gnn" in result.output
    result = CliRunner().invoke(main, ["infer", str(pipe.stage_paths[1]), "--pipeline", str(pipe.path)])
    assert result.exit_code == 0 and "graph:" in result.output
    result = CliRunner().invoke(main, ["train", str(pipe.stage_paths[1]), "--pipeline", str(pipe.path)])
    assert result.exit_code == 2 and "nothing to train" in result.output


def test_empty_input_directory(tmp_path):
    path = make_pipeline(tmp_path)
    data = path.parent / "stages" / "data.yaml"
    cfg = yaml.safe_load(data.read_text())
    cfg.update({"source": "trackml", "input_dir": str(tmp_path / "empty")})
    (tmp_path / "empty").mkdir()
    data.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2 and "no event*-hits.csv files found" in result.output


def test_unreadable_weights_named(tmp_path):
    path = make_pipeline(tmp_path)
    pipe, outputs, _ = run_pipeline(path)
    weights = next((pipe.cachedir / "filter").glob("weights-*/model.pt"))
    weights.write_bytes(b"not a torch file")
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2 and "model.pt: cannot read weights file (not a torch file" in result.output


def test_stages_after_the_last_trained_one_run_on_test_events_only(tiny_run):
    pipe, outputs, _ = tiny_run
    by_name = {o.name: o for o in outputs}
    # the GNN trains on the filter's train/val outputs; labeling trains nothing, so the GNN and
    # the labeling only need the test events
    assert len(by_name["filter"].paths["train"]) == pipe.data.config.n_train
    assert by_name["gnn"].paths["train"] == by_name["labeling"].paths["val"] == []
    assert len(by_name["labeling"].paths["test"]) == pipe.data.config.n_test
    assert not list((pipe.cachedir / "labeling" / by_name["labeling"].fingerprint).glob("train/*.pt"))


def trackml_input_pipeline(root, csv_dir):
    """The tiny module-map chain reading TrackML CSVs from ``csv_dir``."""
    path = make_pipeline(root, {"data": {"source": "trackml", "input_dir": str(csv_dir)}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"])
    return path


def test_changed_input_file_recomputes_and_gives_new_tracks(tmp_path, tiny_run):
    import shutil
    pipe, outputs, _ = tiny_run
    csv = tmp_path / "input"
    shutil.copytree(pipe.cachedir / "data" / outputs[0].fingerprint / "csv", csv)
    path = trackml_input_pipeline(tmp_path / "a", csv)
    first, out1, _ = run_pipeline(path)
    last = out1[0].paths["test"][-1].stem                       # event<ID> of the last test event
    tracks = first.workdir / "tracks" / f"{last}.csv"
    before = tracks.read_text()
    # replace that event's hits file: every other hit moved 30 cm along the beam
    hits_file = csv / f"event{int(last[5:]):09d}-hits.csv"
    hits = pd.read_csv(hits_file)
    hits.loc[::2, "z"] += 300.0
    hits.to_csv(hits_file, index=False)
    _, out2, _ = run_pipeline(path)
    assert out2[0].fingerprint != out1[0].fingerprint and out2[0].computed == 6
    assert tracks.read_text() != before
    _, out3, _ = run_pipeline(path)
    assert all(o.computed == 0 for o in out3)
    # an added file changes the fingerprint too
    (csv / "notes.txt").write_text("x")
    assert Pipeline(path).run(until="data", write_outputs=False)[0].fingerprint != out2[0].fingerprint


def test_same_input_dir_string_elsewhere_is_another_cache_entry(tmp_path, tiny_run):
    import shutil
    pipe, outputs, _ = tiny_run
    src = pipe.cachedir / "data" / outputs[0].fingerprint / "csv"
    fps = []
    for name in ("one", "two"):
        shutil.copytree(src, tmp_path / name / "ev")
        path = make_pipeline(tmp_path / name, {"data": {"source": "trackml", "input_dir": "../../ev"}},
                             cachedir=str(tmp_path / "shared"))
        fps.append(Pipeline(path).run(until="data", write_outputs=False)[0].fingerprint)
    assert fps[0] != fps[1]


@pytest.mark.parametrize("stages, message", [
    (["stages/embedding.yaml", "stages/filter.yaml", "stages/graph.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
     "stage 'filter' (edge classification, filter.yaml) needs a graph construction stage before it"),
    (["stages/embedding.yaml", "stages/graph.yaml", "stages/labeling.yaml"],
     "stage 'labeling' (track building, labeling.yaml) needs an edge classification stage before it"),
    (["stages/graph.yaml", "stages/filter.yaml", "stages/labeling.yaml"],
     "stage 'graph' (graph construction, graph.yaml) needs an embedding stage before it"),
    (["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml", "stages/labeling2.yaml"],
     "stage 'labeling2' (track building, labeling2.yaml) comes after the track builder"),
])
def test_chain_in_the_wrong_order_fails_at_load_with_one_line(tmp_path, stages, message):
    path = make_pipeline(tmp_path, stages=stages)
    (path.parent / "stages" / "labeling2.yaml").write_text("stage: labeling\nname: labeling2\n")
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "work").exists()      # nothing was computed


def test_chains_without_track_building_or_embedding_load(tmp_path):
    for stages in (["stages/embedding.yaml", "stages/graph.yaml"],
                   ["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"]):
        assert len(Pipeline(make_pipeline(tmp_path, stages=stages)).stages) == len(stages)
