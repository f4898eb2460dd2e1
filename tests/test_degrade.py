"""The degrade stage drops the asked share of true edges, the same ones for an event every time,
and ``trkx.variants`` writes pipelines with a stage changed or inserted that share the cache."""
import torch
import yaml
from torch_geometric.data import Data

from conftest import make_pipeline
from trkx.config import parse_config
from trkx.runner import Pipeline
from trkx.stages.graph_construction.degrade import DegradeConfig, DegradeGraph
from trkx.variants import merged, variant_pipeline, with_stage_after


def graph(event_id=3, n_true=200, n_false=100):
    y = torch.cat([torch.ones(n_true), torch.zeros(n_false)]).bool()
    ei = torch.randint(0, 50, (2, n_true + n_false), generator=torch.Generator().manual_seed(0))
    return Data(num_nodes=50, edge_index=ei, y=y, event_id=torch.tensor(event_id))


def test_degrade_keeps_the_asked_share_of_true_edges_and_every_false_one():
    stage = DegradeGraph(parse_config(DegradeConfig, {"efficiency": 0.9, "seed": 1}, "degrade.yaml"))
    out = stage.infer(graph())
    assert int(out.y.sum()) == 180 and int((~out.y).sum()) == 100
    again = stage.infer(graph())
    assert torch.equal(out.edge_index, again.edge_index)                   # the same draw per event
    other = stage.infer(graph(event_id=4))
    assert not torch.equal(out.edge_index, other.edge_index)
    assert stage.infer(graph()).edge_index.shape[1] == 280
    whole = DegradeGraph(parse_config(DegradeConfig, {"efficiency": 1.0}, "degrade.yaml")).infer(graph())
    assert whole.edge_index.shape[1] == 300


def test_variants_change_or_insert_a_stage_and_share_the_cache(tmp_path):
    path = make_pipeline(tmp_path)
    base = Pipeline(path, progress=False)
    inserted = with_stage_after(base, "graph", {"stage": "degrade", "name": "degrade", "efficiency": 0.95},
                                tmp_path / "w1", tmp_path, "ins")
    pipe = Pipeline(inserted, progress=False)
    names = pipe.stage_names()
    assert names[names.index("graph") + 1] == "degrade" and pipe.cachedir == base.cachedir
    changed = variant_pipeline(base, "gnn", {"hidden": 4}, tmp_path / "w2", tmp_path, "chg")
    stage_yaml = yaml.safe_load(open(yaml.safe_load(changed.read_text())["stages"][base.stage_names().index("gnn") - 1]))
    assert stage_yaml["hidden"] == 4 and Pipeline(changed, progress=False).workdir == (tmp_path / "w2").resolve()
    assert merged({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
