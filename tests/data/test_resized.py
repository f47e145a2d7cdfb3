"""Fixed-size copies of variable-size image datasets with boxes (the path CUB-200 and Stanford Cars take)."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxcompress import data as data_lib
from jaxcompress.data.resized import prepare_resized, resize_record, resized_name
from jaxcompress.errors import DataError

SIZES = [(20, 30), (17, 9), (40, 40), (11, 25)]


class TinyBoxes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Four flat-colour RGB images of different sizes with normalised boxes, like caltech_birds2011's records."""

    VERSION = tfds.core.Version("1.0.0")
    url_infos = None

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            # A raw tensor, not an encoded Image: encoding PNGs needs TensorFlow, which is not installed.
            "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib"),
            "label": tfds.features.ClassLabel(num_classes=2),
            "bbox": tfds.features.BBoxFeature()}), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for k, (h, w) in enumerate(SIZES):
            image = np.full((h, w, 3), 40 * (k + 1), np.uint8)
            yield k, {"image": image, "label": k % 2,
                      "bbox": tfds.features.BBox(ymin=0.25, xmin=0.1, ymax=0.75, xmax=0.5)}


def test_resize_record_maps_the_box_to_pixels():
    image, box = resize_record(np.full((10, 20, 3), 7, np.uint8), np.array([0.25, 0.1, 0.75, 0.5]), 16)
    assert image.shape == (16, 16, 3) and np.all(image == 7)
    np.testing.assert_array_equal(box, [4, 1, 12, 8])  # floor(0.25*16), floor(1.6), ceil(12), ceil(8)
    _, whole = resize_record(np.zeros((5, 5, 1), np.uint8), None, 16)
    np.testing.assert_array_equal(whole, [0, 0, 16, 16])


def test_prepare_resized_writes_a_stackable_dataset(tmp_path):
    with contextlib.redirect_stdout(sys.stderr):
        TinyBoxes(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    name = prepare_resized("tiny_boxes", 16, data_dir=tmp_path)
    assert name == resized_name("tiny_boxes", 16) == "tiny_boxes_resized16"
    info = data_lib.dataset_info(name, tmp_path)
    assert info["input_shape"] == (16, 16, 3) and info["num_classes"] == 2
    source = data_lib.load_split(name, "train", tmp_path)
    records = source.read(np.arange(len(source)))
    assert records["image"].shape == (4, 16, 16, 3)
    colours = sorted(int(image[0, 0, 0]) for image in records["image"])
    assert colours == [40, 80, 120, 160]  # every source image once, still flat after resizing
    for k in range(4):
        assert np.all(records["image"][k] == records["image"][k, 0, 0, 0])
        np.testing.assert_array_equal(records["box"][k], [4, 1, 12, 8])
    with pytest.raises(DataError, match="size"):
        prepare_resized("tiny_boxes", 4, data_dir=tmp_path)
