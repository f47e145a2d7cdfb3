"""Inter-task inconsistency scores, pixel assignment and component labelling against hand-built scenes."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from jaxcompress.active import consistency as C
from jaxcompress.active.boxes import box_iou, box_masks, nms
from jaxcompress.active.components import label_components
from jaxcompress.errors import ConfigError

S = C.ConsistencySettings(thing_offset=2, num_det_classes=3, fill_ratio=0.3, min_component=4)


def _scene():
    """20x20: road (1) with a car (class 0 -> seg 2) at rows 2-7, cols 2-9 and a person (1 -> 3) at 10-17, 12-15."""
    seg = np.ones((20, 20), np.int64)
    seg[2:8, 2:10] = 2
    seg[10:18, 12:16] = 3
    boxes = np.asarray([[2, 2, 8, 10], [10, 12, 18, 16]], float)
    return seg, boxes, np.asarray([0.9, 0.8]), np.asarray([0, 1])


def test_consistent_prediction_scores_zero():
    seg, boxes, scores, classes = _scene()
    parts = C.constraint_scores(boxes, scores, classes, seg, S)
    np.testing.assert_allclose(parts["box_without_pixels"], 0.0)
    np.testing.assert_allclose(parts["class_disagreement"], 0.0)
    np.testing.assert_allclose(parts["pixels_without_box"], 0.0)
    assert parts["segment_classes"].tolist() == [0, 1]
    assert C.image_inconsistency(boxes, scores, classes, seg, S) == 0.0
    # the assigned object pixels are exactly the segments
    np.testing.assert_array_equal(parts["object_pixels"][0], seg == 2)


def test_each_constraint_fires_alone_with_hand_computed_values():
    seg, boxes, scores, classes = _scene()
    # 1: a sign box over plain road: no class pixels inside -> u1 = 1 (and no thing pixels: u3 = 0)
    extra = np.concatenate([boxes, [[12, 0, 16, 4]]])
    parts = C.constraint_scores(extra, np.r_[scores, 0.5], np.r_[classes, 2], seg, S)
    assert parts["box_without_pixels"].tolist() == [0.0, 0.0, 1.0]
    assert parts["class_disagreement"].tolist() == [0.0, 0.0, 0.0]
    # U = mean_b s_b (u1 + u3) + mean_K u2 = (0 + 0 + 0.5 * 1) / 3 + 0
    assert C.image_inconsistency(extra, np.r_[scores, 0.5], np.r_[classes, 2], seg, S) == pytest.approx(0.5 / 3)

    # 2: drop the person's box: its segment lies outside every person box -> u2 = 1
    parts = C.constraint_scores(boxes[:1], scores[:1], classes[:1], seg, S)
    assert parts["pixels_without_box"].tolist() == [0.0, 1.0]
    # half-covered: a person box over the top half of the segment -> u2 = 1/2
    half = np.concatenate([boxes[:1], [[10, 12, 14, 16]]])
    assert C.constraint_scores(half, scores, classes, seg, S)["pixels_without_box"].tolist() == [0.0, 0.5]

    # 3: the car box labelled "person": every thing pixel inside disagrees -> u3 = 1, and u1 = 1 too
    parts = C.constraint_scores(boxes, scores, np.asarray([1, 1]), seg, S)
    assert parts["class_disagreement"][0] == 1.0 and parts["box_without_pixels"][0] == 1.0


def test_fill_ratio_and_largest_component_rule():
    seg = np.ones((12, 12), np.int64)
    seg[1:3, 1:3] = 2  # 4 car pixels
    seg[8, 8] = 2  # a stray car pixel in the same box, another component
    box = np.asarray([[0, 0, 10, 10]], float)  # area 100
    settings = C.ConsistencySettings(fill_ratio=0.1)
    parts = C.constraint_scores(box, np.ones(1), np.zeros(1, int), seg, settings)
    # largest component: 4 pixels of 0.1 * 100 expected -> u1 = 1 - 4/10
    assert parts["box_without_pixels"][0] == pytest.approx(0.6)
    all_parts = C.constraint_scores(box, np.ones(1), np.zeros(1, int), seg,
                                    C.ConsistencySettings(fill_ratio=0.1, component_rule="all", min_component=1))
    assert all_parts["box_without_pixels"][0] == pytest.approx(0.5)  # 5 pixels kept


def test_overlapping_boxes_split_contested_pixels_deterministically():
    seg = np.ones((10, 10), np.int64)
    seg[2:8, 2:8] = 2
    boxes = np.asarray([[2, 2, 8, 6], [2, 4, 9, 8]], float)  # overlap on cols 4-5; box 1 reaches lower
    by_score = C.assign_pixels(boxes, np.asarray([0.9, 0.5]), np.asarray([0, 0]), seg, S)
    assert by_score[0].sum() == 6 * 4 and by_score[1].sum() == 6 * 2  # box 0 wins cols 4-5
    lowest = C.assign_pixels(boxes, np.asarray([0.9, 0.5]), np.asarray([0, 0]), seg,
                             C.ConsistencySettings(overlap_rule="lowest"))
    assert lowest[0].sum() == 6 * 2 and lowest[1].sum() == 6 * 4  # the nearer (lower) box wins
    assert not (by_score[0] & by_score[1]).any()
    tie = C.assign_pixels(boxes, np.asarray([0.5, 0.5]), np.asarray([0, 0]), seg, S)
    np.testing.assert_array_equal(tie, by_score)  # equal scores: the lower index wins
    with pytest.raises(ConfigError, match="aggregate"):
        C.ConsistencySettings(aggregate="median")


def _bfs_labels(mask):
    """Slow reference: breadth-first flood fill, 4-connectivity."""
    labels = np.zeros(mask.shape, int)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        count += 1
        queue = deque([start])
        labels[start] = count
        while queue:
            y, x = queue.popleft()
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = count
                    queue.append((ny, nx))
    return labels, count


@pytest.mark.parametrize("seed", range(4))
def test_components_match_flood_fill_up_to_relabelling(seed):
    mask = np.random.default_rng(seed).uniform(size=(17, 23)) < 0.45
    labels, count = label_components(mask)
    ref, ref_count = _bfs_labels(mask)
    assert count == ref_count
    pairs = set(zip(labels[mask].tolist(), ref[mask].tolist()))
    assert len(pairs) == count  # a bijection between the two labellings
    assert (labels[~mask] == 0).all()


def test_box_helpers_against_hand_values():
    assert box_iou(np.asarray([[0, 0, 2, 2]]), np.asarray([[1, 1, 3, 3], [5, 5, 6, 6]])).tolist() == [[1 / 7, 0.0]]
    assert box_masks(np.asarray([[0.4, 1, 2.6, 3]]), 4, 4)[0].astype(int).tolist() == \
        [[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]  # pixel centres 0.5 .. 2.5 rows
    boxes = np.asarray([[0, 0, 10, 10], [0, 1, 10, 11], [0, 0, 10, 10], [30, 30, 40, 40]], float)
    keep = nms(boxes, np.asarray([0.9, 0.8, 0.7, 0.2]), np.asarray([0, 0, 1, 0]), 0.5, score_threshold=0.3)
    assert keep.tolist() == [0, 2]  # 1 suppressed by 0 (same class), 2 kept (other class), 3 below threshold
