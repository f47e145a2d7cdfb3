"""Street scenes: boxes are the tight boxes of the visible instance pixels, semantic and instance masks agree,
generation is deterministic; row subsets read the rows they name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxcompress.data.builders import scenes as sc
from jaxcompress.data.subset import SubsetSource, read_rows_file
from jaxcompress.errors import DataError


@pytest.mark.parametrize("index", range(12))
def test_scene_labels_agree_with_pixels(index):
    r = sc.render_scene(np.random.default_rng([3, index]))
    n = int(r["num_objects"])
    assert 0 <= n <= 6 and r["image"].shape == (64, 64, 3) and 0 <= r["image"].min() and r["image"].max() <= 1
    assert (r["classes"][n:] == -1).all() and (r["boxes"][n:] == 0).all()
    assert set(np.unique(r["instances"])) <= set(range(n + 1))
    for k in range(n):
        visible = r["instances"] == k + 1
        rows, cols = np.nonzero(visible)
        assert visible.sum() >= sc.MIN_VISIBLE
        assert r["boxes"][k].tolist() == [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
        assert (r["segmentation"][visible] == r["classes"][k] + sc.THING_OFFSET).all()
    # thing pixels belong to exactly the labelled instances; everything else is sky (0) or road (1)
    np.testing.assert_array_equal(r["segmentation"] >= sc.THING_OFFSET, r["instances"] > 0)


def test_scenes_are_deterministic_and_varied():
    a = sc.render_scene(np.random.default_rng([3, 7]))
    b = sc.render_scene(np.random.default_rng([3, 7]))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    classes = np.concatenate([sc.render_scene(np.random.default_rng([3, i]))["classes"] for i in range(40)])
    assert set(classes[classes >= 0].tolist()) == {0, 1, 2}  # every thing class appears


class _Rows:
    features = {"x": ((), np.dtype(np.int64))}

    def __len__(self):
        return 10

    def read(self, indices):
        return {"x": np.asarray(indices) * 100}


def test_subset_source_maps_rows_and_reads_rows_files(tmp_path):
    subset = SubsetSource(_Rows(), np.asarray([7, 2, 9]))
    assert len(subset) == 3 and subset.read(np.asarray([2, 0]))["x"].tolist() == [900, 700]
    with pytest.raises(DataError, match="outside"):
        SubsetSource(_Rows(), np.asarray([10]))
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"rows": [3, 1]}))
    assert read_rows_file(path).tolist() == [3, 1]
    path.write_text(json.dumps(["a"]))
    with pytest.raises(DataError, match="train_rows"):
        read_rows_file(path)


def test_cityscapes_labels_map_onto_the_street_layout():
    from jaxcompress.data.street_real import CITYSCAPES_TO_STREET, street_record

    labels = np.full((128, 128), 7, np.int64)  # 7 = road
    labels[:30] = 23  # sky
    labels[60:100, 10:50] = 26  # a car
    labels[60:100, 80:90] = 24  # a person
    labels[5:7, 5:7] = 20  # a traffic sign too small after resizing: dropped from the objects
    image = np.zeros((128, 128, 3), np.uint8)
    r = street_record(image, labels, CITYSCAPES_TO_STREET, 64)
    assert r["num_objects"] == 2 and r["classes"].tolist()[:3] == [0, 1, -1]  # car first (larger)
    assert r["boxes"][0].tolist() == [30, 5, 50, 25] and r["boxes"][1].tolist() == [30, 40, 50, 45]
    assert set(np.unique(r["segmentation"]).tolist()) <= {0, 1, 2, 3, 4}
    assert (r["segmentation"][8:15] == 0).all() and r["segmentation"][55, 30] == 1
    np.testing.assert_array_equal(r["instances"] == 1, r["segmentation"] == 2)
