"""V-measure (homogeneity, completeness, their harmonic mean) of a hit clustering, optionally
weighted by hit weights (each hit counts with its weight instead of one)."""
from __future__ import annotations

import numpy as np


def _entropy_terms(truth: np.ndarray, pred: np.ndarray, w: np.ndarray):
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    total = w.sum()
    joint = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(joint, (t, p), w)
    joint /= total
    pt, pp = joint.sum(1), joint.sum(0)
    nz = joint > 0
    h_t = -np.sum(pt[pt > 0] * np.log(pt[pt > 0]))
    h_p = -np.sum(pp[pp > 0] * np.log(pp[pp > 0]))
    ti, pi = np.nonzero(nz)
    h_t_given_p = -np.sum(joint[nz] * np.log(joint[nz] / pp[pi]))
    h_p_given_t = -np.sum(joint[nz] * np.log(joint[nz] / pt[ti]))
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
