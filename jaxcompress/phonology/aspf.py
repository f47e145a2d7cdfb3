"""ASPF: the Angular Similarity of Phone Frequencies between two languages.

``cos = <f_a, f_b> / (|f_a| |f_b|)`` over one phone list, the union of both
inventories (the reference code builds it from one side and drops the first
occurrence of a phone missing from it; we do not), and
``ASPF = 1 - 2 arccos(cos) / pi``, in [0, 1] for counts: 1 for proportional
frequencies, 0 for disjoint inventories.

References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.3 (ASPF); Do et al.,
SIGUL 2022 (its definition).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from jaxcompress.errors import UserError


def angular_similarity(a: np.ndarray, b: np.ndarray, empty_is_zero: bool = False) -> float:
    """``1 - 2 arccos(cos(a, b)) / pi`` of two non-negative vectors [N].

    Raises:
        UserError: a zero vector (unless ``empty_is_zero``, the reference code's NaN -> 0).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        if empty_is_zero:
            return 0.0
        raise UserError("angular similarity of an empty frequency vector is undefined (no phones counted)")
    cos = min(1.0, max(-1.0, float(a @ b) / (na * nb)))
    return 1.0 - 2.0 * math.acos(cos) / math.pi


def frequency_vectors(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The union phone list (sorted) and both relative-frequency vectors over it."""
    phones = sorted(set(a) | set(b))
    fa = np.array([a.get(p, 0.0) for p in phones], np.float64)
    fb = np.array([b.get(p, 0.0) for p in phones], np.float64)
    return phones, fa / max(fa.sum(), 1e-300), fb / max(fb.sum(), 1e-300)


def aspf(counts_a: Mapping[str, float], counts_b: Mapping[str, float], empty_is_zero: bool = False) -> float:
    """ASPF of two phone-count tables ``{phone: count}`` (scale-invariant, symmetric).

    References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.3.
    """
    _, fa, fb = frequency_vectors(counts_a, counts_b)
    return angular_similarity(fa, fb, empty_is_zero)
