"""Cluttered-canvas object recognition with known object extent, as TFDS builders (offline).

Two embedded datasets for object-extent and spatial-context experiments,
both 48x48 grey canvases with one labelled object, distractors and noise:

* ``cluttered_digits``: a scikit-learn 8x8 digit upsampled x3 (24x24) at a
  random place, among fragments of other digits (3x3-block crops, upsampled
  like the object), random strokes and Gaussian noise. Splits follow the
  ``digits`` dataset's stratified rows (1,259 / 269 / 269), one canvas per row.
* ``part_shapes``: a fine-grained family. Every object is the same body (a
  bar with a round head), rotated by a random angle within +-20 degrees of
  head-right and scaled at random;
  the 12 classes differ only in one small part (disk, square or triangle)
  attached at one of four places (near the head or the tail, on the left or
  the right side of the body, which a rotation never swaps). Distractors are
  loose copies of the same small parts, bars and disks, away from the object.
  Splits: 150 / 20 / 40 canvases per class.

Records: ``image`` float32 [48, 48, 1] in [0, 1], ``label`` (ClassLabel),
``box`` int32 [4] = (top, left, bottom, right), bottom/right exclusive, the
tight box of the object's pixels, ``mask`` uint8 [48, 48] the object's pixels
(before clutter), ``id`` int64 unique within the dataset. Box and mask are for
evaluating localisation only; training never reads them.

Every canvas is a pure function of (dataset, split, index) through NumPy's
PCG64 generator, so rebuilding gives the same records.

References:
  Zhou et al., "Look-into-Object", CVPR 2020 (object extent without boxes);
  Alpaydin & Kaynak, UCI optdigits, 1998 (the digits).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.builders.digits import split_assignment

SIZE = 48
PART_KINDS = ("disk", "square", "triangle")
#: (u, side) of the four attachment places: u along the body (head at +1), side -1 / +1 (right / left).
PART_PLACES = ((0.45, 1.0), (0.45, -1.0), (-0.55, 1.0), (-0.55, -1.0))
PART_SPLIT_SIZES = {"train": 150, "validation": 20, "test": 40}
#: Largest rotation of the object away from head-right (radians).
MAX_ROTATION = np.pi / 9
_BAR_HALF_WIDTH = 0.22
_HEAD_RADIUS = 0.4


def _features(num_classes: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(SIZE, SIZE, 1), dtype=np.float32),
        "label": tfds.features.ClassLabel(num_classes=num_classes),
        "box": tfds.features.Tensor(shape=(4,), dtype=np.int32),
        "mask": tfds.features.Tensor(shape=(SIZE, SIZE), dtype=np.uint8),
        "id": tfds.features.Scalar(dtype=np.int64),
    })


def tight_box(mask: np.ndarray) -> np.ndarray:
    """(top, left, bottom, right) of the true pixels of a [H, W] mask, bottom/right exclusive."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.asarray([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.int32)


def _finish(canvas: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    canvas = canvas + noise * rng.normal(size=canvas.shape)
    return np.clip(canvas, 0.0, 1.0).astype(np.float32)[..., None]


# ----------------------------------------------------------------------------
# Cluttered digits


def _upsample(image: np.ndarray, factor: int = 3) -> np.ndarray:
    from scipy.ndimage import zoom  # scipy comes with scikit-learn

    return np.clip(zoom(image, factor, order=1), 0.0, 1.0)


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], margin: int) -> bool:
    t, l, b, r = box
    return any(t < ob + margin and ot < b + margin and l < orr + margin and ol < r + margin
               for ot, ol, ob, orr in others)


