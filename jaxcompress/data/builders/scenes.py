"""Synthetic street-like scenes with boxes and per-pixel masks, as a TFDS builder (offline).

``street_scenes``: 64x64 RGB scenes with two "stuff" classes (sky above a
random horizon, road below, both textured) and 1-6 "thing" objects of three
classes drawn far to near (so nearer objects occlude farther ones):

* ``car``: a wide rectangle with a darker window band and two dark wheels;
* ``person``: a tall ellipse body with a lighter round head;
* ``sign``: a triangle (the pole is background, not part of the object).

Scale follows a ground-plane perspective (an object standing lower in the
image is larger, 3-28 px), colours are drawn per object from overlapping
palettes, and a fraction of objects is rendered in low contrast (colour near
the road's) so that hard images exist. Boxes are the tight boxes of each
object's *visible* pixels; objects left with fewer than 6 visible pixels are
dropped from the labels (their pixels go back to the class beneath).

Records: ``image`` float32 [64, 64, 3] in [0, 1]; ``segmentation`` uint8
[64, 64] (0 sky, 1 road, 2 car, 3 person, 4 sign); ``instances`` uint8
[64, 64] (0 none, k + 1 = object k); ``boxes`` int32 [8, 4] (top, left,
bottom, right; bottom/right exclusive; rows past ``num_objects`` are 0);
``classes`` int32 [8] (detection class 0 car, 1 person, 2 sign; -1 past
``num_objects``); ``num_objects`` int32; ``id`` int64.

Detection class ``c`` is segmentation class ``c + 2`` (:data:`THING_OFFSET`).
Splits: ``train`` 1,200 scenes (the active-learning pool), ``test`` 300.
Every scene is a pure function of (split, index) through NumPy's PCG64.

References:
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023
  (nuImages-like detection + segmentation scenes, here rendered).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

SIZE = 64
MAX_OBJECTS = 8
SEG_CLASSES = ("sky", "road", "car", "person", "sign")
DET_CLASSES = ("car", "person", "sign")
#: Segmentation class of detection class c is c + THING_OFFSET.
THING_OFFSET = 2
SPLIT_SIZES = {"train": 1200, "test": 300}
MIN_VISIBLE = 6
_SPLIT_IDS = {"train": 0, "test": 1}

_PALETTES = {  # RGB centres per class; drawn with jitter, overlapping on purpose
    "car": ((0.75, 0.15, 0.15), (0.2, 0.3, 0.7), (0.6, 0.6, 0.62), (0.9, 0.9, 0.88), (0.15, 0.15, 0.18)),
    "person": ((0.2, 0.25, 0.45), (0.55, 0.2, 0.2), (0.25, 0.45, 0.25), (0.35, 0.3, 0.3)),
    "sign": ((0.95, 0.8, 0.1), (0.85, 0.15, 0.1), (0.2, 0.4, 0.85)),
}


def _features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(SIZE, SIZE, 3), dtype=np.float32),
        "segmentation": tfds.features.Tensor(shape=(SIZE, SIZE), dtype=np.uint8),
        "instances": tfds.features.Tensor(shape=(SIZE, SIZE), dtype=np.uint8),
        "boxes": tfds.features.Tensor(shape=(MAX_OBJECTS, 4), dtype=np.int32),
        "classes": tfds.features.Tensor(shape=(MAX_OBJECTS,), dtype=np.int32),
        "num_objects": tfds.features.Scalar(dtype=np.int32),
        "id": tfds.features.Scalar(dtype=np.int64),
    })


def _shape_mask(kind: str, top: float, left: float, height: float, width: float,
                ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(object mask, darker-detail mask) [H, W] bool of one object in its box (float coordinates)."""
    inside = (ys >= top) & (ys < top + height) & (xs >= left) & (xs < left + width)
    v, u = (ys - top) / height, (xs - left) / width  # 0..1 inside the box
    if kind == "car":
        body = inside & (v >= 0.3) & (v < 0.85)
        cabin = inside & (v < 0.3) & (u >= 0.2) & (u < 0.8)
        wheel_v = ((v - 0.85) / 0.15) ** 2
        wheels = inside & ((((u - 0.25) / 0.12) ** 2 + wheel_v <= 1.0) | (((u - 0.75) / 0.12) ** 2 + wheel_v <= 1.0))
        window = cabin & (v >= 0.08) & (u >= 0.28) & (u < 0.72)
        return body | cabin | wheels, window | wheels
    if kind == "person":
        head = ((u - 0.5) / 0.3) ** 2 + ((v - 0.12) / 0.12) ** 2 <= 1.0
        body = ((u - 0.5) / 0.5) ** 2 + ((v - 0.6) / 0.4) ** 2 <= 1.0
        return inside & (head | body), inside & head
    # sign: a triangle pointing up (apex at the top centre)
    tri = inside & (np.abs(u - 0.5) <= 0.5 * v)
    return tri, tri & (np.abs(u - 0.5) <= 0.2 * v) & (v > 0.55)


