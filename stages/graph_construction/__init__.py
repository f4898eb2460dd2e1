"""Graph construction: metric-learning embedding, radius graphs (FRNN backends), module map."""
