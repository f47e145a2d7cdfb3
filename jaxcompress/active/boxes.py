"""Box geometry on the host: IoU, box-to-pixel masks, class-wise greedy NMS.

Boxes are float or int [..., 4] = (top, left, bottom, right) in pixels,
bottom/right exclusive; a pixel (y, x) lies in a box when its centre
(y + 0.5, x + 0.5) does.

References:
  Neubeck & Van Gool, "Efficient Non-Maximum Suppression", ICPR 2006.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair. a [N, 4], b [M, 4] -> [N, M] (0 where both are empty).

    References:
      Everingham et al., IJCV 2010.
    """
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)

    def area(x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)

    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels inside each box. boxes [N, 4] -> bool [N, height, width]."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    rows = (ys[None, :] >= boxes[:, 0:1]) & (ys[None, :] < boxes[:, 2:3])
    cols = (xs[None, :] >= boxes[:, 1:2]) & (xs[None, :] < boxes[:, 3:4])
    return rows[:, :, None] & cols[:, None, :]


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float = 0.5,
        score_threshold: float = 0.0) -> np.ndarray:
    """Class-wise greedy non-maximum suppression.

    Args:
      boxes: [N, 4]; scores: [N]; classes: int [N].
      iou_threshold: a box is dropped when its IoU with a kept, higher-scored box of its class exceeds this.
      score_threshold: boxes scoring below are dropped first.

    Returns:
      int [n_kept] indices into the inputs, by descending score (ties: lower index first).

    References:
      Neubeck & Van Gool, ICPR 2006.
    """
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= score_threshold]
    iou = box_iou(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(classes[j] != classes[i] or iou[i, j] <= iou_threshold for j in kept):
            kept.append(int(i))
    return np.asarray(kept, np.int64)
