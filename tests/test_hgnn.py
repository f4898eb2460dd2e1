"""The hierarchical GNN: its pooling gives each hit a distribution over super-nodes that sums to
1 and finds the two super-nodes of two separated tracks; super-nodes are owned by their main
particle; hits join super-nodes and super-nodes join into tracks; the network trains."""
import math

import torch
from torch_geometric.data import Data

from trkx.config import parse_config
from trkx.event import edge_features
from trkx.losses import HierarchicalLoss, super_node_particles
from trkx.models.hgnn import HGNNConfig, HierarchicalGNN, mixture_pool
from trkx.stages.track_building.hgnn import HGNNStageConfig, assign_hits


def two_tracks(n_per=10, noise=0.0):
    """Two straight tracks at φ = 0 and φ = π/2 (10 hits each), the hit graph along each track."""
    r = torch.linspace(50, 500, n_per).repeat(2)
    phi = torch.cat([torch.zeros(n_per), torch.full((n_per,), math.pi / 2)]) + noise
    z = r * 0.3
    chain = torch.stack([torch.arange(n_per - 1), torch.arange(1, n_per)])
    ei = torch.cat([chain, chain + n_per], 1)
    return Data(num_nodes=2 * n_per, r=r, phi=phi, z=z, x=torch.stack([r / 1000, phi / math.pi, z / 1000], 1),
                edge_index=ei, particle_id=torch.cat([torch.full((n_per,), 11), torch.full((n_per,), 22)]),
                region=torch.zeros(2 * n_per, dtype=torch.long), pt=torch.full((2 * n_per,), 2.0))


def test_pooling_finds_two_super_nodes_of_two_separated_tracks_and_posteriors_sum_to_one():
    event = two_tracks()
    # a hand-made pooling space: each hit's transverse direction (the two tracks lie 90° apart)
    emb = torch.zeros(event.num_nodes, 4)
    emb[:, 0], emb[:, 1] = torch.cos(event.phi), torch.sin(event.phi)
    emb[:, 2] = 0.01 * torch.arange(event.num_nodes) % 0.05          # a little spread inside each track
    emb = torch.nn.functional.normalize(emb, dim=1)
    centre, width2, log_weight, pairs, post, links = mixture_pool(emb, event.edge_index, 0.2, 3, 4)
    assert centre.shape[0] == 2 and pairs.shape[1] == 2 * event.num_nodes    # each hit: both super-nodes
    total = torch.zeros(event.num_nodes).index_add(0, pairs[0], post)
    assert torch.allclose(total, torch.ones(event.num_nodes), atol=1e-6)
    best = torch.full((event.num_nodes,), -1.0).scatter_reduce(0, pairs[0], post, "amax")
    chosen = pairs[1][post >= best[pairs[0]]]
    assert chosen[:10].unique().numel() == 1 and chosen[10:].unique().numel() == 1 and chosen[0] != chosen[10]
    assert torch.allclose(log_weight.exp().sum(), torch.tensor(1.0))
    # a pooling radius below every link leaves no group big enough: no super-node, no pair
    assert mixture_pool(emb * 10, event.edge_index, 0.01, 3, 4)[0].shape[0] == 0


def test_super_node_owner_is_the_particle_with_most_posterior_mass():
    pairs = torch.tensor([[0, 1, 2, 3, 0, 1], [0, 0, 0, 1, 1, 1]])
    post = torch.tensor([0.9, 0.8, 0.3, 1.0, 0.1, 0.2])
    pid = torch.tensor([5, 5, 7, 7])
    assert super_node_particles(pairs, post, pid, 2).tolist() == [5, 7]


def test_hits_join_their_best_super_node_and_joined_super_nodes_are_one_track():
    out = {"n_super": 3, "pairs": torch.tensor([[0, 0, 1, 2, 3], [0, 1, 1, 2, 2]]),
           "logit": torch.tensor([3.0, -1.0, 2.0, 2.0, -3.0]),
           "super_edges": torch.tensor([[0, 1], [1, 2]]), "super_logit": torch.tensor([4.0, -4.0])}
    labels = assign_hits(out, 5, cut=0.5, super_cut=0.5)
    assert labels[0] == labels[1] != labels[2]           # super-nodes 0 and 1 joined, 2 apart
    assert labels[3] == -1 and labels[4] == -1            # hit 3 below the cut, hit 4 in no pair
    apart = assign_hits(out, 5, cut=0.5, super_cut=1.0)
    assert apart[0] != apart[1]


def test_network_outputs_and_a_training_step():
    event = two_tracks(noise=0.0)
    cfg = parse_config(HGNNStageConfig, {"hidden": 8, "n_iterations": 1, "hier_iterations": 1, "emb_dim": 4,
                                         "pool_radius": 2.5, "min_cluster": 2}, "hgnn.yaml")
    torch.manual_seed(0)
    net = HierarchicalGNN(3, 6, cfg)
    out = net(event.x, event.edge_index, edge_features(event, event.edge_index))
    assert out["n_super"] >= 1 and out["logit"].shape == out["posterior"].shape
    assert torch.allclose(out["emb"].norm(dim=1), torch.ones(event.num_nodes), atol=1e-5)
    terms = HierarchicalLoss(1.0, 1.0, 0.4)(out, event)
    loss = sum(terms.values())
    loss.backward()
    assert set(terms) == {"embedding", "bipartite", "super_edges"} and torch.isfinite(loss)
    assert net.embed[0].weight.grad is not None and net.decoder[0].weight.grad is not None
    assert isinstance(cfg, HGNNConfig)


def test_an_empty_event_gives_no_super_nodes_and_no_tracks():
    cfg = parse_config(HGNNStageConfig, {"hidden": 8}, "hgnn.yaml")
    net = HierarchicalGNN(3, 6, cfg)
    with torch.no_grad():
        out = net(torch.zeros(0, 3), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 6))
    assert out["n_super"] == 0 and assign_hits(out, 0, 0.5, 0.5).size == 0
