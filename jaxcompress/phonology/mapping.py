"""Phone mapping: each target phone unseen in the source becomes the most similar source phone.

1. A target phone in the source inventory maps to itself.
2. Otherwise every source phone scores the number of feature values that are
   string-identical to the target phone's (``0`` differs from ``-``; contours must
   match exactly): the reference ("match") mode. ``mode="ternary"`` scores
   ``-sum |v_t - v_s|`` with ``+ = 1, 0 = 0, - = -1`` instead.
3. Ties between the best source phones are broken by context frequency: for
   the target phone and each tied source phone, the relative frequencies of the
   phones before and after it; score ``(AS(prev_t, prev_s) + AS(next_t, next_s)) / 2``
   with AS the angular similarity. Remaining ties: the more frequent source phone,
   then the first in sorted order, so the mapping is deterministic.

References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.1 (mapping), and the
authors' ``find_closest`` (PhD-thesis repository, ``mapping_aspf``).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence

from jaxcompress.errors import UserError
from jaxcompress.phonology.aspf import angular_similarity, frequency_vectors
from jaxcompress.phonology.features import FeatureTable

_TERNARY = {"+": 1, "-": -1}


def feature_score(a: Sequence[str], b: Sequence[str], mode: str = "match") -> float:
    """Similarity of two feature-value tuples (higher is more similar)."""
    if mode == "match":
        return float(sum(x == y for x, y in zip(a, b)))
    if mode == "ternary":
        return -float(sum(abs(_TERNARY.get(x, 0) - _TERNARY.get(y, 0)) for x, y in zip(a, b)))
    raise UserError(f"mapping mode must be 'match' or 'ternary'; got {mode!r}")


def _context_similarity(t: collections.Counter | None, s: collections.Counter | None) -> float:
    if not t or not s:
        return 0.0
    _, ft, fs = frequency_vectors(t, s)
    return angular_similarity(ft, fs)


def map_phones(target: Sequence[str], source_counts: Mapping[str, int], table: FeatureTable,
               target_context: tuple[Mapping, Mapping] = ({}, {}),
               source_context: tuple[Mapping, Mapping] = ({}, {}), mode: str = "match") -> dict[str, str]:
    """``{target phone: source phone}`` for every phone of ``target``.

    Args:
        target: target phones to map.
        source_counts: ``{source phone: count}``; its keys are the source inventory.
        table: feature table (PanPhon or PHOIBLE).
        target_context, source_context: ``(previous, following)`` neighbour counts per phone
            (:func:`~jaxcompress.phonology.inventory.context_counts`); empty disables the tie-break.
        mode: ``match`` (the reference) or ``ternary``.

    Raises:
        UserError: an empty source inventory, or a phone the table cannot describe.

    References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.1.
    """
    sources = sorted(source_counts)
    if not sources:
        raise UserError("cannot map phones onto an empty source inventory")
    source_values = {s: table.values(s) for s in sources}
    out: dict[str, str] = {}
    for t in target:
        if t in source_counts:
            out[t] = t
            continue
        values = table.values(t)
        scores = {s: feature_score(values, source_values[s], mode) for s in sources}
        best = max(scores.values())
        tied = [s for s in sources if scores[s] == best]
        if len(tied) > 1:
            context = {s: 0.5 * (_context_similarity(target_context[0].get(t), source_context[0].get(s))
                                 + _context_similarity(target_context[1].get(t), source_context[1].get(s)))
                       for s in tied}
            # max() keeps the first of equal keys: sorted order is the final tie-break.
            tied = [max(tied, key=lambda s: (context[s], source_counts[s]))]
        out[t] = tied[0]
    return out
