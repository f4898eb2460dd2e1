"""Fixed-radius nearest neighbours: ``build_edges(x, r, k_max, backend)``.

Every backend returns the same directed edge set ``(query, neighbour)``: all ``j != i`` with
``|x_i - x_j| < r``, keeping the ``k_max`` nearest per query, sorted by (query, distance, neighbour).
Candidates from any backend go through one finalisation (float64 distances, the cap, the order),
so the backends differ only in how they find candidates.
"""
from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import torch

Backend = Literal["auto", "grid", "kdtree", "faiss", "cuda"]
BACKENDS = ("grid", "kdtree", "faiss", "cuda")


def available_backends() -> list[str]:
    out = ["grid", "kdtree"]
    try:
        import faiss  # noqa: F401
        out.append("faiss")
    except ImportError:
        pass
    if torch.cuda.is_available():
        out.append("cuda")
    return out


def _finalize(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, r: float, k_max: int | None,
              exact: bool = True) -> torch.Tensor:
    """Exact radius test in float64, the k_max cap, and the canonical order."""
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if exact:
        d2 = (x[src].double() - x[dst].double()).pow(2).sum(-1)
    else:
        d2 = (x[src] - x[dst]).pow(2).sum(-1)
    keep = d2 < r * r
    src, dst, d2 = src[keep], dst[keep], d2[keep]
    # sort by (src, d2, dst): three stable sorts, least significant key first
    order = torch.argsort(dst, stable=True)
    order = order[torch.argsort(d2[order], stable=True)]
    order = order[torch.argsort(src[order], stable=True)]
    src, dst = src[order], dst[order]
    if k_max is not None and src.numel():
        counts = torch.bincount(src, minlength=x.shape[0])
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(src.numel(), device=src.device) - starts[src]
        keep = rank < k_max
        src, dst = src[keep], dst[keep]
    return torch.stack([src, dst])


def _principal_axes(x: torch.Tensor, n: int) -> torch.Tensor:
    """Project onto the ``n`` directions of largest variance (a rotation: distances unchanged)."""
    xc = x - x.mean(0, keepdim=True)
    cov = xc.T @ xc
    _, vecs = torch.linalg.eigh(cov)
    return xc @ vecs[:, -n:].flip(-1)


def grid_candidates(x: torch.Tensor, r: float, grid_dims: int = 3, chunk: int = 1 << 22):
    """Candidate pairs from a uniform cell grid of side ``r`` (Bentley 1977; Hoetzlein 2014).

    Latent dimensions above ``grid_dims`` are handled by gridding the point cloud's leading
    principal axes (the rotation keeps distances) and testing the exact distance on all dims.
    Yields (src, dst) chunks; every true neighbour pair is among them.
    """
    n, dim = x.shape
    g = min(grid_dims, dim)
    y = _principal_axes(x.float(), g) if dim > g else x.float()
    cell = torch.floor((y - y.min(0).values) / r).long()
    shape = cell.max(0).values + 1
    strides = torch.ones(g, dtype=torch.long, device=x.device)
    for k in range(g - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    cell_id = (cell * strides).sum(-1)
    sorted_id, order = torch.sort(cell_id)
    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=g)), device=x.device)
    query = torch.arange(n, device=x.device)
    for off in offsets:
        nb = cell + off
        valid = ((nb >= 0) & (nb < shape)).all(-1)
        nb_id = (nb * strides).sum(-1)
        lo = torch.searchsorted(sorted_id, nb_id)
        hi = torch.searchsorted(sorted_id, nb_id, right=True)
        counts = torch.where(valid, hi - lo, torch.zeros_like(lo))
        q = query[counts > 0]
        lo, counts = lo[counts > 0], counts[counts > 0]
        # expand each (query, cell range) into its candidate pairs, in chunks to bound memory
        csum = torch.cumsum(counts, 0)
        start = 0
        while start < q.numel():
            base = int(csum[start - 1]) if start else 0
            stop = int(torch.searchsorted(csum, base + chunk, right=True))
            stop = max(stop, start + 1)
            c = counts[start:stop]
            src = torch.repeat_interleave(q[start:stop], c)
            within = torch.arange(int(c.sum()), device=x.device) - torch.repeat_interleave(
                torch.cumsum(c, 0) - c, c)
            dst = order[torch.repeat_interleave(lo[start:stop], c) + within]
            yield src, dst
            start = stop


