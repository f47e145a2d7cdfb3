"""Localisation scores: box masks, cell regions blown up to pixels, IoU and pointing against hand counts."""

from __future__ import annotations

import numpy as np

from jaxcompress.ssl import lio_eval


def test_region_iou_and_pointing_by_hand():
    # 2x2 grid over an 8x8 image: the top-left cell scores high -> pixels [0:4, 0:4].
    scores = np.array([[[5.0, 0.0], [0.0, 0.0]]])
    region = lio_eval.region_pixels(scores, 8, 8)
    expected = np.zeros((1, 8, 8), bool)
    expected[0, :4, :4] = True
    np.testing.assert_array_equal(region, expected)
    boxes = np.array([[0, 0, 4, 6]])  # 24 pixels, 16 shared with the region
    truth = lio_eval.box_masks(boxes, 8, 8)
    assert truth.sum() == 24
    np.testing.assert_allclose(lio_eval.iou(region, truth), [16 / 24])
    np.testing.assert_allclose(lio_eval.pointing(scores, boxes, 8, 8), [1.0])  # cell centre (2, 2)
    np.testing.assert_allclose(lio_eval.pointing(scores, np.array([[4, 4, 8, 8]]), 8, 8), [0.0])
    scores6 = np.zeros((1, 36))
    scores6[0, 7] = 1.0  # row 1, col 1 of a 6x6 grid over 48 px: pixels 8..15
    region = lio_eval.region_pixels(scores6, 48, 48)
    assert region.sum() == 64 and region[0, 8:16, 8:16].all()
    out = lio_eval.localisation_scores(scores6, np.array([[8, 8, 16, 16]]), 48, 48)
    assert out == {"iou": 1.0, "pointing": 1.0}
