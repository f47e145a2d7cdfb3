"""Fixed-size copies of prepared image datasets with boxes (CUB-200-2011, Stanford Cars, ...).

Real fine-grained datasets come from TFDS with images of every size, which a
batch cannot stack. :func:`prepare_resized` reads a prepared TFDS dataset
(``caltech_birds2011``, ``cars196``, or any dataset with an ``image`` and a
``ClassLabel``; nothing is downloaded) record by record, squashes every image
to ``size x size`` (the whole image, so its box stays valid), and writes a
derived array_record dataset with ``image`` uint8 [size, size, 3], ``label``,
``box`` int32 (top, left, bottom, right) in pixels of the resized image (the
whole image when the source has no ``bbox``) and ``id``. FGVC-Aircraft is not
in the TFDS catalog; a user-built TFDS dataset with the same features works
the same way.

References:
  Wah et al., "The Caltech-UCSD Birds-200-2011 Dataset", 2011; Krause et al.,
  "3D Object Representations for Fine-Grained Categorization", 2013 (Cars).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.data._derived import prepare_derived
from jaxcompress.errors import DataError

#: TFDS names of the fine-grained datasets the LIO paper reports on (FGVC-Aircraft has no TFDS builder).
FINE_GRAINED = {"cub": "caltech_birds2011", "cars": "cars196"}


def resized_name(name: str, size: int) -> str:
    """Name of the derived dataset: ``<name>_resized<size>``."""
    safe = "".join(c if c.isalnum() else "_" for c in name.split(":")[0]).strip("_").lower()
    return f"{safe}_resized{size}"


def resize_record(image: np.ndarray, bbox: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Squashes one image to ``size x size`` RGB uint8; maps a normalised (ymin, xmin, ymax, xmax) box to pixels.

    Returns:
      ``(image uint8 [size, size, 3], box int32 [4] (top, left, bottom, right), bottom/right exclusive)``.
    """
    from PIL import Image

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    resized = np.asarray(Image.fromarray(array.astype(np.uint8)).convert("RGB").resize((size, size),
                                                                                       Image.BILINEAR))
    if bbox is None:
        return resized, np.asarray([0, 0, size, size], np.int32)
    ymin, xmin, ymax, xmax = np.clip(np.asarray(bbox, np.float64), 0.0, 1.0)
    box = np.asarray([np.floor(ymin * size), np.floor(xmin * size), np.ceil(ymax * size), np.ceil(xmax * size)])
    box[2:] = np.maximum(box[2:], box[:2] + 1)
    return resized, box.astype(np.int32)


def _records(name: str, split: str, size: int, data_dir: Any) -> Iterator[tuple[int, dict]]:
    source = data_lib.load_split(name, split, data_dir)
    if "image" not in source.features or "label" not in source.features:
        raise DataError(f"dataset {name!r} needs 'image' and 'label' features to be resized for recognition; "
                        f"it has {', '.join(source.features)}")
    for index in range(len(source)):
        record = source.read(np.asarray([index]))  # one at a time: the sizes differ
        bbox = record["bbox"][0] if "bbox" in record else None
        image, box = resize_record(record["image"][0], bbox, size)
        yield index, {"image": image, "label": int(record["label"][0]), "box": box, "id": index}


def prepare_resized(name: str, size: int = 224, splits: tuple[str, ...] | None = None,
                    data_dir: str | os.PathLike | None = None) -> str:
    """Writes a fixed-size copy of an image dataset once; returns its name (``<name>_resized<size>``).

    Raises:
      DataError: the source is not prepared (nothing is downloaded) or lacks image/label.
    """
    import tensorflow_datasets as tfds

    if not isinstance(size, int) or size < 8:
        raise DataError(f"size must be an integer >= 8, got {size!r}")
    info = data_lib.dataset_info(name, data_dir)
    splits = tuple(splits or info["splits"].keys())
    num_classes = info["num_classes"]
    if num_classes is None:
        raise DataError(f"dataset {name!r} has no ClassLabel 'label'; it cannot be resized for recognition")
    derived = resized_name(name, size)

    def _info(self: Any) -> Any:
        return tfds.core.DatasetInfo(
            builder=self, description=f"Dataset {name!r} squashed to {size}x{size} for jaxcompress.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=num_classes),
                "box": tfds.features.Tensor(shape=(4,), dtype=np.int32),
                "id": tfds.features.Scalar(dtype=np.int64)}),
            supervised_keys=("image", "label"))

    def _split_generators(self: Any, dl_manager: Any) -> dict:
        del dl_manager
        return {split: _records(name, split, size, data_dir) for split in splits}

    prepare_derived(derived, "ResizedImages", _info, _split_generators, data_dir)
    return derived