def render_scene(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One scene (see the module docstring for the record layout).

    References:
      Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    ys, xs = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="ij")
    horizon = float(rng.uniform(18, 30))
    sky_colour = np.asarray([0.45, 0.65, 0.9]) * rng.uniform(0.7, 1.1) + rng.normal(0, 0.04, 3)
    road_colour = np.full(3, rng.uniform(0.3, 0.5)) + rng.normal(0, 0.03, 3)
    is_sky = ys < horizon
    image = np.where(is_sky[..., None], sky_colour, road_colour)
    image = image + np.where(is_sky, 0.04 * ys / SIZE, 0.06 * rng.normal(size=ys.shape))[..., None]
    lane = (~is_sky) & (np.abs(xs - SIZE / 2 - (ys - horizon) * rng.uniform(-0.6, 0.6)) < 0.8) & \
        ((ys.astype(int) // 4) % 2 == 0)
    image[lane] = 0.85  # dashed lane marking: bright road pixels that are road
    segmentation = np.where(is_sky, 0, 1).astype(np.uint8)
    instances = np.zeros((SIZE, SIZE), np.uint8)

    count = int(rng.integers(1, 7))
    specs = []
    for _ in range(count):
        kind_id = int(rng.choice(3, p=(0.45, 0.35, 0.2)))
        bottom = float(rng.uniform(horizon + 3, SIZE + 2))  # ground contact point
        depth = (bottom - horizon) / (SIZE - horizon)  # 0 at the horizon, 1 at the bottom
        base = 4 + 22 * depth * rng.uniform(0.8, 1.2)  # perspective scale
        if kind_id == 0:
            width, height = base * 1.6, base * 0.85
        elif kind_id == 1:
            width, height = base * 0.45, base * 1.2
        else:
            width, height = base * 0.7, base * 0.65
            bottom -= base * 0.8  # signs hang on a pole above the ground
        left = float(rng.uniform(-width * 0.3, SIZE - width * 0.7))
        specs.append((bottom, kind_id, bottom - height, left, height, width))
    specs.sort()  # far (small bottom) first, so nearer objects paint over them

    painted: list[tuple[int, np.ndarray]] = []
    for bottom, kind_id, top, left, height, width in specs:
        kind = DET_CLASSES[kind_id]
        mask, detail = _shape_mask(kind, top, left, height, width, ys, xs)
        if kind == "sign":  # the pole: background-coloured grey, labelled as what is beneath
            pole = (np.abs(xs - (left + width / 2)) < 0.7) & (ys >= top + height) & (ys < bottom + 0.8 * width)
            image[pole] = 0.25
        if not mask.any():
            continue
        palette = _PALETTES[kind]
        colour = np.asarray(palette[rng.integers(len(palette))]) + rng.normal(0, 0.05, 3)
        if rng.uniform() < 0.2:  # low contrast: close to the road's colour
            colour = 0.7 * road_colour + 0.3 * colour
        shade = colour * (0.85 + 0.15 * (ys - top) / max(height, 1.0))[..., None]
        image[mask] = shade[mask]
        image[detail] = (colour * 0.45 + 0.1)[None] if kind != "person" else np.asarray([0.85, 0.7, 0.55])
        segmentation[mask] = THING_OFFSET + kind_id
        painted.append((kind_id, mask))
        instances[mask] = len(painted)

    boxes = np.zeros((MAX_OBJECTS, 4), np.int32)
    classes = np.full((MAX_OBJECTS,), -1, np.int32)
    kept = 0
    final_instances = np.zeros_like(instances)
    for k, (kind_id, _) in enumerate(painted):
        visible = instances == k + 1
        if visible.sum() < MIN_VISIBLE or kept == MAX_OBJECTS:
            # Too little left to label: the pixels go back to what lies beneath (stuff).
            segmentation[visible] = np.where(is_sky[visible], 0, 1)
            continue
        rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
        boxes[kept] = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
        classes[kept] = kind_id
        final_instances[visible] = kept + 1
        kept += 1
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0.0, 1.0).astype(np.float32)
    return {"image": image, "segmentation": segmentation, "instances": final_instances, "boxes": boxes,
            "classes": classes, "num_objects": np.int32(kept)}


class JaxcompressStreetScenes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Street-like 64x64 scenes (sky, road, cars, people, signs) with boxes, semantic and instance masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None  # Nothing is downloaded: every scene is rendered with NumPy.

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=("Rendered street-like scenes: textured sky and road, 1-6 cars, people and signs with "
                         "perspective scale, occlusion and low-contrast objects; tight boxes of visible pixels, "
                         "semantic masks (5 classes) and instance masks."),
            features=_features())

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(name, size) for name, size in SPLIT_SIZES.items()}

    def _generate_examples(self, split: str, size: int) -> Iterator[tuple[int, dict]]:
        for index in range(size):
            key = _SPLIT_IDS[split] * 1_000_000 + index
            rng = np.random.default_rng([3, key])
            yield key, {**render_scene(rng), "id": key}
