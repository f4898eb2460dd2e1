"""Edge classification: the edge filter and the interaction GNN."""
