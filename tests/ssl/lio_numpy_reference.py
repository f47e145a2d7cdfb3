"""Slow NumPy loops for the Look-into-Object targets and losses (independent of jaxcompress.ssl.lio_targets).

References:
  Zhou et al., "Look-into-Object", CVPR 2020; JDAI-CV/LIO rela_cal.py and coord_predict.py.
"""

from __future__ import annotations

import math

import numpy as np


def oel_target(group: np.ndarray) -> np.ndarray:
    """group [G, S, C] -> [G, S]: mean over other images of the best dot product / C, by loops."""
    g, s, c = group.shape
    out = np.zeros((g, s))
    for a in range(g):
        for i in range(s):
            total = 0.0
            for b in range(g):
                if b == a:
                    continue
                total += max(float(np.dot(group[a, i], group[b, j])) / c for j in range(s))
            out[a, i] = total / (g - 1)
    return out


def reference_groups(anchor_major: list, group_size: int) -> list[list]:
    """The reference code's groups: stack [anchors; 1st positives; ...], take consecutive rows."""
    b = len(anchor_major) // group_size
    stacked = [anchor_major[k * group_size + m] for m in range(group_size) for k in range(b)]
    return [stacked[k * group_size:(k + 1) * group_size] for k in range(b)]


def polar(anchor: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance and angle of every cell (row-major) relative to the anchor cell, by loops."""
    ro, co = divmod(anchor, size)
    d = np.zeros(size * size)
    t = np.zeros(size * size)
    for cell in range(size * size):
        r, c = divmod(cell, size)
        dr, dc = (r - ro) / size, (c - co) / size
        d[cell] = math.hypot(dr, dc)
        t[cell] = (math.atan2(dc, dr) / math.pi + 1.0) / 2.0
    return d, t


def scl_loss(pred: np.ndarray, anchors: np.ndarray, region: np.ndarray, size: int) -> float:
    """pred [B, S, 2], anchors [B], region [B, S] -> the masked polar loss averaged over all B*S cells."""
    b, s, _ = pred.shape
    total = 0.0
    for k in range(b):
        d, t = polar(int(anchors[k]), size)
        gaps = []
        for i in range(s):
            gap = pred[k, i, 1] - t[i]
            gaps.append(gap + 1.0 if gap < 0 else gap)
        mean_gap = sum(gaps) / s
        for i in range(s):
            total += ((pred[k, i, 0] - d[i]) ** 2 + (gaps[i] - mean_gap) ** 2) * region[k, i]
    return total / (b * s)


def anchor_cell(structure: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """structure [B, S, C'], mask [B, S] -> argmax of mean_c(h) inside m > mean(m), by loops."""
    out = []
    for k in range(structure.shape[0]):
        threshold = mask[k].mean()
        scores = [structure[k, i].mean() * (1.0 if mask[k, i] > threshold else 0.0)
                  for i in range(structure.shape[1])]
        out.append(int(np.argmax(scores)))
    return np.asarray(out)
