"""Inter-task inconsistency between detected boxes and the semantic segmentation of one image.

Three constraints couple the tasks; each violation is a score in [0, 1]
(0 = consistent):

1. ``box_without_pixels`` (per box b of class c): a box must contain its
   object's pixels. ``u1(b) = 1 - min(1, |O(b)| / (rho * area(b)))`` with
   ``O(b)`` the pixels assigned to b (below) and rho the expected fill ratio.
2. ``pixels_without_box`` (per segment K of a thing class c, area >= a_min):
   class pixels must lie in some box of that class.
   ``u2(K) = 1 - max_{b of class c} |K n b| / |K|`` (1 when no box of class c).
3. ``class_disagreement`` (per box b of class c): the thing pixels inside the
   box must carry the box's class. ``u3(b) = 1 - n_c(b) / n_thing(b)``, the
   share of thing-class pixels in b that belong to another thing class
   (0 when b holds no thing pixels: that case is constraint 1's).

Pixel assignment ``O(b)``: the pixels of b whose segmentation class is c;
a pixel claimed by several same-class boxes goes to one of them (highest
detection score, or the box whose bottom edge is lowest: nearest the camera
in a street scene); then the largest 4-connected component is kept (or all
components of at least ``min_component`` pixels).

Image score: ``U = agg_b score_b * (w1 u1 + w3 u3) + agg_K w2 u2`` with agg
mean, max or sum over the image's boxes and segments (an empty set adds 0).

The constraint set, assignment rule and aggregation follow our reading of
the paper's abstract (no public code exists); each is a setting so the exact
published variant can be configured once known.

References:
  Hekimoglu, Friedrich, Zimmer, Schmidt, Marcos-Ramiro & Knoll, "Multi-Task
  Consistency for Active Learning", ICCV 2023 Workshops (arXiv 2306.12398).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcompress.active.boxes import box_masks
from jaxcompress.active.components import label_components, largest_component
from jaxcompress.errors import ConfigError

AGGREGATES = ("mean", "max", "sum")
OVERLAP_RULES = ("score", "lowest")
COMPONENT_RULES = ("largest", "all")


@dataclasses.dataclass(frozen=True)
class ConsistencySettings:
    """How boxes and pixels are matched and scored (see the module docstring)."""

    thing_offset: int = 2  # segmentation class of detection class c is c + thing_offset
    num_det_classes: int = 3
    fill_ratio: float = 0.3
    min_component: int = 4
    component_rule: str = "largest"
    overlap_rule: str = "score"
    aggregate: str = "mean"
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        for field, value, allowed in (("aggregate", self.aggregate, AGGREGATES),
                                      ("overlap_rule", self.overlap_rule, OVERLAP_RULES),
                                      ("component_rule", self.component_rule, COMPONENT_RULES)):
            if value not in allowed:
                raise ConfigError(f"consistency setting {field!r} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0.0 < self.fill_ratio <= 1.0:
            raise ConfigError(f"consistency setting 'fill_ratio' must be in (0, 1], got {self.fill_ratio}")


def assign_pixels(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, seg: np.ndarray,
                  settings: ConsistencySettings) -> np.ndarray:
    """Object pixels ``O(b)`` of every box.

    Args:
      boxes: [N, 4] (top, left, bottom, right); scores: [N]; classes: int [N] detection classes.
      seg: int [H, W] predicted segmentation classes.

    Returns:
      bool [N, H, W]; the rows are disjoint among boxes of one class.

    References:
      Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    n = len(boxes)
    height, width = seg.shape
    inside = box_masks(boxes, height, width)
    candidate = inside & (seg[None] == (np.asarray(classes) + settings.thing_offset)[:, None, None])
    if n == 0:
        return candidate
    # Priority of each box when pixels are contested: higher wins, ties to the lower index.
    if settings.overlap_rule == "score":
        priority = np.asarray(scores, np.float64)
    else:
        priority = np.asarray(boxes, np.float64)[:, 2]
    order = np.lexsort((np.arange(n), -priority))  # best first
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    owned = np.zeros_like(candidate)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        claims = np.where(candidate[members], rank[members][:, None, None], n)  # [m, H, W]
        winner = claims.argmin(0)
        claimed = claims.min(0) < n
        for k, i in enumerate(members):
            owned[i] = claimed & (winner == k)
    if settings.component_rule == "largest":
        return np.stack([largest_component(m) for m in owned])
    kept = []
    for m in owned:
        labels, count = label_components(m)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        big = np.flatnonzero(sizes >= settings.min_component)
        kept.append(np.isin(labels, big[big > 0]))
    return np.stack(kept)


def constraint_scores(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, seg: np.ndarray,
                      settings: ConsistencySettings) -> dict[str, np.ndarray]:
    """The three constraint violations of one image.

    Args:
      boxes: [N, 4]; scores: [N]; classes: int [N]; seg: int [H, W] (see :func:`assign_pixels`).

    Returns:
      ``box_without_pixels`` [N], ``class_disagreement`` [N], ``pixels_without_box`` [M] (one per
      thing segment of at least ``min_component`` pixels), ``segment_classes`` int [M] and
      ``object_pixels`` bool [N, H, W].

    References:
      Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).reshape(-1)
    height, width = seg.shape
    inside = box_masks(boxes, height, width)
    owned = assign_pixels(boxes, scores, classes, seg, settings)
    area = inside.sum((1, 2))
    u1 = 1.0 - np.minimum(1.0, owned.sum((1, 2)) / np.maximum(settings.fill_ratio * area, 1e-9))
    u1 = np.where(area > 0, u1, 1.0)
    thing = (seg >= settings.thing_offset) & (seg < settings.thing_offset + settings.num_det_classes)
    n_thing = (inside & thing[None]).sum((1, 2))
    n_own = (inside & (seg[None] == (classes + settings.thing_offset)[:, None, None])).sum((1, 2))
    u3 = np.where(n_thing > 0, 1.0 - n_own / np.maximum(n_thing, 1), 0.0)
    u2, seg_classes = [], []
    for c in range(settings.num_det_classes):
        labels, count = label_components(seg == c + settings.thing_offset)
        same = inside[classes == c]  # [m, H, W]
        for k in range(1, count + 1):
            segment = labels == k
            size = segment.sum()
            if size < settings.min_component:
                continue
            covered = (same & segment[None]).sum((1, 2)).max() / size if len(same) else 0.0
            u2.append(1.0 - covered)
            seg_classes.append(c)
    return {"box_without_pixels": u1, "class_disagreement": u3,
            "pixels_without_box": np.asarray(u2, np.float64), "segment_classes": np.asarray(seg_classes, np.int64),
            "object_pixels": owned}


def _aggregate(values: np.ndarray, how: str) -> float:
    if values.size == 0:
        return 0.0
    return float({"mean": np.mean, "max": np.max, "sum": np.sum}[how](values))


def image_inconsistency(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, seg: np.ndarray,
                        settings: ConsistencySettings) -> float:
    """``U = agg_b score_b (w1 u1 + w3 u3) + agg_K w2 u2`` of one image (see the module docstring).

    References:
      Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    parts = constraint_scores(boxes, scores, classes, seg, settings)
    w1, w2, w3 = settings.weights
    per_box = np.asarray(scores, np.float64).reshape(-1) * (w1 * parts["box_without_pixels"]
                                                          + w3 * parts["class_disagreement"])
    return _aggregate(per_box, settings.aggregate) + _aggregate(w2 * parts["pixels_without_box"], settings.aggregate)
