"""`trkx analyze` on the tiny pipeline's GNN: each command writes its table and plots, a second
call reads them back, the surface's centre is the trained loss, the predict-and-track loss
(blackbox solver) is analysed too, bad requests exit 2."""
import json

import pytest
import torch
from click.testing import CliRunner

from trkx.analysis.target import load_target
from trkx.cli import main
from trkx.losses import edge_training_targets

from conftest import make_pipeline


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    return make_pipeline(root), root


def analyze(*args):
    result = CliRunner().invoke(main, ["analyze", *map(str, args)])
    return result


def stage_yaml(path):
    return path.parent / "stages" / "gnn.yaml"


def test_hessian_writes_eigenvalues_and_density_then_reads_them_back(tiny):
    path, root = tiny
    r = analyze("hessian", stage_yaml(path), "-p", path, "--top-k", 2, "--iterations", 10, "--trace-samples", 4,
                "--slq-vectors", 1, "--slq-steps", 5)
    assert r.exit_code == 0, r.output
    folder = next((root / "work" / "analysis" / "gnn").glob("hessian-*"))
    results = json.loads((folder / "results.json").read_text())
    assert len(results["eigenvalues"]) == 2 and abs(results["eigenvalues"][0]) >= abs(results["eigenvalues"][1]) * 0.5
    assert results["hvp"].startswith("autograd")
    assert (folder / "density.png").stat().st_size > 1000
    again = analyze("hessian", stage_yaml(path), "-p", path, "--top-k", 2, "--iterations", 10, "--trace-samples", 4,
                    "--slq-vectors", 1, "--slq-steps", 5)
    assert again.exit_code == 0 and "(cached)" in again.output


def test_surface_centre_is_the_trained_loss(tiny):
    path, root = tiny
    r = analyze("surface", stage_yaml(path), "-p", path, "--directions", "random", "--points", 3)
    assert r.exit_code == 0, r.output
    folder = next((root / "work" / "analysis" / "gnn").glob("surface-*"))
    results = json.loads((folder / "results.json").read_text())
    # the trained module's own forward pass and loss, not the analysis's functional call
    target = load_target(path, stage_yaml(path), 2)
    with torch.no_grad():
        logits = [target.module(e).float() for e in target.events]
    want = sum(float(target.module.loss(o, e)) for o, e in zip(logits, target.events)) / len(target.events)
    assert results["centre"]["loss"] == pytest.approx(want, rel=1e-5)
    targets = [edge_training_targets(e)[0] for e in target.events]
    kept = sum(float(((torch.sigmoid(o) >= 0.5).float() * t).sum()) for o, t in zip(logits, targets))
    assert results["centre"]["tpr"] == pytest.approx(kept / sum(float(t.sum()) for t in targets), abs=1e-9)
    assert {"surface_loss.png", "surface_tpr.png", "lines.png"} <= {p.name for p in folder.iterdir()}


def test_connect_and_similarity_against_a_second_training(tiny):
    path, root = tiny
    r = analyze("connect", stage_yaml(path), "-p", path, "--bezier-steps", 5, "--points", 3)
    assert r.exit_code == 0, r.output
    folder = next((root / "work" / "analysis" / "gnn").glob("connect-*"))
    results = json.loads((folder / "results.json").read_text())
    assert results["parameter_distance"] > 0                      # two different solutions
    line = results["linear"]
    a = load_target(path, stage_yaml(path), 2)
    assert line["loss"][0] == pytest.approx(a.evaluate(a.space.flat())["loss"], rel=1e-5)   # t = 0 is θa
    assert "| straight line |" in r.output and (folder / "paths.png").exists()
    r = analyze("similarity", stage_yaml(path), "-p", path)
    assert r.exit_code == 0, r.output
    results = json.loads(next((root / "work" / "analysis" / "gnn").glob("similarity-*")).joinpath("results.json").read_text())
    assert 0.0 <= results["disagreement"] < 0.1                   # two trainings agree on most edges
    assert results["layers_a"] == ["node_encoder", "edge_encoder", "edge_network", "node_network", "decoder"]
    cka = torch.tensor(results["cka"])
    assert torch.isfinite(cka.diagonal()).all()                  # every layer against its namesake
    assert ((cka[torch.isfinite(cka)] >= -1e-9) & (cka[torch.isfinite(cka)] <= 1 + 1e-9)).all()


