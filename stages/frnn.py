"""Fixed-radius nearest neighbours: ``build_edges(x, r, k_max, backend)``.

Every backend returns the same directed edge set ``(query, neighbour)``: all ``j != i`` with
``|x_i - x_j| < r``, keeping the ``k_max`` nearest per query, sorted by (query, neighbour).
Candidates from any backend go through one finalisation (the radius test, exact in float64 at
the boundary; the cap; the order), so the backends differ only in how they find candidates.
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


def _exact_inside(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, d2: torch.Tensor, r: float) -> torch.Tensor:
    """``d2 < r²`` decided in float64 where the float32 value lies within rounding of the radius."""
    r2 = r * r
    inside = d2 < r2
    if d2.dtype == torch.float64:
        return inside
    scale = float(x.detach().abs().max()) ** 2 if x.numel() else 0.0
    tol = 1e-5 * (r2 + scale)
    band = torch.nonzero((d2 > r2 - tol) & (d2 < r2 + tol)).squeeze(-1)
    if band.numel():
        exact = (x.index_select(0, src[band]).double() - x.index_select(0, dst[band]).double()).pow(2).sum(-1)
        inside[band] = exact < r2
    return inside


def _finalize(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, r: float, k_max: int | None,
              d2: torch.Tensor | None = None, distinct: bool = False) -> torch.Tensor:
    """Radius test (exact at the boundary), the k_max cap (nearest first, ties to the smaller index) and the
    canonical (query, neighbour) order, shared by every backend."""
    n = x.shape[0]
    if not distinct:   # drop self pairs (callers that never produce them say so)
        keep = src != dst
        src, dst = src[keep], dst[keep]
        d2 = None if d2 is None else d2[keep]
    if d2 is None:
        xf = x.float()
        d2 = (xf.index_select(0, src) - xf.index_select(0, dst)).pow(2).sum(-1)
    keep = _exact_inside(x, src, dst, d2, r)
    if not bool(keep.all()):
        src, dst, d2 = src[keep], dst[keep], d2[keep]
    if k_max is not None and src.numel():
        counts = torch.bincount(src, minlength=n)
        over = counts[src] > k_max
        if over.any():
            s_o, d_o = src[over], dst[over]
            d2_o = d2[over].float()
            # rank by (query, float32 distance, neighbour) in two sorts: the bit pattern of a
            # non-negative float32 orders like its value, so (bits << 32 | neighbour) is one key
            bits = d2_o.view(torch.int32).long()
            order = torch.argsort((bits << 32) | d_o)
            order = order[torch.sort(s_o[order], stable=True)[1]]
            s_o, d_o = s_o[order], d_o[order]
            c = torch.bincount(s_o, minlength=n)
            rank = torch.arange(s_o.numel(), device=src.device) - (torch.cumsum(c, 0) - c)[s_o]
            top = rank < k_max
            src = torch.cat([src[~over], s_o[top]])
            dst = torch.cat([dst[~over], d_o[top]])
    key, _ = torch.sort(src * n + dst)
    return torch.stack([key // n, key % n])


def _principal_axes(x: torch.Tensor, n: int) -> torch.Tensor:
    """Project onto the ``n`` directions of largest variance (a rotation: distances unchanged)."""
    xc = x - x.mean(0, keepdim=True)
    cov = xc.T @ xc
    _, vecs = torch.linalg.eigh(cov)
    return xc @ vecs[:, -n:].flip(-1)


def grid_pairs(y: torch.Tensor, r: float, chunk: int = 1 << 21):
    """Candidate unordered pairs (i, j) of points ``y`` (N, g) from a uniform cell grid of side
    ``r`` (Bentley 1977; Hoetzlein 2014), each pair once: same cell with j after i, plus the
    neighbour cells of the positive half shell ((3^g - 1) / 2 of them).  Yields (i, j) chunks;
    every pair closer than ``r`` in ``y`` is among them."""
    n, g = y.shape
    x = y
    cell = torch.floor((y - y.min(0).values) / r).long()
    shape = cell.max(0).values + 1
    strides = torch.ones(g, dtype=torch.long, device=x.device)
    for k in range(g - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    cell_id = (cell * strides).sum(-1)
    sorted_id, order = torch.sort(cell_id)
    position = torch.empty_like(order)
    position[order] = torch.arange(n, device=x.device)
    half = [o for o in itertools.product((-1, 0, 1), repeat=g) if o >= (0,) * g]   # zero + positive half
    for off in half:
        nb = cell + torch.tensor(off, device=x.device)
        valid = ((nb >= 0) & (nb < shape)).all(-1)
        nb_id = (nb * strides).sum(-1)
        if any(off):
            lo = torch.searchsorted(sorted_id, nb_id)
        else:
            lo = position + 1          # same cell: only points after i in the sorted order
        hi = torch.searchsorted(sorted_id, nb_id, right=True)
        counts = torch.where(valid, (hi - lo).clamp_min(0), torch.zeros_like(lo))
        q = torch.nonzero(counts).squeeze(-1)
        lo, counts = lo[q], counts[q]
        # expand each (query, cell range) into its pairs, in chunks to bound memory
        csum = torch.cumsum(counts, 0)
        start = 0
        while start < q.numel():
            base = int(csum[start - 1]) if start else 0
            stop = max(int(torch.searchsorted(csum, base + chunk, right=True)), start + 1)
            c = counts[start:stop]
            i = torch.repeat_interleave(q[start:stop], c)
            within = torch.arange(int(c.sum()), device=x.device) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
            j = order[torch.repeat_interleave(lo[start:stop], c) + within]
            yield i, j
            start = stop


GRID_DIMS = 4


def _grid(x: torch.Tensor, r: float, k_max: int | None, grid_dims: int | None = None) -> torch.Tensor:
    """Cell-grid search.  Embeddings with more than ``GRID_DIMS`` dimensions are gridded on their
    leading principal axes (a rotation: distances unchanged; a projection never lengthens a
    distance, so no neighbour is lost); candidates are pre-cut on the projected distance and then
    tested on all dimensions."""
    g = min(grid_dims or GRID_DIMS, x.shape[1])
    xf = x.float()
    y = _principal_axes(xf, g) if x.shape[1] > g else xf
    ii, jj, dd = [], [], []
    scale = float(xf.abs().max()) ** 2
    r2_slack = r * r * (1 + 1e-3) + 1e-5 * scale
    for i, j in grid_pairs(y, r):
        if y is not xf:
            near = (y.index_select(0, i) - y.index_select(0, j)).pow(2).sum(-1) < r2_slack
            i, j = i[near], j[near]
        d2 = (xf.index_select(0, i) - xf.index_select(0, j)).pow(2).sum(-1)
        keep = d2 < r2_slack   # generous pre-cut; the exact test is in _finalize
        ii.append(i[keep])
        jj.append(j[keep])
        dd.append(d2[keep])
    if not ii:
        return torch.zeros((2, 0), dtype=torch.long, device=x.device)
    i, j, d2 = torch.cat(ii), torch.cat(jj), torch.cat(dd)
    return _finalize(x, torch.cat([i, j]), torch.cat([j, i]), r, k_max, d2=torch.cat([d2, d2]), distinct=True)


def _kdtree(x: torch.Tensor, r: float, k_max: int | None) -> torch.Tensor:
    from scipy.spatial import cKDTree

    pts = x.detach().cpu().double().numpy()
    tree = cKDTree(pts)
    if k_max is None:
        pairs = tree.query_pairs(r * (1 + 1e-9), output_type="ndarray")
        src = np.concatenate([pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    else:
        # a few extra neighbours so that float32 near-ties at the cap are ranked like every backend
        k = min(k_max + 17, len(pts))
        dist, idx = tree.query(pts, k=k, distance_upper_bound=r * (1 + 1e-9), workers=-1)
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
    slack = float(r * r) * (1 + 1e-3) + 1e-5 * float(np.abs(pts).max()) ** 2 * 4
    lims, _, idx = index.range_search(pts, slack)
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
