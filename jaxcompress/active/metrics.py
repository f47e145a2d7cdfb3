"""Detection, segmentation and joint metrics: mAP, mIoU and mDSQ.

* ``average_precision``: area under a precision/recall curve with VOC 2007
  11-point, VOC 2010+ all-point or COCO 101-point interpolation.
* ``detection_map``: per-class AP at one box-IoU threshold (VOC matching:
  detections by descending score take the highest-IoU ground truth if it is
  still free), mean over classes with ground truth.
* ``mean_iou``: per-class IoU from the pixel confusion matrix, mean over
  classes present in prediction or ground truth.
* ``detection_segmentation_quality``: mDSQ, by analogy with panoptic quality.
  Per thing class, predictions (above a score threshold) and ground-truth
  objects are matched one-to-one greedily by score at box IoU > 0.5;
  ``DQ = TP / (TP + FP/2 + FN/2)``, ``SQ`` = mean mask IoU of the matched
  pairs (predicted object pixels O(b) vs the ground-truth instance mask),
  ``DSQ = DQ * SQ``; mDSQ is the mean over classes that occur.

The mDSQ formula is our reconstruction from the paper's abstract (only the
name is published there); mAP and mIoU are reported beside it.

References:
  Everingham et al., "The PASCAL VOC Challenge", IJCV 2010 (AP);
  Lin et al., "Microsoft COCO", ECCV 2014 (101-point AP);
  Kirillov et al., "Panoptic Segmentation", CVPR 2019 (PQ = SQ x RQ);
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023 (mDSQ).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcompress.active.boxes import box_iou
from jaxcompress.errors import ConfigError

INTERPOLATIONS = ("voc11", "voc", "coco")


@dataclasses.dataclass
class Detections:
    """One image's detections: boxes [N, 4], scores [N], classes int [N], optional masks bool [N, H, W]."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: np.ndarray | None = None


@dataclasses.dataclass
class GroundTruth:
    """One image's objects: boxes [M, 4], classes int [M], optional instance masks bool [M, H, W]."""

    boxes: np.ndarray
    classes: np.ndarray
    masks: np.ndarray | None = None


def average_precision(recall: np.ndarray, precision: np.ndarray, interpolation: str = "voc") -> float:
    """AP of a precision/recall curve (points in order of descending score).

    Args:
      recall, precision: float [N].
      interpolation: ``voc11`` (mean of max precision at recall >= 0, 0.1, ..., 1), ``voc`` (all-point:
        area under the monotone envelope) or ``coco`` (mean at recall 0, 0.01, ..., 1).

    References:
      Everingham et al., IJCV 2010; Lin et al., ECCV 2014.
    """
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"AP interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if interpolation == "voc":
        r = np.concatenate([[0.0], recall, [1.0]])
        p = np.concatenate([[0.0], precision, [0.0]])
        p = np.maximum.accumulate(p[::-1])[::-1]  # envelope: best precision at this recall or beyond
        step = np.flatnonzero(r[1:] != r[:-1])
        return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))
    points = np.linspace(0, 1, 11) if interpolation == "voc11" else np.linspace(0, 1, 101)
    envelope = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in points]
    return float(np.mean(envelope))