def digit_canvas(digit: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One cluttered canvas around an 8x8 digit in [0, 1].

    Args:
      digit: float [8, 8] the object.
      pool: float [M, 8, 8] digits whose 3x3-block fragments become distractors.
      rng: the canvas's generator.

    Returns:
      ``{"image": [48, 48, 1], "box": int32 [4], "mask": uint8 [48, 48]}``.
    """
    obj = _upsample(digit)
    h, w = obj.shape
    top, left = rng.integers(0, SIZE - h + 1), rng.integers(0, SIZE - w + 1)
    canvas = np.zeros((SIZE, SIZE))
    taken = [(top, left, top + h, left + w)]
    for _ in range(int(rng.integers(4, 7))):  # fragments of other digits
        source = pool[rng.integers(len(pool))]
        r, c = rng.integers(0, 6, size=2)
        piece = _upsample(source[r:r + 3, c:c + 3]) * rng.uniform(0.6, 1.0)
        for _ in range(20):
            pt, pl = rng.integers(0, SIZE - 9 + 1, size=2)
            if not _overlaps((pt, pl, pt + 9, pl + 9), taken[:1], 1):
                canvas[pt:pt + 9, pl:pl + 9] = np.maximum(canvas[pt:pt + 9, pl:pl + 9], piece)
                taken.append((pt, pl, pt + 9, pl + 9))
                break
    for _ in range(2):  # faint straight strokes anywhere
        y0, x0, y1, x1 = rng.uniform(0, SIZE, size=4)
        steps = np.linspace(0.0, 1.0, 64)
        ys = np.clip(np.round(y0 + (y1 - y0) * steps).astype(int), 0, SIZE - 1)
        xs = np.clip(np.round(x0 + (x1 - x0) * steps).astype(int), 0, SIZE - 1)
        canvas[ys, xs] = np.maximum(canvas[ys, xs], rng.uniform(0.2, 0.5))
    region = canvas[top:top + h, left:left + w]
    canvas[top:top + h, left:left + w] = np.maximum(region, obj)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[top:top + h, left:left + w] = obj > 0.25
    return {"image": _finish(canvas, rng, 0.05), "box": tight_box(mask), "mask": mask}


# ----------------------------------------------------------------------------
# Part shapes


def _sample_grid(supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres [SIZE*ss, SIZE*ss] (y, x) in pixel units."""
    centres = (np.arange(SIZE * supersample) + 0.5) / supersample
    return np.meshgrid(centres, centres, indexing="ij")


def _local(frame: tuple[float, float, float, float], ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object coordinates (u along the body, v across) of pixel points for frame (cy, cx, angle, scale)."""
    cy, cx, angle, scale = frame
    dy, dx = ys - cy, xs - cx
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale
    return u, v


def _part(kind: str, u: np.ndarray, v: np.ndarray, pu: float, pv: float, side: float) -> np.ndarray:
    """A small part centred at (pu, pv) in object units; a triangle points away from the body (side)."""
    if kind == "disk":
        return (u - pu) ** 2 + (v - pv) ** 2 <= 0.28 ** 2
    if kind == "square":
        return (np.abs(u - pu) <= 0.25) & (np.abs(v - pv) <= 0.25)
    height = (v - (pv - side * 0.22)) * side  # 0 at the base, 0.55 at the tip
    return (height >= 0) & (height <= 0.55) & (np.abs(u - pu) <= 0.34 * (1 - height / 0.55))


def _body(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    bar = (np.abs(u) <= 1.0) & (np.abs(v) <= _BAR_HALF_WIDTH)
    return bar | ((u - 1.0) ** 2 + v ** 2 <= _HEAD_RADIUS ** 2)


def part_object(label: int, frame: tuple[float, float, float, float], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Boolean coverage of class ``label``'s object (body + its small part) at sub-pixel points."""
    kind, (pu, side) = PART_KINDS[label // len(PART_PLACES)], PART_PLACES[label % len(PART_PLACES)]
    u, v = _local(frame, ys, xs)
    return _body(u, v) | _part(kind, u, v, pu, side * (_BAR_HALF_WIDTH + 0.12), side)


def _downsample(coverage: np.ndarray, supersample: int = 2) -> np.ndarray:
    return coverage.reshape(SIZE, supersample, SIZE, supersample).mean((1, 3))


def part_canvas(label: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One cluttered canvas of class ``label`` in 0..11 (see the module docstring)."""
    ys, xs = _sample_grid()
    scale = rng.uniform(8.0, 10.5)
    reach = 1.45 * scale
    frame = (rng.uniform(reach, SIZE - reach), rng.uniform(reach, SIZE - reach), rng.uniform(-MAX_ROTATION, MAX_ROTATION), scale)
    coverage = _downsample(part_object(label, frame, ys, xs).astype(np.float64))
    mask = coverage >= 0.5
    keep_out = _downsample(part_object(label, frame[:3] + (scale * 1.35,), ys, xs).astype(np.float64)) > 0
    canvas = np.zeros((SIZE, SIZE))
    for _ in range(int(rng.integers(3, 6))):
        for _ in range(20):
            d_frame = (rng.uniform(3, SIZE - 3), rng.uniform(3, SIZE - 3), rng.uniform(0, 2 * np.pi),
                       scale * rng.uniform(0.8, 1.2))
            u, v = _local(d_frame, ys, xs)
            choice = rng.integers(5)
            if choice < 3:  # a loose small part, the very thing that tells classes apart
                shape = _part(PART_KINDS[choice], u, v, 0.0, 0.0, 1.0)
            elif choice == 3:  # a short bar
                shape = (np.abs(u) <= rng.uniform(0.3, 0.7)) & (np.abs(v) <= _BAR_HALF_WIDTH)
            else:  # a head-sized disk
                shape = u ** 2 + v ** 2 <= _HEAD_RADIUS ** 2
            piece = _downsample(shape.astype(np.float64))
            if piece.any() and not (piece > 0)[keep_out].any():
                canvas = np.maximum(canvas, piece * rng.uniform(0.5, 1.0))
                break
    canvas = np.maximum(canvas, coverage * rng.uniform(0.8, 1.0))
    mask = mask.astype(np.uint8)
    return {"image": _finish(canvas, rng, 0.06), "box": tight_box(mask), "mask": mask}


# ----------------------------------------------------------------------------
# Builders


class JaxcompressClutteredDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Handwritten digits (x3) at random places on 48x48 canvases with digit fragments, strokes and noise."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None  # Nothing is downloaded (see digits.py).

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=("scikit-learn's 8x8 digits upsampled to 24x24 and pasted at a random place on a 48x48 "
                         "canvas among fragments of other digits, faint strokes and Gaussian noise; the box and "
                         "mask of the pasted digit are recorded for evaluating localisation."),
            features=_features(10), supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float64)
        labels = digits.target.astype(np.int64)
        return {name: self._generate_examples(images, labels, rows, split_index)
                for split_index, (name, rows) in enumerate(split_assignment(labels).items())}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                           split_index: int) -> Iterator[tuple[int, dict]]:
        for row in rows:
            rng = np.random.default_rng([1, int(row)])
            pool = images[rng.choice(len(images), 16, replace=False)]
            yield int(row), {**digit_canvas(images[row], pool, rng), "label": int(labels[row]), "id": int(row)}


class JaxcompressPartShapes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Fine-grained shapes: one rotated body, 12 classes told apart by one small attached part, with clutter."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=("A bar with a round head at a random rotation, scale and place on a 48x48 canvas; the 12 "
                         "classes are a small disk, square or triangle attached near the head or the tail on the "
                         "left or right side; rotations within +-20 degrees of head-right. Clutter: loose small parts, bars and disks, plus noise."),
            features=_features(len(PART_KINDS) * len(PART_PLACES)), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(split_index, per_class)
                for split_index, (name, per_class) in enumerate(PART_SPLIT_SIZES.items())}

    def _generate_examples(self, split_index: int, per_class: int) -> Iterator[tuple[int, dict]]:
        classes = len(PART_KINDS) * len(PART_PLACES)
        for index in range(per_class * classes):
            label = index % classes
            key = split_index * 1_000_000 + index
            rng = np.random.default_rng([2, key])
            yield key, {**part_canvas(label, rng), "label": label, "id": key}
