"""Real street datasets in the ``street_scenes`` record layout (Cityscapes through TFDS; nuImages-style exports).

The ``mtal`` task reads ``image``, ``segmentation``, ``boxes`` and
``classes`` (and the runner ``instances`` and ``num_objects``). A TFDS
dataset that already has these features (for example a user-built nuImages
builder) is used by its name directly. Cityscapes in TFDS
(``cityscapes/semantic_segmentation``: ``image_left`` and
``segmentation_label`` with the 34 Cityscapes label ids) has no boxes:
:func:`prepare_street_copy` reads a prepared copy (nothing is downloaded),
squashes each image to ``size x size``, maps the label ids onto the five
``street_scenes`` classes (sky, road = every other surface, car = car / truck /
bus / train, person = person / rider, sign = traffic sign / light), and
derives instances as 4-connected components of each thing class (touching
objects of one class merge: a documented approximation, since the TFDS
config carries no instance ids), keeping the 8 largest.

References:
  Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene
  Understanding", CVPR 2016; Caesar et al., nuScenes / nuImages, CVPR 2020.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.data._derived import prepare_derived
from jaxcompress.errors import DataError

#: Cityscapes label id -> street_scenes class (0 sky, 2 car, 3 person, 4 sign); every other id -> 1 (road/ground).
CITYSCAPES_TO_STREET = {23: 0, 26: 2, 27: 2, 28: 2, 31: 2, 24: 3, 25: 3, 19: 4, 20: 4}
MAX_OBJECTS, THING_OFFSET, MIN_PIXELS = 8, 2, 6


def street_record(image: np.ndarray, labels: np.ndarray, mapping: dict[int, int], size: int) -> dict[str, np.ndarray]:
    """One record in the street_scenes layout from an image and its per-pixel label ids.

    Args:
      image: uint8 [H, W, 3]; labels: int [H, W] (source label ids); mapping: id -> street class (others: 1).
      size: output side.

    Returns:
      ``image`` float32 [size, size, 3] in [0, 1], ``segmentation`` and ``instances`` uint8 [size, size],
      ``boxes`` int32 [8, 4], ``classes`` int32 [8] (-1 padding), ``num_objects`` int32.

    References:
      Cordts et al., "The Cityscapes Dataset", CVPR 2016.
    """
    from PIL import Image

    from jaxcompress.data.builders.canvases import tight_box

    lut = np.ones(max(256, int(labels.max()) + 1), np.uint8)
    for source_id, target in mapping.items():
        lut[source_id] = target
    seg_full = lut[np.asarray(labels, np.int64)]
    seg = np.asarray(Image.fromarray(seg_full).resize((size, size), Image.NEAREST))
    rgb = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).convert("RGB").resize((size, size),
                                                                                        Image.BILINEAR))
    from scipy import ndimage

    found = []
    for c in range(3):
        parts, count = ndimage.label(seg == c + THING_OFFSET)
        found += [(int((parts == k).sum()), c, parts == k) for k in range(1, count + 1)]
    found = sorted((f for f in found if f[0] >= MIN_PIXELS), key=lambda f: -f[0])[:MAX_OBJECTS]
    boxes = np.zeros((MAX_OBJECTS, 4), np.int32)
    classes = np.full(MAX_OBJECTS, -1, np.int32)
    instances = np.zeros((size, size), np.uint8)
    for k, (_, c, mask) in enumerate(found):
        boxes[k], classes[k] = tight_box(mask), c
        instances[mask] = k + 1
    return {"image": (rgb / 255.0).astype(np.float32), "segmentation": seg.astype(np.uint8),
            "instances": instances, "boxes": boxes, "classes": classes, "num_objects": np.int32(len(found))}


def _records(name: str, split: str, size: int, data_dir: Any, image_key: str, label_key: str
             ) -> Iterator[tuple[int, dict]]:
    source = data_lib.load_split(name, split, data_dir)
    for index in range(len(source)):
        record = source.read(np.asarray([index]))
        labels = np.asarray(record[label_key][0])
        labels = labels[..., 0] if labels.ndim == 3 else labels
        yield index, {**street_record(record[image_key][0], labels, CITYSCAPES_TO_STREET, size), "id": index}


def prepare_street_copy(name: str = "cityscapes/semantic_segmentation", size: int = 64,
                        splits: tuple[str, ...] = ("train", "validation"), data_dir: str | os.PathLike | None = None,
                        image_key: str = "image_left", label_key: str = "segmentation_label") -> str:
    """Writes the street_scenes-layout copy of a prepared TFDS segmentation dataset once; returns its name.

    Raises:
      DataError: the source is not prepared (nothing is downloaded) or lacks the image/label features.
    """
    import tensorflow_datasets as tfds

    from jaxcompress.data.builders.scenes import _features

    info = data_lib.dataset_info(name, data_dir)
    missing = [k for k in (image_key, label_key) if k not in info["features"]]
    if missing:
        raise DataError(f"dataset {name!r} lacks {', '.join(missing)}; street copies need an image and per-pixel "
                        f"label ids (has {', '.join(info['features'])})")
    if size != 64:
        raise DataError(f"size must be 64 (the street_scenes layout), got {size!r}")
    derived = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() + f"_street{size}"

    def _info(self: Any) -> Any:
        return tfds.core.DatasetInfo(builder=self, description=f"{name!r} in the street_scenes layout.",
                                     features=_features())

    def _split_generators(self: Any, dl_manager: Any) -> dict:
        del dl_manager
        return {split: _records(name, split, size, data_dir, image_key, label_key) for split in splits}

    prepare_derived(derived, "StreetCopy", _info, _split_generators, data_dir)
    return derived
