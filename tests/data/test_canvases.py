"""Cluttered canvases: boxes and masks agree with the rendered object, classes differ in a small part,
generation is deterministic; the positive sampler draws same-class images other than the anchor."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcompress.data.builders import canvases as cv
from jaxcompress.data.positives import PositiveSampler
from jaxcompress.errors import DataError


def _check_record(record):
    image, box, mask = record["image"][..., 0], record["box"], record["mask"].astype(bool)
    assert image.shape == (cv.SIZE, cv.SIZE) and image.min() >= 0 and image.max() <= 1
    rows, cols = np.nonzero(mask)
    assert list(box) == [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
    # The object is drawn on top of the clutter: its pixels are bright (noise sigma <= 0.06).
    assert np.median(image[mask]) > 0.4 and image[mask].mean() > 2 * image[~mask].mean()


def test_digit_canvas_box_mask_and_object():
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    for row in range(5):
        rng = np.random.default_rng([1, row])
        record = cv.digit_canvas(images[row], images[rng.choice(len(images), 16, replace=False)], rng)
        _check_record(record)
        # The pasted digit at 3x: its ink is the mask, inside a 24 x 24 paste.
        t, l, b, r = record["box"]
        assert b - t <= 24 and r - l <= 24
    a = cv.digit_canvas(images[0], images[:16], np.random.default_rng(3))
    b = cv.digit_canvas(images[0], images[:16], np.random.default_rng(3))
    np.testing.assert_array_equal(a["image"], b["image"])


def test_part_shapes_records_and_fine_grained_classes():
    for label in range(12):
        _check_record(cv.part_canvas(label, np.random.default_rng([2, label])))
    ys, xs = cv._sample_grid()
    frame = (24.0, 24.0, 0.7, 9.0)
    objects = [cv.part_object(label, frame, ys, xs) for label in range(12)]
    body = objects[0].sum()
    for i in range(12):
        for j in range(i + 1, 12):
            differ = (objects[i] ^ objects[j]).sum()
            assert 0 < differ < 0.35 * body, (i, j)  # same body; two small parts (each ~1/7 of it) differ
    # Left and right parts are mirror images across the body axis, never a rotation of each other.
    assert not np.array_equal(objects[0], objects[1])


def test_positive_sampler_same_class_never_the_anchor_and_deterministic():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 4, 4, 1)).astype(np.float32)
    labels = np.repeat(np.arange(3), 10)
    sampler = PositiveSampler(images, labels, positives=3)
    anchors = np.array([0, 11, 29, 5])
    rows = sampler.sample(images[anchors], labels[anchors], seed=1)
    assert rows.shape == (4, 3)
    for anchor, drawn in zip(anchors, rows):
        assert anchor not in drawn and len(set(drawn.tolist())) == 3
        assert np.all(labels[drawn] == labels[anchor])
    np.testing.assert_array_equal(rows, sampler.sample(images[anchors], labels[anchors], seed=1))
    assert not np.array_equal(rows, sampler.sample(images[anchors], labels[anchors], seed=2))
    with pytest.raises(DataError, match="model.positives"):
        PositiveSampler(images, labels, positives=10)