def detection_map(detections: list[Detections], truths: list[GroundTruth], num_classes: int,
                  iou_threshold: float = 0.5, interpolation: str = "voc") -> dict[str, object]:
    """Per-class AP and their mean over classes with ground truth.

    Returns:
      ``{"map": float, "per_class": [AP or None] * num_classes}`` (None: no ground truth of that class).

    References:
      Everingham et al., "The PASCAL VOC Challenge", IJCV 2010.
    """
    per_class: list[float | None] = []
    for c in range(num_classes):
        entries = []  # (score, image, det index)
        n_truth = 0
        for i, (det, gt) in enumerate(zip(detections, truths)):
            n_truth += int(np.sum(np.asarray(gt.classes) == c))
            entries += [(float(det.scores[k]), i, k) for k in np.flatnonzero(np.asarray(det.classes) == c)]
        if n_truth == 0:
            per_class.append(None)
            continue
        entries.sort(key=lambda e: (-e[0], e[1], e[2]))
        used = [np.zeros(len(gt.classes), bool) for gt in truths]
        hits = np.zeros(len(entries))
        for rank, (_, i, k) in enumerate(entries):
            gt = truths[i]
            same = np.flatnonzero(np.asarray(gt.classes) == c)
            if same.size == 0:
                continue
            ious = box_iou(detections[i].boxes[k:k + 1], np.asarray(gt.boxes)[same])[0]
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold and not used[i][same[best]]:
                used[i][same[best]] = True
                hits[rank] = 1
        tp = np.cumsum(hits)
        recall = tp / n_truth
        precision = tp / np.arange(1, len(entries) + 1)
        per_class.append(average_precision(recall, precision, interpolation) if entries else 0.0)
    present = [ap for ap in per_class if ap is not None]
    return {"map": float(np.mean(present)) if present else 0.0, "per_class": per_class}


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts int64 [K, K], rows = truth, columns = prediction. pred, truth: int [...] same shape."""
    pred, truth = np.asarray(pred, np.int64).ravel(), np.asarray(truth, np.int64).ravel()
    return np.bincount(truth * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(confusion: np.ndarray) -> dict[str, object]:
    """Per-class IoU = TP / (TP + FP + FN) from a confusion matrix, mean over classes with a non-empty union.

    Returns: ``{"miou": float, "per_class": [IoU or None]}``.

    References:
      Everingham et al., IJCV 2010 (segmentation IoU).
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    per_class = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in per_class if v is not None]
    return {"miou": float(np.mean(present)) if present else 0.0, "per_class": per_class}


def match_greedy(det: Detections, gt: GroundTruth, cls: int, iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one matches (det index, truth index) of class ``cls``: detections by descending score take the
    free ground truth of highest box IoU above ``iou_threshold`` (strictly)."""
    dets = np.flatnonzero(np.asarray(det.classes) == cls)
    dets = dets[np.argsort(-np.asarray(det.scores)[dets], kind="stable")]
    truths = np.flatnonzero(np.asarray(gt.classes) == cls)
    if dets.size == 0 or truths.size == 0:
        return []
    ious = box_iou(np.asarray(det.boxes)[dets], np.asarray(gt.boxes)[truths])
    free = np.ones(truths.size, bool)
    pairs = []
    for row, d in enumerate(dets):
        candidates = np.where(free, ious[row], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] > iou_threshold:
            free[best] = False
            pairs.append((int(d), int(truths[best])))
    return pairs


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def detection_segmentation_quality(detections: list[Detections], truths: list[GroundTruth], num_classes: int,
                                   score_threshold: float = 0.3, iou_threshold: float = 0.5) -> dict[str, object]:
    """mDSQ over a dataset (see the module docstring); detections need ``masks`` (O(b)), truths instance masks.

    Returns:
      ``{"mdsq", "mdq", "msq": float, "per_class": [{"dq", "sq", "dsq", "tp", "fp", "fn"} or None]}``.

    References:
      Kirillov et al., CVPR 2019 (PQ); Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    iou_sum = np.zeros(num_classes)
    for det, gt in zip(detections, truths):
        keep = np.asarray(det.scores) >= score_threshold
        kept = Detections(np.asarray(det.boxes)[keep], np.asarray(det.scores)[keep], np.asarray(det.classes)[keep],
                          None if det.masks is None else np.asarray(det.masks)[keep])
        for c in range(num_classes):
            pairs = match_greedy(kept, gt, c, iou_threshold)
            n_det = int(np.sum(kept.classes == c))
            n_gt = int(np.sum(np.asarray(gt.classes) == c))
            tp[c] += len(pairs)
            fp[c] += n_det - len(pairs)
            fn[c] += n_gt - len(pairs)
            iou_sum[c] += sum(_mask_iou(kept.masks[d], gt.masks[g]) for d, g in pairs)
    per_class: list[dict[str, float] | None] = []
    for c in range(num_classes):
        if tp[c] + fp[c] + fn[c] == 0:
            per_class.append(None)
            continue
        dq = tp[c] / (tp[c] + 0.5 * fp[c] + 0.5 * fn[c])
        sq = iou_sum[c] / tp[c] if tp[c] else 0.0
        per_class.append({"dq": float(dq), "sq": float(sq), "dsq": float(dq * sq), "tp": int(tp[c]),
                          "fp": int(fp[c]), "fn": int(fn[c])})
    present = [p for p in per_class if p is not None]

    def mean(key: str) -> float:
        return float(np.mean([p[key] for p in present])) if present else 0.0

    return {"mdsq": mean("dsq"), "mdq": mean("dq"), "msq": mean("sq"), "per_class": per_class}
