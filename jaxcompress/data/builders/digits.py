"""The embedded ``digits`` dataset: scikit-learn's 8x8 handwritten digits as a TFDS builder.

The 1,797 images ship inside scikit-learn (``sklearn.datasets.load_digits``), so
the dataset is generated offline in about a second and written in the
``array_record`` format, which TFDS reads without TensorFlow.

Records: ``image`` float32 [8, 8, 1] in [0, 1] (the 0..16 block counts divided
by 16), ``label`` int64 scalar in 0..9 (``ClassLabel``).

Splits (stratified by class, deterministic, no random number generator):
within each class the sklearn rows are ordered by the BLAKE2b digest of
``"digits/<row index>"``; the first ``n - 2 * round(0.15 * n)`` rows go to
``train``, the next ``round(0.15 * n)`` to ``validation`` and the rest to
``test``. That gives 1,259 / 269 / 269 records (70 / 15 / 15 %).

References:
  Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
  Learning Repository, 1998 (optdigits; scikit-learn ships its test part).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

#: Fraction of every class that goes to ``validation`` and, again, to ``test``.
HELD_OUT_FRACTION = 0.15
SPLIT_NAMES = ("train", "validation", "test")

_CITATION = """\
@misc{alpaydin1998optdigits,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {Optical Recognition of Handwritten Digits},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49}
}"""


def split_assignment(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Assigns every sklearn row to a split, stratified by class.

    Args:
      labels: int [N] class of each row, in sklearn's order.

    Returns:
      ``{split name: int64 [n_split] sorted sklearn row indices}``; the three
      arrays are disjoint and together cover ``range(N)``.
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        # A content-free hash order spreads the 13 writers (who appear in runs
        # in sklearn's order) over all splits, and unlike an RNG it cannot
        # change when numpy changes its generators.
        rows = sorted(rows, key=lambda row: hashlib.blake2b(f"digits/{row}".encode()).digest())
        held_out = int(round(HELD_OUT_FRACTION * len(rows)))
        n_train = len(rows) - 2 * held_out
        parts["train"].append(np.asarray(rows[:n_train], np.int64))
        parts["validation"].append(np.asarray(rows[n_train:n_train + held_out], np.int64))
        parts["test"].append(np.asarray(rows[n_train + held_out:], np.int64))
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


# ``skip_registration`` keeps the class out of TFDS's global registry: importing
# this module has no side effect and the name cannot collide with (or shadow) a
# real TFDS dataset. jaxcompress instantiates the class directly.
class JaxcompressDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Handwritten digits, 8x8 grey levels, 10 classes (1,797 images, offline)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: stratified 70/15/15 train/validation/test."}
    # Nothing is downloaded, so there are no URL checksums to look up. Saying so
    # also skips TFDS's checksum-file lookup, which imports the undeclared
    # `importlib_resources` package and fails without it
    # (tensorflow/datasets#11212).
    url_infos = None

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo(builder=self, ...) rather than dataset_info_from_configs,
        # which expects metadata files next to the module.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Optical recognition of handwritten digits (UCI optdigits test part, as "
                "shipped by scikit-learn): 8x8 images whose pixels count the 'on' pixels "
                "of 4x4 blocks of a 32x32 bitmap (0..16), stored divided by 16 as float32 "
                "in [0, 1]. Splits are stratified by class, 70/15/15."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # Everything comes from the installed scikit-learn.
        from sklearn.datasets import load_digits  # Imported here: sklearn is slow to import.

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[..., None]
        labels = digits.target.astype(np.int64)
        return {name: self._generate_examples(images, labels, rows)
                for name, rows in split_assignment(labels).items()}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray,
                           rows: np.ndarray) -> Iterator[tuple[int, dict]]:
        """Yields ``(sklearn row index, {"image": [8, 8, 1], "label": int})``."""
        for row in rows:
            yield int(row), {"image": images[row], "label": int(labels[row])}
