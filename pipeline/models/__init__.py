"""Plain ``torch.nn.Module`` networks with typed configs, usable outside the runner::

    from trkx.models import InteractionGNN, InteractionGNNConfig
    net = InteractionGNN(node_dim=3, edge_dim=6, cfg=InteractionGNNConfig(hidden=32))
    logits = net(x, edge_index, edge_features)

Training (Lightning modules that take a model and a loss) is in ``trkx.training``; the losses
are in ``trkx.losses``.
"""
from trkx.models.condensation import CondensationConfig, CondensationGNN, split_outputs
from trkx.models.edge_mlp import EdgeMLP, EdgeMLPConfig
from trkx.models.embedding import EmbeddingNet, EmbeddingNetConfig
from trkx.models.interaction_gnn import InteractionGNN, InteractionGNNConfig, region_pair
from trkx.models.line_graph import LineGraphGNN, line_graph_edges
from trkx.models.so2_gnn import SO2GNN
from trkx.models.mlp import ACTIVATIONS, GroupedMLP, make_mlp

__all__ = ["ACTIVATIONS", "CondensationConfig", "CondensationGNN", "EdgeMLP", "EdgeMLPConfig", "EmbeddingNet", "EmbeddingNetConfig", "GroupedMLP",
           "InteractionGNN", "InteractionGNNConfig", "LineGraphGNN", "SO2GNN", "line_graph_edges", "make_mlp", "region_pair", "split_outputs"]
