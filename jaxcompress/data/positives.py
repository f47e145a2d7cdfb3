"""Same-class positives for anchor images: the batches Look-into-Object trains on.

Every anchor image of a training batch gets P other images of its class from
the same split (never itself), so a batch of b anchors becomes b groups of
P + 1 same-class images. The draw is a pure function of (seed, the batch's
anchors), so it is the same after a resume; anchors are recognised by the
content of their image, so any dataset with fixed-shape images works, with
or without an id feature.

References:
  Zhou et al., "Look-into-Object", CVPR 2020 (positive sampling, P = 3 in the
  reference code's dataset_index.py).
"""

from __future__ import annotations

import hashlib

import numpy as np

from jaxcompress.errors import DataError


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


class PositiveSampler:
    """Draws P same-class positives per anchor from one split.

    Args:
      images: [N, ...] every image of the split (to recognise anchors).
      labels: int [N] their classes.
      positives: P >= 1.
      field: the config key named in errors.

    Raises:
      DataError: a class with fewer than P + 1 images.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, positives: int, field: str = "model.positives"):
        labels = np.asarray(labels).astype(np.int64)
        self.positives = int(positives)
        self._pools = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        small = {c: len(rows) for c, rows in self._pools.items() if len(rows) < positives + 1}
        if small:
            c, n = next(iter(small.items()))
            raise DataError(f"config key '{field}' = {positives} needs at least {positives + 1} training images "
                            f"per class, but class {c} has {n}; lower {field} or use a larger split")
        self._rows = {}
        for row, image in enumerate(images):
            self._rows.setdefault(_digest(image), row)

    def sample(self, images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
        """Record indices int64 [b, P] of the positives of anchors ``images`` [b, ...] with ``labels`` [b].

        An anchor found in the split is excluded from its own positives; an
        unknown anchor (not from this split) draws from its whole class.

        Raises:
          DataError: an anchor class that the split does not have.
        """
        anchors = [_digest(image) for image in images]
        key = int.from_bytes(hashlib.blake2b(b"".join(anchors), digest_size=8).digest(), "little")
        rng = np.random.default_rng([int(seed), key])
        out = np.empty((len(anchors), self.positives), np.int64)
        for k, (digest, label) in enumerate(zip(anchors, np.asarray(labels).astype(np.int64))):
            pool = self._pools.get(int(label))
            if pool is None:
                raise DataError(f"anchor class {int(label)} has no images in the training split")
            own = self._rows.get(digest, -1)
            pool = pool[pool != own]
            out[k] = rng.choice(pool, self.positives, replace=False)
        return out
