"""trkx: graph neural network track reconstruction (embedding, FRNN graph, filter, GNN, labeling)."""
__version__ = "0.1.0"
