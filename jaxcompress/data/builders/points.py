"""The embedded point-cloud datasets ``point_shapes`` (ModelNet-like) and ``point_shapes_scan`` (ScanObjectNN-like).

Thirteen parametric shape classes (primitives and compositions: sphere,
ellipsoid, cube, box, cylinder, cone, torus, capsule, pyramid, disk, dumbbell,
L-shape, table; see :mod:`jaxcompress.data.point_shapes`), 512 surface points
per shape, unit-sphere normalised. Generated offline with NumPy, written as
``array_record``.

Records: ``points`` float32 [512, 3], ``label`` int64 (``ClassLabel``).

Splits (classes balanced; every record has its own generator seed
``[variant, split, index]``, so splits never share a shape):

* ``pretrain``: 200 shapes per class (2,600), for self-supervised pretraining
  (labels are stored but the pretraining tasks ignore them);
* ``train``: 20 per class (260): the low-label fine-tuning set;
* ``validation``: 10 per class (130);
* ``test``: 30 per class (390).

References:
  Wu et al., "3D ShapeNets", CVPR 2015 (ModelNet); Uy et al., ICCV 2019
  (ScanObjectNN); Pang et al., Point-MAE, ECCV 2022.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.point_shapes import CLASS_NAMES, sample_shape

NUM_POINTS = 512
PER_CLASS = {"pretrain": 200, "train": 20, "validation": 10, "test": 30}
_SPLIT_IDS = {"pretrain": 0, "train": 1, "validation": 2, "test": 3}


class _PointShapesBase(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared generation of both variants."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 13 classes, 512 points, pretrain/train/validation/test."}
    url_infos = None
    SCAN = False
    VARIANT_ID = 0
    DESCRIPTION = ""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "points": tfds.features.Tensor(shape=(NUM_POINTS, 3), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            }),
            supervised_keys=("points", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # generated from NumPy geometry
        return {name: self._generate_examples(name) for name in PER_CLASS}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        """Yields ``(index, {"points": [512, 3], "label": int})``, classes interleaved."""
        count = PER_CLASS[split] * len(CLASS_NAMES)
        for index in range(count):
            label = index % len(CLASS_NAMES)
            rng = np.random.default_rng([self.VARIANT_ID, _SPLIT_IDS[split], index])
            yield index, {"points": sample_shape(rng, label, NUM_POINTS, scan=self.SCAN), "label": label}


class JaxcompressPointShapes(_PointShapesBase, skip_registration=True):
    """Parametric 3-D shapes, 13 classes, 512 surface points each (ModelNet-like, offline)."""

    VARIANT_ID = 0
    DESCRIPTION = ("Surfaces of parametric primitives and their compositions sampled as 512-point clouds, with "
                   "random dimensions, mild anisotropic scale, rotation about z and jitter; unit-sphere normalised.")


class JaxcompressPointShapesScan(_PointShapesBase, skip_registration=True):
    """Parametric 3-D shapes with occlusion, background points and noise (ScanObjectNN-like, offline)."""

    SCAN = True
    VARIANT_ID = 1
    DESCRIPTION = ("The point_shapes classes as a scanner would see them: a random half-space removed (55-85 % of "
                   "the object kept), 10-25 % background points (floor patch, clutter blob), noise 0.02.")
