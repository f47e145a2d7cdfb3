"""An independent NumPy port of SPAN in the reference code's style: one graph at a time.

Gradients are derived by hand (eigenvalue perturbation theory plus the chain
rule through the degree normalisation) rather than by autodiff, and the
projection is a plain bisection loop, so agreement with the JAX version is a
real check. The benchmark times this loop against the batched JAX version.

References:
  Lin, Chen & Wang, "Spectral Augmentation for Self-Supervised Learning on
  Graphs", ICLR 2023 (Augmentor.py of the authors' code, re-derived).
"""

from __future__ import annotations

import numpy as np


def flip_signs(a: np.ndarray) -> np.ndarray:
    n = a.shape[0]
    return (np.ones((n, n)) - np.eye(n) - a) - a


def operator(x: np.ndarray, kind: str) -> np.ndarray:
    """GCN adjacency (with self-loops) or normalised Laplacian of a weighted graph x [n, n]."""
    n = x.shape[0]
    if kind == "gcn_adj":
        x = x + np.eye(n)
    d = x.sum(1)
    r = np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-12)), 0.0)
    normed = r[:, None] * x * r[None, :]
    return normed if kind == "gcn_adj" else np.eye(n) - normed


def objective(p: np.ndarray, a: np.ndarray, kind: str) -> float:
    """||eig(op(A + C * P))|| / ||eig(op(A))|| for symmetric P."""
    view = np.linalg.eigvalsh(operator(a + flip_signs(a) * p, kind))
    base = np.linalg.eigvalsh(operator(a, kind))
    return float(np.linalg.norm(view) / np.linalg.norm(base))


def gradient(p: np.ndarray, a: np.ndarray, kind: str, ref: float | None = None) -> np.ndarray:
    """d objective / d u_ij for the upper-triangle parameters u (P = u + u^T); [n, n] upper."""
    n = a.shape[0]
    c = flip_signs(a)
    x = a + c * p
    if kind == "gcn_adj":
        x = x + np.eye(n)
    d = x.sum(1)
    r = np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-12)), 0.0)
    normed = r[:, None] * x * r[None, :]
    m = normed if kind == "gcn_adj" else np.eye(n) - normed
    lam, vec = np.linalg.eigh(m)
    if ref is None:
        ref = np.linalg.norm(np.linalg.eigvalsh(operator(a, kind)))
    g_m = (vec * (lam / (np.linalg.norm(lam) * ref))) @ vec.T  # d||lam|| / dM = sum lam_i v_i v_i^T / ||lam||
    g_n = g_m if kind == "gcn_adj" else -g_m  # derivative w.r.t. the normalised part
    s = -(g_n * normed).sum(1) / np.where(d > 0, d, 1.0)
    g_x = r[:, None] * g_n * r[None, :] + s[:, None]  # dd_i / dX_il = 1 for every l
    return np.triu(c * (g_x + g_x.T), 1)


def project(u: np.ndarray, budget: float, clip_max: float = 1.0, tol: float = 1e-7) -> np.ndarray:
    """Projection of the upper-triangle entries onto {0 <= u <= clip_max, sum u <= budget}."""
    iu = np.triu_indices(u.shape[0], 1)
    v = u[iu]
    if np.clip(v, 0, clip_max).sum() > budget:
        lo, hi = min(v.min(), 0.0), v.max()
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            if np.clip(v - mid, 0, clip_max).sum() > budget:
                lo = mid
            else:
                hi = mid
        v = np.clip(v - hi, 0, clip_max)
    else:
        v = np.clip(v, 0, clip_max)
    out = np.zeros_like(u)
    out[iu] = v
    return out


def optimise(a: np.ndarray, init_upper: np.ndarray, sign: float, kind: str = "gcn_adj", ratio: float = 0.2,
             lr: float = 0.5, iterations: int = 20, normalize: bool = True, clip_max: float = 1.0) -> np.ndarray:
    """Projected gradient ascent of ``sign * objective`` for one graph; returns symmetric P [n, n]."""
    budget = ratio * a.sum() / 2
    ref = np.linalg.norm(np.linalg.eigvalsh(operator(a, kind)))  # the original spectrum, once per graph
    u = project(np.triu(init_upper, 1), budget, clip_max)
    for t in range(iterations):
        p = u + u.T
        g = sign * gradient(p, a, kind, ref)
        if normalize:
            g = g / max(np.abs(g).max(), 1e-12)
        u = project(u + lr / np.sqrt(t + 2.0) * g, budget, clip_max)
    return u + u.T