def _grid(x: torch.Tensor, r: float, k_max: int | None) -> torch.Tensor:
    srcs, dsts = [], []
    r2 = r * r
    xf = x.float()
    for src, dst in grid_candidates(x, r):
        # cheap float32 pre-cut with slack; the exact float64 test is in _finalize
        d2 = (xf[src] - xf[dst]).pow(2).sum(-1)
        keep = d2 < r2 * (1 + 1e-4) + 1e-12
        srcs.append(src[keep])
        dsts.append(dst[keep])
    src = torch.cat(srcs) if srcs else torch.zeros(0, dtype=torch.long, device=x.device)
    dst = torch.cat(dsts) if dsts else torch.zeros(0, dtype=torch.long, device=x.device)
    return _finalize(x, src, dst, r, k_max)


def _kdtree(x: torch.Tensor, r: float, k_max: int | None) -> torch.Tensor:
    from scipy.spatial import cKDTree

    pts = x.detach().cpu().double().numpy()
    tree = cKDTree(pts)
    if k_max is None:
        pairs = tree.query_pairs(r * (1 + 1e-9), output_type="ndarray")
        src = np.concatenate([pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    else:
        k = min(k_max + 1, len(pts))
        dist, idx = tree.query(pts, k=k, distance_upper_bound=r * (1 + 1e-9))
        dist, idx = dist.reshape(len(pts), -1), idx.reshape(len(pts), -1)
        ok = np.isfinite(dist)
        src = np.broadcast_to(np.arange(len(pts))[:, None], idx.shape)[ok]
        dst = idx[ok]
    src = torch.as_tensor(src, dtype=torch.long, device=x.device)
    dst = torch.as_tensor(dst, dtype=torch.long, device=x.device)
    return _finalize(x, src, dst, r, k_max)


def _faiss(x: torch.Tensor, r: float, k_max: int | None) -> torch.Tensor:
    import faiss

    pts = np.ascontiguousarray(x.detach().cpu().float().numpy())
    index = faiss.IndexFlatL2(pts.shape[1])
    if x.is_cuda and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(pts)
    # slack on the float32 radius: the exact cut is made in float64 afterwards
    lims, _, idx = index.range_search(pts, float(r * r) * (1 + 1e-4) + 1e-12)
    src = np.repeat(np.arange(len(pts)), np.diff(lims.astype(np.int64)))
    src = torch.as_tensor(src, dtype=torch.long, device=x.device)
    dst = torch.as_tensor(idx.astype(np.int64), dtype=torch.long, device=x.device)
    return _finalize(x, src, dst, r, k_max)


def _cuda(x: torch.Tensor, r: float, k_max: int | None) -> torch.Tensor:
    if not torch.cuda.is_available():
        raise RuntimeError("build_edges: backend 'cuda' needs a CUDA device")
    return _grid(x.cuda(), r, k_max).to(x.device)


def build_edges(x: torch.Tensor, r: float, k_max: int | None = None, backend: Backend = "auto") -> torch.Tensor:
    """Directed radius graph (2, E) of points ``x`` (N, D): query -> neighbour within ``r``, capped
    at the ``k_max`` nearest per query.  Backends: grid (trkx's own cell grid, CPU or CUDA),
    kdtree (scipy cKDTree), faiss (faiss-cpu / faiss-gpu), cuda (grid on the GPU); auto picks the
    fastest available (cuda on a GPU, else grid, which the graph-building benchmark measures)."""
    if x.dim() != 2:
        raise ValueError(f"build_edges: expected (N, D) points, got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        return torch.zeros((2, 0), dtype=torch.long, device=x.device)
    if backend == "auto":
        backend = "cuda" if torch.cuda.is_available() else "grid"
    fn = {"grid": _grid, "kdtree": _kdtree, "faiss": _faiss, "cuda": _cuda}.get(backend)
    if fn is None:
        raise ValueError(f"build_edges: unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    with torch.no_grad():
        return fn(x.detach(), float(r), k_max)
