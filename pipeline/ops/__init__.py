"""Kernels with no stage knowledge, used by stages, training and benchmarks alike: the FRNN search
(``frnn``: grid, k-d tree, faiss, CUDA grid) and the bipartite assignment solver (``assignment``)."""
