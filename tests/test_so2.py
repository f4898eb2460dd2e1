"""The SO(2)-equivariant GNN: scores unchanged by a rotation about the beam axis, unlike the
unconstrained interaction GNN's; it trains as a ``gnn`` architecture from YAML keys."""
import math

import pytest
import torch

from trkx.config import ConfigError, parse_config
from trkx.event import edge_features_from
from trkx.models import InteractionGNN, InteractionGNNConfig, SO2GNN
from trkx.models.so2_gnn import pair_invariants, rotate90
from trkx.stages.edge_classification.gnn import GNNConfig, gnn_module

from test_gnn import toy_event


def event_inputs(phi_shift: float, n=150, e=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, generator=g) * 900 + 30
    phi = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    z = (torch.rand(n, generator=g) * 2 - 1) * 1000
    ei = torch.randint(0, n, (2, e), generator=g)
    phi = torch.remainder(phi + phi_shift + math.pi, 2 * math.pi) - math.pi
    x = torch.stack([r / 1000, phi / math.pi, z / 1000], 1)
    return x, ei, edge_features_from(r, phi, z, ei)


@pytest.mark.parametrize("angle", [0.7, 2.9, -1.3])
def test_rotation_leaves_so2_scores_and_moves_unconstrained_ones(angle):
    cfg = InteractionGNNConfig(hidden=16, n_iterations=4)
    torch.manual_seed(0)
    so2, plain = SO2GNN(3, 6, cfg), InteractionGNN(3, 6, cfg)
    with torch.no_grad():
        for net, invariant in ((so2, True), (plain, False)):
            before = torch.sigmoid(net(*event_inputs(0.0)))
            after = torch.sigmoid(net(*event_inputs(angle)))
            change = float((before - after).abs().max())
            if invariant:
                assert change < 1e-5
            else:
                assert change > 1e-3


def test_vector_features_rotate_and_invariants_do_not():
    torch.manual_seed(1)
    vi, vj = torch.randn(5, 3, 2), torch.randn(5, 3, 2)
    c, s = math.cos(0.4), math.sin(0.4)
    rot = torch.tensor([[c, -s], [s, c]])
    turn = lambda v: v @ rot.T   # noqa: E731
    assert torch.allclose(pair_invariants(turn(vi), turn(vj)), pair_invariants(vi, vj), atol=1e-6)
    assert torch.allclose(rotate90(turn(vi)), turn(rotate90(vi)), atol=1e-6)      # J commutes with R
    # the cross product is odd under a reflection (it carries the bending sense): SO(2), not O(2)
    mirror = lambda v: v * torch.tensor([1.0, -1.0])   # noqa: E731
    assert not torch.allclose(pair_invariants(mirror(vi), mirror(vj)), pair_invariants(vi, vj))


def test_so2_architecture_from_config_trains():
    cfg = parse_config(GNNConfig, {"architecture": "so2", "hidden": 8, "n_iterations": 2,
                                   "so2": {"vector_channels": 2}}, "gnn_so2.yaml")
    module = gnn_module(3, cfg)
    assert isinstance(module.net, SO2GNN) and module.net.channels == 2
    e = toy_event()
    e.x = torch.stack([e.r / 1000, e.phi / math.pi, e.z / 1000], 1)
    loss = module.training_step(e, 0)
    loss.backward()
    assert torch.isfinite(loss) and module.net.vector_init.grad is not None


def test_so2_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="so2.vector_channels"):
        parse_config(GNNConfig, {"architecture": "so2", "so2": {"vector_channels": 0}}, "gnn_so2.yaml")
    with pytest.raises(ValueError, match="r_column and phi_column"):
        SO2GNN(3, 6, InteractionGNNConfig(hidden=4), r_column=0, phi_column=5)
