"""V-measure (homogeneity, completeness, their harmonic mean) of a hit clustering, optionally
weighted by hit weights (each hit counts with its weight instead of one)."""
from __future__ import annotations

import numpy as np


def _entropy_terms(truth: np.ndarray, pred: np.ndarray, w: np.ndarray):
    """Entropies of the truth and predicted labels and the two conditional entropies, from the
    (truth, prediction) pairs that occur: memory grows with the hits, not with particles x
    clusters (a dense table of 13k particles by 80k clusters, unassigned hits counted as
    singletons, would take 8 GB at tt̄ + 200 pile-up)."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    total = w.sum()
    n_p = int(p.max()) + 1
    pairs, inv = np.unique(t.astype(np.int64) * n_p + p, return_inverse=True)
    joint = np.bincount(inv.ravel(), weights=w) / total
    ti, pi = pairs // n_p, pairs % n_p
    pt = np.bincount(t.ravel(), weights=w) / total
    pp = np.bincount(p.ravel(), weights=w) / total
    nz = joint > 0
    joint, ti, pi = joint[nz], ti[nz], pi[nz]
    h_t = -np.sum(pt[pt > 0] * np.log(pt[pt > 0]))
    h_p = -np.sum(pp[pp > 0] * np.log(pp[pp > 0]))
    h_t_given_p = -np.sum(joint * np.log(joint / pp[pi]))
    h_p_given_t = -np.sum(joint * np.log(joint / pt[ti]))
    return h_t, h_p, h_t_given_p, h_p_given_t


def v_score(truth_labels, pred_labels, weights=None, beta: float = 1.0,
            unassigned_as_singletons: bool = True) -> dict:
    """{homogeneity, completeness, v_measure}; ``weights`` None gives scikit-learn's values.
    Predicted label -1 (unassigned) becomes one singleton cluster per hit when asked."""
    truth = np.asarray(truth_labels)
    pred = np.asarray(pred_labels).astype(np.int64).copy()
    if truth.shape != pred.shape:
        raise ValueError("v_score: truth and prediction differ in length")
    if truth.size == 0:
        return {"homogeneity": 1.0, "completeness": 1.0, "v_measure": 1.0}
    if unassigned_as_singletons:
        un = pred < 0
        pred[un] = pred.max(initial=-1) + 1 + np.arange(un.sum())
    w = np.ones(truth.size) if weights is None else np.asarray(weights, dtype=float)
    if w.sum() <= 0:
        raise ValueError("v_score: weights sum to zero")
    h_t, h_p, h_tp, h_pt = _entropy_terms(truth, pred, w)
    hom = 1.0 if h_t == 0 else 1.0 - h_tp / h_t
    com = 1.0 if h_p == 0 else 1.0 - h_pt / h_p
    v = 0.0 if hom + com == 0 else (1 + beta) * hom * com / (beta * hom + com)
    return {"homogeneity": float(hom), "completeness": float(com), "v_measure": float(v)}
