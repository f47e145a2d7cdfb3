"""Localisation scores of object-extent maps against known object boxes (NumPy).

A map is a score per cell of an N x N grid laid over an H x W image; its
object region is ``score > mean(score)`` (the rule OEL uses), each cell
covering an ``H/N x W/N`` block of pixels.

References:
  Zhou et al., "Look-into-Object", CVPR 2020 (m > mean(m) as the object
  region); Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016 (pointing game).
"""

from __future__ import annotations

import numpy as np


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [B, H, W] of boxes int [B, 4] = (top, left, bottom, right), bottom/right exclusive."""
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    t, l, b, r = (boxes[:, k, None, None] for k in range(4))
    return (rows >= t) & (rows < b) & (cols >= l) & (cols < r)


def region_pixels(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [B, H, W]: the cells with score above the image's mean, blown up to pixels.

    Args:
      scores: float [B, N, N] (or [B, N*N]) cell scores.
    """
    scores = np.asarray(scores, np.float64)
    b = scores.shape[0]
    n = int(round(np.sqrt(scores[0].size)))
    scores = scores.reshape(b, n, n)
    region = scores > scores.mean((1, 2), keepdims=True)
    rows = np.minimum(np.arange(height) * n // height, n - 1)
    cols = np.minimum(np.arange(width) * n // width, n - 1)
    return region[:, rows][:, :, cols]


def iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union per image of bool [B, H, W] masks -> float [B]."""
    inter = (pred & truth).sum((1, 2))
    union = (pred | truth).sum((1, 2))
    return inter / np.maximum(union, 1)


def pointing(scores: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pointing game per image: is the centre of the highest-scoring cell inside the box? -> float [B]."""
    scores = np.asarray(scores).reshape(scores.shape[0], -1)
    n = int(round(np.sqrt(scores.shape[1])))
    best = scores.argmax(1)
    y = (best // n + 0.5) * height / n
    x = (best % n + 0.5) * width / n
    return ((y >= boxes[:, 0]) & (y < boxes[:, 2]) & (x >= boxes[:, 1]) & (x < boxes[:, 3])).astype(np.float64)


def localisation_scores(scores: np.ndarray, boxes: np.ndarray, height: int, width: int) -> dict[str, float]:
    """Mean IoU of ``score > mean`` with the boxes and pointing-game accuracy over a batch."""
    region = region_pixels(scores, height, width)
    return {"iou": float(iou(region, box_masks(boxes, height, width)).mean()),
            "pointing": float(pointing(scores, boxes, height, width).mean())}
