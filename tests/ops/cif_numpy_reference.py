"""A slow, independent CIF in NumPy float64: the sequential integrate-and-fire loop.

It walks the frames in order, pours each frame's weight into the current
output until the output holds ``beta``, fires, and carries the remainder to
the next output. Nothing here shares code or formulas (cumsum, overlap matrix,
two-bin form) with ``jaxcompress.ops``.

References: Dong & Xu, "CIF: Continuous Integrate-and-Fire for End-to-End
Speech Recognition", ICASSP 2020; Chen, Meng, Lee, "Once-for-All Sequence
Compression for Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332).
"""

from __future__ import annotations

import numpy as np


def cif_loop(
    x: np.ndarray,
    alpha: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    beta: float = 1.0,
    training: bool = True,
    tail_threshold: float = 0.5,
    min_frames: int = 0,
    fire_tol: float = 1e-6,
) -> list[np.ndarray]:
    """Pools every row; returns a list of [T_b, D] float64 arrays (one per row).

    Args:
        x: [B, S, D] frames.
        alpha: [B, S] weights in [0, beta].
        mask: [B, S] bool or None.
        beta, training, tail_threshold, min_frames: as in ``cif_pool``.
        fire_tol: an output fires once it holds ``beta * (1 - fire_tol)``, which
            absorbs float32 rounding of alpha (e.g. 1/3 stored in float32).
    """
    x = np.asarray(x, np.float64)
    alpha = np.asarray(alpha, np.float64)
    mask = np.ones(alpha.shape, bool) if mask is None else np.asarray(mask, bool)
    rows = []
    for b in range(x.shape[0]):
        a = [alpha[b, s] if mask[b, s] else 0.0 for s in range(x.shape[1])]
        total = sum(a)
        if min_frames and 0 < total < min_frames * beta:
            factor = min((min_frames + 1e-4) * beta / total, beta / max(a))
            a = [min(v * factor, beta) for v in a]
        outputs = []
        acc = 0.0
        cur = np.zeros(x.shape[2])
        for s, weight in enumerate(a):
            remaining = weight
            while remaining > 0:
                take = min(remaining, beta - acc)
                cur = cur + take * x[b, s]
                acc += take
                remaining -= take
                if acc >= beta * (1 - fire_tol):
                    outputs.append(cur)
                    cur = np.zeros(x.shape[2])
                    acc = 0.0
                    # A nearly empty remainder is rounding, not a new output.
                    if remaining < beta * fire_tol:
                        remaining = 0.0
        if not training and acc >= tail_threshold * beta:
            outputs.append(cur * beta / acc)
        rows.append(np.array(outputs).reshape(len(outputs), x.shape[2]))
    return rows


def pad_rows(rows: list[np.ndarray], num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Stacks per-row outputs into [B, T, D] (zero padded) and lengths [B]."""
    d = rows[0].shape[1]
    out = np.zeros((len(rows), num_frames, d))
    lengths = np.zeros(len(rows), np.int64)
    for b, r in enumerate(rows):
        n = min(len(r), num_frames)
        out[b, :n] = r[:n]
        lengths[b] = n
    return out, lengths
