"""GNN options on CPU: homogeneous vs heterogeneous, checkpointing, mixed precision, losses."""
import pytest
import torch
from torch_geometric.data import Data

from trkx.models import InteractionGNN, region_pair
from trkx.stages.edge_classification.gnn import GNNConfig, gnn_module
from trkx.training import autocast_context


def toy_event(n=60, e=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    pid = torch.randint(1, 8, (n,), generator=g)
    track_edges = torch.stack([torch.arange(0, n - 1), torch.arange(1, n)])
    return Data(num_nodes=n, x=torch.randn(n, 3, generator=g), edge_index=ei,
                r=torch.rand(n, generator=g) * 1000 + 30, phi=torch.rand(n, generator=g) * 6 - 3,
                z=torch.randn(n, generator=g) * 500, region=torch.randint(0, 3, (n,), generator=g),
                particle_id=pid, pt=torch.full((n,), 2.0), y=pid[ei[0]] == pid[ei[1]], track_edges=track_edges)


def test_region_pair_indexes_unordered_pairs():
    a = torch.tensor([0, 0, 0, 1, 1, 2, 2, 1])
    b = torch.tensor([0, 1, 2, 1, 2, 2, 0, 0])
    assert region_pair(a, b, 3).tolist() == [0, 1, 2, 3, 4, 5, 2, 1]


def test_heterogeneous_has_networks_per_region_and_pair():
    net = InteractionGNN(3, 6, GNNConfig(hidden=8, heterogeneous=True, n_regions=3))
    assert len(net.node_encoder.nets) == 3 and len(net.edge_network.nets) == 6
    e = toy_event()
    from trkx.event import edge_features
    out = net(e.x, e.edge_index, edge_features(e, e.edge_index), e.region)
    assert out.shape == (300,)
    # routing: two disconnected halves; re-routing the nodes of the first half changes the
    # scores of its edges and leaves the other half's exactly as they were
    half = e.num_nodes // 2
    ei = e.edge_index % half + (e.edge_index[0] >= half).long() * half   # edges stay in their half
    first = ei[0] < half
    ef = edge_features(e, ei)
    before = net(e.x, ei, ef, e.region)
    region = e.region.clone()
    region[:half] = (region[:half] + 1) % 3
    after = net(e.x, ei, ef, region)
    assert not torch.allclose(before[first], after[first])
    assert torch.allclose(before[~first], after[~first], atol=1e-6)   # grouped batches may round differently


@pytest.mark.parametrize("mode", ["partial", "maximal"])
def test_checkpointing_gives_identical_gradients(mode):
    e = toy_event()
    torch.manual_seed(0)
    ref = gnn_module(3, GNNConfig(hidden=16, n_iterations=3))
    ck = gnn_module(3, GNNConfig(hidden=16, n_iterations=3, checkpointing=mode))
    ck.load_state_dict(ref.state_dict())
    grads = []
    for m in (ref, ck):
        m.train()
        m.training_step(e, 0).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bf16_inference_close_to_fp32():
    e = toy_event()
    m = gnn_module(3, GNNConfig(hidden=16, n_iterations=2)).eval()
    with torch.no_grad():
        ref = torch.sigmoid(m(e))
        with autocast_context("bf16-mixed", torch.device("cpu")):
            low = torch.sigmoid(m(e).float())
    assert (ref - low).abs().max() < 0.05


def test_blackbox_loss_trains():
    e = toy_event()
    m = gnn_module(3, GNNConfig(hidden=16, n_iterations=2, loss="blackbox", blackbox_lambda=5.0))
    loss = m.training_step(e, 0)
    loss.backward()
    assert loss.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_blackbox_gradient_does_not_vanish_on_large_events():
    """The Hamming loss is per hit (dL/dy = ±1/N); λ is scaled by N inside, so on a 3,000-hit event
    λ = 1 changes the perturbed assignment of several % of the edges (with λ/N: none, and
    a predict-and-track run collapsed to no edges)."""
    e = toy_event(n=3000, e=12000, seed=1)
    m = gnn_module(3, GNNConfig(hidden=16, n_iterations=2, loss="blackbox", blackbox_lambda=1.0))
    logits = (4 * torch.rand(12000, generator=torch.Generator().manual_seed(0)) - 2).requires_grad_()
    m.loss(logits, e).backward()
    moved = logits.grad != 0
    assert moved.float().mean() > 0.03


def test_line_graph_links_each_segment_to_the_ones_continuing_it():
    from trkx.models import line_graph_edges
    # hits 0 -> 1 -> {2, 3}, 3 -> 4, 2 -> 4: segments 0..4 in that order
    ei = torch.tensor([[0, 1, 1, 3, 2], [1, 2, 3, 4, 4]])
    pairs = line_graph_edges(ei, 5)
    assert sorted(zip(*pairs.tolist())) == [(0, 1), (0, 2), (1, 4), (2, 3)]
    assert line_graph_edges(torch.zeros(2, 0, dtype=torch.long), 3).shape == (2, 0)


def test_line_graph_gnn_scores_every_hit_graph_edge_and_trains():
    from trkx.losses import EdgeBCELoss
    ev = toy_event()
    module = gnn_module(3, GNNConfig(hidden=16, n_iterations=2, architecture="line_graph"))
    from trkx.event import edge_features
    logits = module.net(ev.x, ev.edge_index, edge_features(ev, ev.edge_index))
    assert logits.shape == (ev.edge_index.shape[1],)
    loss = EdgeBCELoss()(logits, ev)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.net.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="heterogeneous"):
        GNNConfig(architecture="line_graph", heterogeneous=True).validate()


def test_architecture_key_keeps_the_fingerprint_of_existing_gnn_configs():
    from trkx.config import config_to_dict
    assert "architecture" not in config_to_dict(GNNConfig())
    assert config_to_dict(GNNConfig(architecture="line_graph"))["architecture"] == "line_graph"
