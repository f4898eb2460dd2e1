"""Fixed-radius nearest neighbours: ``build_edges(x, r, k_max, backend)``.

Every backend returns the same directed edge set ``(query, neighbour)``: all ``j != i`` with
``|x_i - x_j| < r`` (decided in float64), keeping the ``k_max`` nearest per query (float32
distance, ties to the smaller index), sorted by (query, neighbour).  The backends differ only in
how they find candidates; the radius test at the boundary, the cap and the order are shared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Backend = Literal["auto", "grid", "kdtree", "faiss", "cuda"]
BACKENDS = ("grid", "kdtree", "faiss", "cuda")

GRID_DIMS = 3      # leading principal axes that the uniform cell grid covers
CELL_FRACTION = 0.5  # grid cell side in units of the radius
TILE = 32          # points per tile (a power of two)


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


# --------------------------------------------------------------------------- shared finalisation


@dataclass(frozen=True)
class Kernels:
    """How the shared steps run.  ``numpy_on_cpu``: a CPU tensor's sorts, compares and gathers go
    through NumPy (several times faster than torch's kernels there); False runs the torch code
    that CUDA runs.  ``cap_group``: most over-cap queries ranked in one sort (memory bound)."""
    numpy_on_cpu: bool = True
    cap_group: int = 1 << 32


def _numpy(t: torch.Tensor, kn: Kernels) -> bool:
    """Whether to run this tensor's sort / compare / gather through NumPy."""
    return kn.numpy_on_cpu and t.device.type == "cpu"


def _argsort(key: torch.Tensor, kn: Kernels) -> torch.Tensor:
    """argsort; NumPy's on CPU (several times faster than torch's there)."""
    if _numpy(key, kn):
        return torch.from_numpy(np.argsort(key.numpy()))
    return torch.argsort(key)


def _radius_tolerance(points: torch.Tensor, r: float, source: torch.Tensor | None = None) -> float:
    """Bound on the float32 error of a squared distance computed as |a|² + |b|² - 2a·b from
    ``points`` (each of the D + 2 products and both norms rounded: under 8 (D + 2) ulp of the
    largest |a|²), plus the rounding of ``points`` themselves when they were centred and rotated
    from ``source``."""
    if not points.numel():
        return 0.0
    eps = float(torch.finfo(torch.float32).eps)
    d = points.shape[1]
    err = 8 * (d + 2) * float(points.double().pow(2).sum(1).max())
    if source is not None:
        err += 4 * r * d ** 0.5 * float(source.abs().max())
    return eps * err + 1e-9 * r * r


def _boundary_drops(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, d2: torch.Tensor, r: float,
                    tol: float) -> torch.Tensor:
    """Positions of candidates (all with approximate ``d2 < r² + tol``) that the float64 test
    ``|x_src - x_dst|² < r²`` rejects; only those within ``tol`` of the radius are recomputed."""
    r2 = r * r
    band = torch.nonzero(d2 >= r2 - tol).squeeze(-1)
    if not band.numel():
        return band
    xd = x.double()
    exact = (xd.index_select(0, src[band]) - xd.index_select(0, dst[band])).pow(2).sum(-1)
    return band[exact >= r2]


def _key_bits(n: int) -> int:
    """Bits of a point index in the packed edge keys ``query << bits | neighbour``."""
    return max(1, (n - 1).bit_length())


def _cap_keys(x: torch.Tensor, q: torch.Tensor, nb: torch.Tensor, over: torch.Tensor, k_max: int,
              kn: Kernels) -> torch.Tensor:
    """Edges ``q -> nb`` (all live candidates of the over-cap queries ``over``) that fall outside
    their query's ``k_max`` nearest: float32 distance, ties to the smaller neighbour index.  Returned
    as sorted canonical keys ``q << bits | nb``."""
    n = x.shape[0]
    bits = _key_bits(n)
    xf = x.float()
    d2 = (xf.index_select(0, q) - xf.index_select(0, nb)).pow(2).sum(-1)
    # one value sort per group of queries on (query, distance, neighbour) packed in 63 bits: the
    # bit pattern of a non-negative float32 (31 bits) orders like its value; queries renumbered
    # from 0 within a group take the remaining 32 - bits
    compact = torch.full((n,), -1, dtype=torch.long, device=q.device)
    compact[over] = torch.arange(over.numel(), device=q.device)
    qc = compact[q]
    base = (d2.view(torch.int32).long() << bits) | nb
    group = min(1 << (32 - bits), kn.cap_group)
    out = []
    for g0 in range(0, over.numel(), group):
        if over.numel() > group:
            sel = torch.nonzero((qc >= g0) & (qc < g0 + group)).squeeze(-1)
            gq, gbase = qc[sel] - g0, base[sel]
        else:
            gq, gbase = qc, base
        key = _sort_values((gq << (31 + bits)) | gbase, kn)
        gq = key >> (31 + bits)
        c = torch.bincount(gq, minlength=min(group, over.numel() - g0))
        rank = torch.arange(key.numel(), device=key.device) - (torch.cumsum(c, 0) - c)[gq]
        beyond = key[rank >= k_max]
        out.append((over[(beyond >> (31 + bits)) + g0] << bits) | (beyond & ((1 << bits) - 1)))
    return _sort_values(torch.cat(out), kn)


def _sort_values(key: torch.Tensor, kn: Kernels) -> torch.Tensor:
    """Sorted copy of an integer tensor; NumPy's (vectorised) sort on CPU."""
    if _numpy(key, kn):
        return torch.from_numpy(np.sort(key.numpy()))
    return torch.sort(key).values


def _canonical(src: torch.Tensor, dst: torch.Tensor, n: int, kn: Kernels, both_ways: bool = False,
               drop: torch.Tensor | None = None, remove: torch.Tensor | None = None) -> torch.Tensor:
    """Edges sorted by (query, neighbour), by sorting one packed integer key ``src << bits | dst``
    per edge.  ``both_ways``: (src, dst) are unordered pairs; edge p is src[p] -> dst[p] and edge
    M + p the reverse.  ``drop``: distinct positions of edges to leave out (given the largest key,
    so the sort moves them to the end, where they are cut).  ``remove``: sorted keys to leave out."""
    bits = _key_bits(n)
    mask = (1 << bits) - 1
    n_drop = 0 if drop is None else int(drop.numel())
    if _numpy(src, kn):
        dtype = np.uint32 if 2 * bits <= 32 else np.int64      # 32-bit keys sort twice as fast
        s, d = src.numpy().astype(dtype), dst.numpy().astype(dtype)
        shift, m = dtype(bits), s.size
        key = np.empty(2 * m if both_ways else m, dtype)    # filled in place: no temporaries
        np.left_shift(s, shift, out=key[:m])
        np.bitwise_or(key[:m], d, out=key[:m])
        if both_ways:
            np.left_shift(d, shift, out=key[m:])
            np.bitwise_or(key[m:], s, out=key[m:])
        if n_drop:
            key[drop.numpy()] = np.iinfo(dtype).max
        key.sort()
        key = key[:key.size - n_drop]
        if remove is not None and remove.numel():
            key = np.delete(key, np.searchsorted(key, remove.numpy().astype(dtype)))
        out = np.empty((2, key.size), np.int64)
        np.right_shift(key, shift, out=out[0], casting="unsafe")
        np.bitwise_and(key, dtype(mask), out=out[1], casting="unsafe")
        return torch.from_numpy(out)
    if both_ways:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    if n_drop:
        keep = torch.ones(src.numel(), dtype=torch.bool, device=src.device)
        keep[drop] = False
        src, dst = src[keep], dst[keep]
    key = torch.sort((src << bits) | dst).values
    if remove is not None and remove.numel():
        keep = torch.ones(key.numel(), dtype=torch.bool, device=key.device)
        keep[torch.searchsorted(key, remove)] = False
        key = key[keep]
    return torch.stack([key >> bits, key & mask])


def _cap_removals(x: torch.Tensor, directions: list[tuple[torch.Tensor, torch.Tensor]], dead: torch.Tensor,
                  k_max: int, kn: Kernels) -> torch.Tensor | None:
    """Sorted keys of the edges the ``k_max`` cap removes, or None when no query is over it.
    ``directions``: (query, neighbour) arrays of the candidates, all indexed alike (one pair for
    directed candidates; both orientations for unordered pairs); ``dead``: positions rejected already."""
    n = x.shape[0]
    degree = sum(torch.bincount(q, minlength=n) - torch.bincount(q[dead], minlength=n) for q, _ in directions)
    over = degree > k_max
    if not bool(over.any()):
        return None
    alive = torch.ones(directions[0][0].numel(), dtype=torch.bool, device=over.device)
    alive[dead] = False
    picks = [torch.nonzero(alive & over.index_select(0, q)).squeeze(-1) for q, _ in directions]
    return _cap_keys(x, torch.cat([q[p] for (q, _), p in zip(directions, picks)]),
                     torch.cat([nb[p] for (_, nb), p in zip(directions, picks)]), torch.nonzero(over).squeeze(-1), k_max, kn)


def _finalize(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, d2: torch.Tensor, r: float,
              k_max: int | None, tol: float, kn: Kernels) -> torch.Tensor:
    """Directed candidates (with approximate squared distances, good to ``tol``) to the final edges."""
    keep = (src != dst) & (d2 < r * r + tol)
    src, dst, d2 = src[keep], dst[keep], d2[keep]
    drop = _boundary_drops(x, src, dst, d2, r, tol)
    remove = _cap_removals(x, [(src, dst)], drop, k_max, kn) if k_max is not None and src.numel() else None
    return _canonical(src, dst, x.shape[0], kn, drop=drop, remove=remove)


def _finalize_pairs(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, d2: torch.Tensor, r: float,
                    k_max: int | None, tol: float, kn: Kernels) -> torch.Tensor:
    """Unordered candidate pairs (each once, approximate squared distances good to ``tol``) to the
    final directed edges: radius test at the boundary, both directions, the cap, canonical order."""
    outside = _boundary_drops(x, i, j, d2, r, tol)      # pairs beyond r after all
    remove = _cap_removals(x, [(i, j), (j, i)], outside, k_max, kn) if k_max is not None and i.numel() else None
    return _canonical(i, j, x.shape[0], kn, both_ways=True, drop=torch.cat([outside, outside + i.numel()]),
                      remove=remove)


# --------------------------------------------------------------------------- grid backend


def _principal_axes(x: torch.Tensor) -> torch.Tensor:
    """Centre and rotate onto the principal axes, largest variance first (distances unchanged)."""
    xc = x - x.mean(0, keepdim=True)
    _, vecs = torch.linalg.eigh(xc.T @ xc)
    return xc @ vecs.flip(-1)


def hilbert_key(cell: torch.Tensor, use_numpy: bool = True) -> torch.Tensor:
    """Position along a Hilbert curve of non-negative integer cell coordinates (N, g), by
    Skilling's transpose algorithm (AIP Conf. Proc. 707, 381, 2004), vectorised over the cells.
    Neighbouring keys are neighbouring cells, so runs of sorted points stay compact.  ``use_numpy``:
    NumPy's integer ops for CPU tensors (less overhead than torch's)."""
    g = cell.shape[1]
    bits = min(max(1, int(cell.max()).bit_length()), 63 // g)
    cpu = use_numpy and cell.device.type == "cpu"
    xp = np if cpu else torch          # the same integer ops; NumPy's have less overhead on CPU
    cell = cell.clamp_max((1 << bits) - 1)
    small = g * bits <= 31             # the key fits 32 bits: half the memory traffic
    axes = list(cell.to(torch.int32 if small else torch.int64).T.contiguous())
    axes = [c.numpy() for c in axes] if cpu else axes
    q = 1 << (bits - 1)
    while q > 1:              # undo the excess work of the reflected Gray code, bit plane by plane
        p = q - 1
        for i in range(g):
            high = (axes[i] & q) != 0
            if i == 0:
                axes[0] = xp.where(high, axes[0] ^ p, axes[0])
            else:
                swap = (axes[0] ^ axes[i]) & p
                axes[0], axes[i] = xp.where(high, axes[0] ^ p, axes[0] ^ swap), xp.where(high, axes[i], axes[i] ^ swap)
        q >>= 1
    for i in range(1, g):     # Gray encode
        axes[i] = axes[i] ^ axes[i - 1]
    flip = xp.zeros_like(axes[0])
    q = 1 << (bits - 1)
    while q > 1:
        flip = xp.where((axes[g - 1] & q) != 0, flip ^ (q - 1), flip)
        q >>= 1
    key = xp.zeros_like(axes[0])
    for b in range(bits - 1, -1, -1):   # interleave the transposed bits, most significant first
        for i in range(g):
            key = (key << 1) | (((axes[i] ^ flip) >> b) & 1)
    key = torch.from_numpy(key) if cpu else key
    return key.long()


def _tile_pairs(lo: torch.Tensor, hi: torch.Tensor, thr: float, top: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile pairs (a <= b) whose bounding boxes come closer than ``sqrt(thr)``, by a dual traversal of
    the binary hierarchy over consecutive tiles (each level's boxes bound two children)."""
    nt, d = lo.shape
    size = 1 << max(0, (nt - 1).bit_length())
    if size > nt:   # empty tiles: boxes that never meet anything
        lo = torch.cat([lo, lo.new_full((size - nt, d), math.inf)])
        hi = torch.cat([hi, hi.new_full((size - nt, d), -math.inf)])
    levels = [(lo, hi)]
    while levels[-1][0].shape[0] > 1:
        lo, hi = levels[-1]
        levels.append((torch.minimum(lo[0::2], lo[1::2]), torch.maximum(hi[0::2], hi[1::2])))
    levels.reverse()      # levels[k] has 2^k boxes

    def close(a, b, lo, hi):
        gap = (lo[b] - hi[a]).clamp_min(0) + (lo[a] - hi[b]).clamp_min(0)
        ok = gap.pow(2).sum(-1) < thr
        return a[ok], b[ok]

    k0 = min(len(levels) - 1, top)
    a, b = close(*torch.triu_indices(1 << k0, 1 << k0, device=lo.device), *levels[k0])
    for lo, hi in levels[k0 + 1:]:
        ca = torch.stack([2 * a, 2 * a, 2 * a + 1, 2 * a + 1], 1).view(-1)
        cb = torch.stack([2 * b, 2 * b + 1, 2 * b, 2 * b + 1], 1).view(-1)
        upper = ca <= cb      # a diagonal pair (a, a) has three distinct children pairs
        a, b = close(ca[upper], cb[upper], lo, hi)
    return a, b


def _dense_hits(left: torch.Tensor, right: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n_diag: int,
                thr: float, kn: Kernels) -> tuple[torch.Tensor, torch.Tensor]:
    """All squared distances of tile pairs (a, b), a batch at a time in one matrix product; returns
    the flat positions (pair, row, column) below ``thr`` and their values.  The first ``n_diag``
    pairs are diagonal (a == b): only their upper triangle counts."""
    dev, tile = left.device, left.shape[1]
    cpu = _numpy(left, kn)
    chunk = 256 if dev.type == "cpu" else 1 << 15      # CPU: a batch stays in cache
    out = torch.empty(chunk, tile, tile, device=dev)
    hit = torch.empty(chunk, tile, tile, dtype=torch.bool, device=dev)
    upper = torch.ones(tile, tile, dtype=torch.bool, device=dev).triu(1)
    flat, dist = [], []
    for s in range(0, a.numel(), chunk):
        e = min(s + chunk, a.numel())
        o, h = out[:e - s], hit[:e - s]
        torch.bmm(left.index_select(0, a[s:e]), right.index_select(0, b[s:e]), out=o)
        if cpu:   # NumPy's compare and nonzero are several times faster than torch's on small CPU arrays
            on, hn = o.numpy(), h.numpy()
            np.less(on, thr, out=hn)
            if s < n_diag:
                hn[:min(n_diag, e) - s] &= upper.numpy()
            idx = np.flatnonzero(hn)
            dist.append(on.reshape(-1)[idx])
            flat.append(idx + s * tile * tile)
        else:
            torch.lt(o, thr, out=h)
            if s < n_diag:
                h[:min(n_diag, e) - s] &= upper
            idx = torch.nonzero(h.view(-1)).squeeze(1)
            dist.append(o.view(-1).index_select(0, idx))
            flat.append(idx + s * tile * tile)
    if cpu:
        return torch.from_numpy(np.concatenate(flat)), torch.from_numpy(np.concatenate(dist))
    return torch.cat(flat), torch.cat(dist)


def _hilbert_tiles(y: torch.Tensor, r: float, kn: Kernels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort points (already on their principal axes) into the cells (side ``CELL_FRACTION`` r) of a
    uniform grid on the leading ``GRID_DIMS`` axes, cells along a Hilbert curve, and cut the order
    into tiles of ``TILE``.  Returns the order (padded to whole tiles), a (tiles, TILE) mask of real
    slots and the tiled points."""
    n, dim = y.shape
    g = min(GRID_DIMS, dim)
    cell = torch.floor((y[:, :g] - y[:, :g].min(0).values) / (CELL_FRACTION * r)).long()
    perm = _argsort(hilbert_key(cell, kn.numpy_on_cpu), kn)
    nt = -(-n // TILE)
    perm = torch.cat([perm, perm.new_zeros(nt * TILE - n)])    # the last tile's empty slots
    valid = (torch.arange(nt * TILE, device=y.device) < n).view(nt, TILE)
    return perm, valid, y.index_select(0, perm).view(nt, TILE, dim)


def _augmented(yt: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tile [y, |y|², 1] and [-2y, 1, |y|²]ᵀ, whose product is the squared distance matrix.
    Empty slots get zero coordinates and a huge |y|², so every product with them is far beyond r²
    (no cancellation: their dot products are exactly zero)."""
    yt = torch.where(valid[..., None], yt, 0.0)
    sq = torch.where(valid, yt.pow(2).sum(-1), 1e30).unsqueeze(-1)
    one = torch.ones_like(sq)
    return torch.cat([yt, sq, one], -1), torch.cat([-2 * yt, one, sq], -1).transpose(1, 2).contiguous()


def _hit_points(flat: torch.Tensor, a: torch.Tensor, b: torch.Tensor, perm: torch.Tensor,
                kn: Kernels) -> tuple[torch.Tensor, torch.Tensor]:
    """Original indices of the two points of each hit: flat = (pair * TILE + row) * TILE + column,
    and the row point sits at a[pair] * TILE + row of the sorted order."""
    t = TILE.bit_length() - 1
    row_shift = (a - torch.arange(a.numel(), device=a.device)) << t
    args = (flat, perm, row_shift, b << t)
    if _numpy(flat, kn):                           # NumPy's gathers are faster on CPU
        args = [v.numpy() for v in args]
    flat, perm, row_shift, col_shift = args
    pair = flat >> (2 * t)
    i = perm[(flat >> t) + row_shift[pair]]
    j = perm[(flat & (TILE - 1)) + col_shift[pair]]
    return (torch.from_numpy(i), torch.from_numpy(j)) if isinstance(i, np.ndarray) else (i, j)


def _grid(x: torch.Tensor, r: float, k_max: int | None, kn: Kernels) -> torch.Tensor:
    """Uniform-grid tiles.  Points are rotated onto their principal axes and counting-sorted into
    the cells (side r/2) of a uniform grid on the leading ``GRID_DIMS`` axes (Bentley 1977;
    Hoetzlein 2014), cells visited along a Hilbert curve.  The sorted points are cut into tiles of
    ``TILE``; tile pairs whose bounding boxes (in all dimensions, so any latent dimension works
    and no neighbour is lost) come within r are compared densely, all TILE x TILE squared
    distances of a batch of pairs in one batched matrix product.  Each unordered pair is found
    once and emitted in both directions."""
    y = _principal_axes(x.float())
    perm, valid, yt = _hilbert_tiles(y, r, kn)
    lo = torch.where(valid[..., None], yt, math.inf).amin(1)
    hi = torch.where(valid[..., None], yt, -math.inf).amax(1)
    tol = _radius_tolerance(y, r, source=x)
    a, b = _tile_pairs(lo, hi, r * r + tol)
    diag = a == b
    a, b = torch.cat([a[diag], a[~diag]]), torch.cat([b[diag], b[~diag]])   # diagonal tiles first
    flat, d2 = _dense_hits(*_augmented(yt, valid), a, b, int(diag.sum()), r * r + tol, kn)
    i, j = _hit_points(flat, a, b, perm, kn)
    return _finalize_pairs(x, i, j, d2, r, k_max, tol, kn)


# --------------------------------------------------------------------------- other backends


def _kdtree(x: torch.Tensor, r: float, k_max: int | None, kn: Kernels) -> torch.Tensor:
    from scipy.spatial import cKDTree

    pts = x.detach().cpu().double().numpy()
    tree = cKDTree(pts)
    bound = r * (1 + 1e-9)
    if k_max is None:
        pairs = tree.query_pairs(bound, output_type="ndarray")
        i = torch.as_tensor(pairs[:, 0], device=x.device)
        j = torch.as_tensor(pairs[:, 1], device=x.device)
        xd = x.double()
        d2 = (xd.index_select(0, i) - xd.index_select(0, j)).pow(2).sum(-1)   # exact already: no band
        return _finalize_pairs(x, i, j, d2, r, None, 0.0, kn)
    # a few extra neighbours so that float32 near-ties at the cap are ranked like every backend
    k = min(k_max + 17, len(pts))
    dist, idx = tree.query(pts, k=k, distance_upper_bound=bound, workers=-1)
    dist, idx = dist.reshape(len(pts), -1), idx.reshape(len(pts), -1)
    ok = np.isfinite(dist)
    src = torch.as_tensor(np.broadcast_to(np.arange(len(pts))[:, None], idx.shape)[ok], device=x.device)
    dst = torch.as_tensor(idx[ok], device=x.device)
    d2 = torch.as_tensor(dist[ok], device=x.device) ** 2   # float64: good to ~1e-15 relative
    return _finalize(x, src, dst, d2, r, k_max, 1e-9 * r * r, kn)


def _faiss(x: torch.Tensor, r: float, k_max: int | None, kn: Kernels) -> torch.Tensor:
    import faiss

    pts = np.ascontiguousarray(x.detach().cpu().float().numpy())
    index = faiss.IndexFlatL2(pts.shape[1])
    if x.is_cuda and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(pts)
    tol = _radius_tolerance(x, r)
    lims, d2, idx = index.range_search(pts, r * r + tol)
    src = np.repeat(np.arange(len(pts)), np.diff(lims.astype(np.int64)))
    src = torch.as_tensor(src, dtype=torch.long, device=x.device)
    dst = torch.as_tensor(idx.astype(np.int64), dtype=torch.long, device=x.device)
    return _finalize(x, src, dst, torch.as_tensor(d2, device=x.device), r, k_max, tol, kn)


def _cuda(x: torch.Tensor, r: float, k_max: int | None, kn: Kernels) -> torch.Tensor:
    if not torch.cuda.is_available():
        raise RuntimeError("build_edges: backend 'cuda' needs a CUDA device")
    return _grid(x.cuda(), r, k_max, kn).to(x.device)


def build_edges(x: torch.Tensor, r: float, k_max: int | None = None, backend: Backend = "auto",
                kernels: Kernels = Kernels()) -> torch.Tensor:
    """Directed radius graph (2, E) of points ``x`` (N, D): query -> neighbour within ``r``, capped
    at the ``k_max`` nearest per query.  Backends: grid (trkx's own uniform-grid tiles, CPU or
    CUDA), kdtree (scipy cKDTree), faiss (faiss-cpu / faiss-gpu), cuda (grid on the GPU); auto
    picks the fastest available (cuda on a GPU, else grid, as the graph-building benchmark measures).
    ``kernels`` chooses how the shared steps run (every choice gives the same edges)."""
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
        return fn(x.detach(), float(r), k_max, kernels)
