"""Connected components of binary masks (4-connectivity), on the host.

References:
  Rosenfeld & Pfaltz, "Sequential operations in digital picture processing",
  J. ACM 1966 (component labelling); SciPy's ``ndimage.label`` does the work.
"""

from __future__ import annotations

import numpy as np

_FOUR = np.asarray([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels of the 4-connected components of ``mask``.

    Args:
      mask: bool [H, W].

    Returns:
      (labels int32 [H, W] with 0 off the mask and 1..n on it, n).
    """
    from scipy import ndimage  # SciPy comes with scikit-learn

    labels, count = ndimage.label(np.asarray(mask, bool), structure=_FOUR)
    return labels.astype(np.int32), int(count)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``mask`` (ties: the lowest label, i.e. first in raster order).
    bool [H, W] -> bool [H, W]; all False if ``mask`` is empty."""
    labels, count = label_components(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return labels == 1 + int(np.argmax(sizes))
