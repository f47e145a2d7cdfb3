"""mAP, mIoU and mDSQ against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcompress.active import metrics as M
from jaxcompress.errors import ConfigError


def _ap_case():
    """One class, two images: GT A, B in image 0 and C in image 1. Detections by score: 0.9 hits A,
    0.8 misses (image 1, far away), 0.7 hits B, 0.6 hits C. P/R: (1, 1/3), (1/2, 1/3), (2/3, 2/3), (3/4, 1)."""
    truths = [M.GroundTruth(np.asarray([[0, 0, 10, 10], [20, 20, 30, 30]]), np.asarray([0, 0])),
              M.GroundTruth(np.asarray([[40, 40, 50, 50]]), np.asarray([0]))]
    dets = [M.Detections(np.asarray([[0, 0, 10, 10], [20, 21, 30, 31]], float), np.asarray([0.9, 0.7]),
                         np.asarray([0, 0])),
            M.Detections(np.asarray([[0, 0, 5, 5], [40, 40, 50, 49]], float), np.asarray([0.8, 0.6]),
                         np.asarray([0, 0]))]
    return dets, truths


@pytest.mark.parametrize("interpolation, expected", [
    ("voc", 1 / 3 + 2 / 3 * 0.75),  # envelope 1 up to recall 1/3, then 3/4
    ("voc11", (4 * 1.0 + 7 * 0.75) / 11),  # recall thresholds 0, .1, .2, .3 -> 1; .4 .. 1 -> 3/4
    ("coco", (34 * 1.0 + 67 * 0.75) / 101),  # thresholds 0 .. 0.33 -> 1; 0.34 .. 1 -> 3/4
])
def test_map_matches_hand_computed_interpolations(interpolation, expected):
    dets, truths = _ap_case()
    result = M.detection_map(dets, truths, num_classes=2, iou_threshold=0.5, interpolation=interpolation)
    assert result["per_class"][1] is None  # no ground truth of class 1: left out of the mean
    assert result["map"] == pytest.approx(expected, abs=1e-9)


def test_duplicate_detection_is_a_false_positive_and_class_must_match():
    truths = [M.GroundTruth(np.asarray([[0, 0, 10, 10]]), np.asarray([0]))]
    dets = [M.Detections(np.asarray([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float),
                         np.asarray([0.9, 0.8, 0.95]), np.asarray([0, 0, 1]))]
    # class 0: P/R (1, 1), (1/2, 1) -> AP 1; class 1 has no ground truth
    assert M.detection_map(dets, truths, 2)["map"] == pytest.approx(1.0)
    dets[0].scores[:] = [0.8, 0.9, 0.95]  # the same boxes: still one TP first
    assert M.detection_map(dets, truths, 2)["map"] == pytest.approx(1.0)
    missing = [M.Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    assert M.detection_map(missing, truths, 2)["map"] == 0.0
    with pytest.raises(ConfigError, match="interpolation"):
        M.average_precision(np.ones(1), np.ones(1), "voc12")


def test_mean_iou_hand_case():
    pred = np.asarray([[0, 0], [1, 2]])
    truth = np.asarray([[0, 1], [1, 1]])
    result = M.mean_iou(M.confusion_matrix(pred, truth, 4))
    # class 0: TP 1, FP 1 -> 1/2; class 1: TP 1, FN 2 -> 1/3; class 2: FP 1 -> 0; class 3 absent
    assert result["per_class"] == pytest.approx([0.5, 1 / 3, 0.0, None])
    assert result["miou"] == pytest.approx((0.5 + 1 / 3 + 0) / 3)


def _box_mask(box, size=20):
    m = np.zeros((size, size), bool)
    m[box[0]:box[2], box[1]:box[3]] = True
    return m


def test_mdsq_is_one_on_ground_truth_and_drops_as_hand_computed():
    boxes = np.asarray([[0, 0, 4, 4], [10, 10, 14, 14], [5, 5, 9, 12]])
    classes = np.asarray([0, 0, 1])
    masks = np.stack([_box_mask(b) for b in boxes])
    gt = M.GroundTruth(boxes, classes, masks)
    perfect = M.Detections(boxes.astype(float), np.ones(3), classes, masks)
    assert M.detection_segmentation_quality([perfect], [gt], 2)["mdsq"] == pytest.approx(1.0)

    # class 0: one box right with 12 of 16 mask pixels (IoU 3/4), one far-off box (FP), object 2 missed (FN):
    # DQ = 1 / (1 + 1/2 + 1/2) = 1/2, SQ = 3/4 -> DSQ 3/8. class 1 perfect -> 1. mDSQ = (3/8 + 1) / 2.
    partial = masks[0].copy()
    partial[3] = False
    far = np.asarray([16, 16, 20, 20])
    det = M.Detections(np.stack([boxes[0], far, boxes[2]]).astype(float), np.asarray([0.9, 0.8, 0.9]),
                       np.asarray([0, 0, 1]), np.stack([partial, _box_mask(far), masks[2]]))
    result = M.detection_segmentation_quality([det], [gt], 2)
    assert result["per_class"][0]["dq"] == pytest.approx(0.5)
    assert result["per_class"][0]["sq"] == pytest.approx(0.75)
    assert result["mdsq"] == pytest.approx((0.375 + 1.0) / 2)

    # A detection under the score threshold does not count at all.
    det.scores[1] = 0.1
    assert M.detection_segmentation_quality([det], [gt], 2, score_threshold=0.3)["per_class"][0]["dq"] == \
        pytest.approx(1 / (1 + 0.5))


def test_greedy_matching_is_one_to_one_by_score():
    gt = M.GroundTruth(np.asarray([[0, 0, 10, 10]]), np.asarray([0]))
    det = M.Detections(np.asarray([[0, 0, 10, 9], [0, 0, 10, 10]], float), np.asarray([0.9, 0.5]),
                       np.asarray([0, 0]))
    assert M.match_greedy(det, gt, 0) == [(0, 0)]  # higher score wins even with a lower IoU
