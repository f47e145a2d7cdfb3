"""Segment boundaries on a frame grid, and the pseudo weights that supervise CIF.

Segments (phones, pauses, words) come from synthesis in seconds. On a frame
grid of period ``p`` seconds a segment that ends at time ``e`` ends at frame
boundary ``round(e / p)``; boundaries are stored as 1-based indices of the
last frame of each segment (the format of the OFA reference's boundary files),
strictly increasing, the last one equal to the number of frames. Segments that
round to zero frames merge into their neighbour.

The pseudo weight of a frame is ``1 / L`` for a segment of ``L`` frames, so the
weights of one segment sum to one and a CIF that follows them fires once per
segment.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332) (pseudo alpha and
boundary files); Meng et al., "On Compressing Sequences for Self-Supervised
Speech Models", SLT 2022 (arXiv 2210.07189) (oracle phonetic boundaries).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def frame_boundaries(ends: Sequence[float] | np.ndarray, num_frames: int, frame_period: float) -> np.ndarray:
    """1-based last-frame indices of segments ending at times ``ends`` (seconds).

    Args:
        ends: segment end times in seconds, non-decreasing; negative entries
            (padding) are ignored.
        num_frames: frames on the grid (the utterance's length); the final
            boundary is always ``num_frames``.
        frame_period: seconds per frame (0.02 at 50 Hz).

    Returns:
        int32 [K], strictly increasing, in ``[1, num_frames]``, last entry
        ``num_frames`` (empty when ``num_frames == 0``).
    """
    if num_frames <= 0:
        return np.zeros(0, np.int32)
    ends = np.asarray(ends, np.float64)
    ends = ends[ends >= 0]
    idx = np.clip(np.rint(ends / frame_period).astype(np.int64), 1, num_frames)
    idx = np.unique(np.append(idx, num_frames))  # sorted, duplicates (zero-frame segments) merged
    return idx.astype(np.int32)


def pseudo_alpha(boundaries: np.ndarray, num_frames: int, total_frames: int | None = None) -> np.ndarray:
    """``1 / L`` on every frame of an ``L``-frame segment; zero past ``num_frames``.

    Args:
        boundaries: int [K] from :func:`frame_boundaries`.
        num_frames: valid frames.
        total_frames: length of the returned (padded) array; default ``num_frames``.

    Returns:
        float32 [total_frames] whose sum is ``K``.
    """
    total = num_frames if total_frames is None else total_frames
    out = np.zeros(total, np.float32)
    start = 0
    for end in np.asarray(boundaries, np.int64):
        out[start:end] = 1.0 / (end - start)
        start = int(end)
    return out


def pad_boundaries(boundaries: np.ndarray, size: int) -> np.ndarray:
    """Pads with -1 to ``size`` (the last boundaries are merged if there are too many)."""
    boundaries = np.asarray(boundaries, np.int32)
    if boundaries.size > size:
        boundaries = np.concatenate([boundaries[:size - 1], boundaries[-1:]])
    return np.concatenate([boundaries, np.full(size - boundaries.size, -1, np.int32)])


def boundary_f1(predicted: np.ndarray, reference: np.ndarray, tolerance: int = 1) -> tuple[float, float, float]:
    """Precision, recall and F1 of predicted boundaries within ``tolerance`` frames.

    Each reference boundary is matched to at most one prediction (greedy in time
    order), as in segmentation evaluations.
    """
    predicted = np.sort(np.asarray(predicted))
    reference = np.sort(np.asarray(reference))
    used = np.zeros(predicted.size, bool)
    hits = 0
    for r in reference:
        close = np.flatnonzero(~used & (np.abs(predicted - r) <= tolerance))
        if close.size:
            used[close[np.argmin(np.abs(predicted[close] - r))]] = True
            hits += 1
    precision = hits / predicted.size if predicted.size else 0.0
    recall = hits / reference.size if reference.size else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