def test_predict_and_track_loss_is_analysed_with_the_assignment_decisions(tmp_path):
    path = make_pipeline(tmp_path, {"gnn": {"loss": "blackbox", "blackbox_lambda": 5.0, "epochs": 1},
                                    "labeling": {"method": "assignment", "cut": 0.5}})
    r = analyze("hessian", stage_yaml(path), "-p", path, "--top-k", 1, "--iterations", 3, "--trace-samples", 2,
                "--slq-vectors", 1, "--slq-steps", 3)
    assert r.exit_code == 0, r.output
    results = json.loads(next((tmp_path / "work" / "analysis" / "gnn").glob("hessian-*")).joinpath("results.json").read_text())
    assert results["hvp"] and all(v == v for v in results["eigenvalues"])   # a method named, no NaN
    # the chain's own edge decisions (the assignment) beside the 0.5 cut, checked against an
    # independent dense linear-sum assignment per event
    from scipy.optimize import linear_sum_assignment
    target = load_target(path, stage_yaml(path), 2)
    assert target.edge_choice is not None
    figures = target.evaluate(target.space.flat())
    found = positives = 0.0
    with torch.no_grad():
        for event in target.events:
            gain = torch.sigmoid(target.module(event).float()).double() - 0.5
            src, dst = event.edge_index
            matrix = torch.zeros(event.num_nodes, event.num_nodes, dtype=torch.float64)
            matrix[src, dst] = gain.clamp_min(0)
            rows, cols = linear_sum_assignment(matrix.numpy(), maximize=True)
            chosen = {(int(a), int(b)) for a, b in zip(rows, cols) if matrix[a, b] > 0}
            truth, _ = edge_training_targets(event)
            kept = torch.tensor([(int(a), int(b)) in chosen for a, b in zip(src, dst)])
            found += float((kept & truth.bool()).sum())
            positives += float(truth.sum())
    assert figures["assigned_tpr"] == pytest.approx(found / positives, abs=1e-9)
    assert 0 <= figures["assigned_hamming"] <= 1


def test_cc_pipeline_has_no_assignment_figures_and_bce_bezier_is_the_stage_loss_for_bce(tiny, monkeypatch):
    path, root = tiny
    import trkx.analysis.commands as commands
    fitted_on = []
    real_train = commands.train_bezier
    monkeypatch.setattr(commands, "train_bezier", lambda losses, *args: fitted_on.append(losses) or real_train(losses, *args))
    target = load_target(path, stage_yaml(path), 2)
    assert target.edge_choice is None and "assigned_tpr" not in target.evaluate(target.space.flat())
    from trkx.analysis.commands import run_connect
    b = load_target(path, stage_yaml(path), 2, seed=target.stage.seed + 1000)
    own = run_connect(target, b, bezier_steps=4, points=3)
    bce = run_connect(target, b, bezier_steps=4, points=3, bezier_loss="bce")
    assert bce.folder != own.folder                              # its own analysis ...
    assert bce.results["bezier"]["loss"] == pytest.approx(own.results["bezier"]["loss"], rel=1e-6)   # ... same curve
    # the curve is fitted on the stage's training events, not on the validation events it is judged on
    train_ids = {int(e.event_id) for e in target.training_events()}
    assert train_ids and not train_ids & {int(e.event_id) for e in target.events}
    assert f"over {len(train_ids)} training events" in own.summary
    theta = target.space.flat()
    want = [float(target.event_loss(theta, e)) for e in target.training_events()]
    assert [float(f(theta)) for f in fitted_on[0]] == pytest.approx(want, rel=1e-6)


def test_analyze_errors(tiny):
    path, _ = tiny
    r = analyze("hessian", path.parent / "stages" / "labeling.yaml", "-p", path)
    assert r.exit_code == 2 and "no trained network" in r.output
    r = analyze("similarity", stage_yaml(path), "-p", path, "--other-pipeline", path)
    assert r.exit_code == 2 and "go together" in r.output


def test_similarity_finds_the_line_graph_networks_layers(tmp_path):
    path = make_pipeline(tmp_path, {"gnn": {"architecture": "line_graph", "epochs": 1}})
    r = analyze("similarity", stage_yaml(path), "-p", path)
    assert r.exit_code == 0, r.output
    results = json.loads(next((tmp_path / "work" / "analysis" / "gnn").glob("similarity-*")).joinpath("results.json").read_text())
    assert results["layers_a"] == ["body.node_encoder", "body.edge_encoder", "body.edge_network", "body.node_network",
                                   "decoder"]
    assert torch.isfinite(torch.tensor(results["cka"]).diagonal()).all()
