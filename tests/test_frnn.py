"""Every graph-building backend gives the same edge set as scipy's kd-tree, with the same cap."""
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from trkx.ops.frnn import Kernels, available_backends, build_edges, hilbert_key

CPU_BACKENDS = [b for b in ("grid", "kdtree", "faiss") if b in available_backends()]


def reference_edges(x: np.ndarray, r: float, k_max=None) -> set:
    """Brute force from scipy: all pairs within r, the k_max nearest per query."""
    tree = cKDTree(x)
    out = set()
    for i, nbrs in enumerate(tree.query_ball_point(x, r)):
        nbrs = [j for j in nbrs if j != i and np.linalg.norm(x[i] - x[j]) < r]
        nbrs.sort(key=lambda j: (np.linalg.norm(x[i] - x[j]), j))
        out.update((i, j) for j in (nbrs if k_max is None else nbrs[:k_max]))
    return out


def as_set(edges: torch.Tensor) -> set:
    return set(map(tuple, edges.T.tolist()))


@pytest.mark.parametrize("dim", [2, 3, 8, 12])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backends_match_scipy_random(dim, backend):
    rng = np.random.default_rng(dim)
    x = rng.random((600, dim)).astype(np.float32)
    r = {2: 0.05, 3: 0.1, 8: 0.45, 12: 0.6}[dim]
    ref = reference_edges(x.astype(np.float64), r)
    got = build_edges(torch.from_numpy(x), r, None, backend)
    assert as_set(got) == ref and len(ref) > 100


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_kmax_cap_keeps_nearest(backend):
    rng = np.random.default_rng(1)
    x = rng.random((400, 3)).astype(np.float32)
    ref = reference_edges(x.astype(np.float64), 0.2, k_max=5)
    got = build_edges(torch.from_numpy(x), 0.2, 5, backend)
    assert as_set(got) == ref
    assert torch.bincount(got[0]).max() == 5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_kmax_cap_in_query_groups(backend):
    """The cap ranks over-cap queries in groups when there are many; groups of 7 give the same edges."""
    rng = np.random.default_rng(2)
    x = rng.random((400, 3)).astype(np.float32)
    ref = reference_edges(x.astype(np.float64), 0.2, k_max=5)
    assert as_set(build_edges(torch.from_numpy(x), 0.2, 5, backend, Kernels(cap_group=7))) == ref


def test_backends_match_on_clustered_points():
    """Embedded-hit-like data: tight clusters (tracks) plus background."""
    rng = np.random.default_rng(7)
    centres = rng.random((80, 8))
    x = np.concatenate([centres[rng.integers(0, 80, 2000)] + 0.02 * rng.standard_normal((2000, 8)),
                        rng.random((500, 8))]).astype(np.float32)
    edges = {b: as_set(build_edges(torch.from_numpy(x), 0.1, 32, b)) for b in CPU_BACKENDS}
    ref = reference_edges(x.astype(np.float64), 0.1, 32)
    for b, e in edges.items():
        assert e == ref, b


def test_order_is_canonical():
    x = torch.rand(300, 4)
    e = build_edges(x, 0.3, 10, "grid")
    key = e[0] * 300 + e[1]
    assert torch.all(key[1:] > key[:-1])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_degenerate_inputs(backend):
    assert build_edges(torch.zeros(0, 3), 0.1, 4, backend).shape == (2, 0)
    assert build_edges(torch.zeros(1, 3), 0.1, 4, backend).shape == (2, 0)
    same = build_edges(torch.zeros(5, 3), 0.1, None, backend)   # coincident points: all pairs
    assert same.shape[1] == 20


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_radius_boundary_decided_in_float64(backend):
    """Pairs a few 1e-7 of r either side of the radius (float32 rounding of their distance is of that
    order): every backend keeps exactly the pairs whose float64 distance is below r."""
    r = 0.1
    rng = np.random.default_rng(3)
    base = (2 * rng.random((200, 6))).astype(np.float32)
    direction = rng.standard_normal((200, 6))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    steps = rng.integers(-40, 41, 200)
    partner = (base + direction * r * (1 + steps[:, None] * 1e-7)).astype(np.float32)
    x = np.concatenate([base, partner])
    d2 = ((x[:200].astype(np.float64) - x[200:].astype(np.float64)) ** 2).sum(1)
    inside = d2 < r * r
    assert 20 < inside.sum() < 180
    got = as_set(build_edges(torch.from_numpy(x), r, None, backend))
    assert got == reference_edges(x.astype(np.float64), r)
    assert {(k, 200 + k) for k in range(200)} & got == {(k, 200 + k) for k in np.flatnonzero(inside)}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_far_from_origin(backend):
    """Coordinates offset by 50 (squared norms 1e4 times r²): same edges as the float64 reference."""
    rng = np.random.default_rng(5)
    x = (50 + rng.random((1500, 4))).astype(np.float32)
    assert as_set(build_edges(torch.from_numpy(x), 0.12, 20, backend)) == reference_edges(x.astype(np.float64), 0.12, 20)


def test_hilbert_key_steps_to_a_neighbouring_cell():
    for g, side in ((2, 16), (3, 8), (4, 4)):
        cells = torch.stack(torch.meshgrid(*[torch.arange(side)] * g, indexing="ij"), -1).view(-1, g)
        key = hilbert_key(cells)
        assert torch.unique(key).numel() == cells.shape[0]
        walk = cells[torch.argsort(key)]
        assert torch.all((walk[1:] - walk[:-1]).abs().sum(1) == 1)


def test_grid_on_large_clustered_event_matches_kdtree():
    """Many tiles, a deep tile hierarchy and the cap binding for the densest clusters."""
    rng = np.random.default_rng(11)
    centres = 3 * rng.random((400, 8))
    x = np.concatenate([centres[rng.integers(0, 400, 15000)] + 0.03 * rng.standard_normal((15000, 8)),
                        3 * rng.random((3000, 8))]).astype(np.float32)
    pts = torch.from_numpy(x)
    grid, kd = build_edges(pts, 0.1, 40, "grid"), build_edges(pts, 0.1, 40, "kdtree")
    assert torch.equal(grid, kd)
    deg = torch.bincount(grid[0])
    assert int(deg.max()) == 40 and grid.shape[1] > 100_000


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        build_edges(torch.rand(10, 3), 0.1, 4, "octree")


def test_grid_torch_path_matches():
    """The pure-torch code path (the one CUDA runs) gives the same edges as the NumPy-assisted CPU path,
    with boundary drops and the cap in play."""
    rng = np.random.default_rng(13)
    centres = rng.random((60, 6))
    x = torch.from_numpy(np.concatenate([centres[rng.integers(0, 60, 3000)] + 0.02 * rng.standard_normal((3000, 6)),
                                         rng.random((500, 6))]).astype(np.float32))
    cpu_path = build_edges(x, 0.08, 24, "grid")
    torch_only = Kernels(numpy_on_cpu=False)
    assert torch.equal(build_edges(x, 0.08, 24, "grid", torch_only), cpu_path)
    assert torch.equal(build_edges(x, 0.08, 24, "faiss" if "faiss" in CPU_BACKENDS else "kdtree", torch_only),
                       cpu_path)
    assert torch.equal(build_edges(x, 0.08, None, "grid", torch_only), build_edges(x, 0.08, None, "kdtree"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_grid_matches_cpu():
    x = torch.rand(5000, 8)
    assert as_set(build_edges(x, 0.2, 16, "cuda")) == as_set(build_edges(x, 0.2, 16, "kdtree"))
