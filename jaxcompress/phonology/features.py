"""Phonological feature vectors of phones: PanPhon's 24 features, or PHOIBLE's 37 from a user table.

A :class:`FeatureTable` gives each phone a tuple of feature *values* (strings:
``+``, ``-``, ``0`` or a PHOIBLE contour such as ``+,-``), used by the phone
mapping, and a numeric input vector (``+`` -> 1, anything else -> 0, as the
paper's feature input) for the acoustic model.

PanPhon (MIT, a dependency) resolves a phone with ``ipa_segs``; a phone it reads
as two segments is an affricate when the first is a stop (looked up with a tie
bar, ``dʒ`` -> ``d͡ʒ``) and otherwise a diphthong, which takes the features of its
first segment. PHOIBLE's table (CC BY-SA, not bundled) is read from a
user-supplied ``phoible-segments-features.tsv`` (column ``segment`` then the 37
features); a phone missing from it falls back to its longest known prefix.

Deviation from the paper (documented): numeric vectors get one extra "is
silence" bit, so silence does not collide with phones whose features are all
non-``+``.

References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.1-3.2; Mortensen et al.,
"PanPhon: A Resource for Mapping IPA Segments to Articulatory Feature Vectors",
COLING 2016; Moran & McCloy, PHOIBLE 2.0 (2019).
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Sequence

import numpy as np

from jaxcompress.errors import UserError
from jaxcompress.phonology.inventory import SILENCE

#: PHOIBLE's 37 features in the order of its table.
PHOIBLE_FEATURES: tuple[str, ...] = (
    "tone", "stress", "syllabic", "short", "long", "consonantal", "sonorant", "continuant", "delayedRelease",
    "approximant", "tap", "trill", "nasal", "lateral", "labial", "round", "labiodental", "coronal", "anterior",
    "distributed", "strident", "dorsal", "high", "low", "front", "back", "tense", "retractedTongueRoot",
    "advancedTongueRoot", "periodicGlottalSource", "epilaryngealSource", "spreadGlottis", "constrictedGlottis",
    "fortis", "raisedLarynxEjective", "loweredLarynxImplosive", "click")


class FeatureTable:
    """Phone -> feature values. Subclasses implement :meth:`_lookup`."""

    names: tuple[str, ...] = ()
    kind = ""

    def _lookup(self, phone: str) -> tuple[str, ...] | None:
        raise NotImplementedError

    @functools.lru_cache(maxsize=4096)
    def values(self, phone: str) -> tuple[str, ...]:
        """Feature values of ``phone`` (``0`` everywhere for silence).

        Raises:
            UserError: a phone the table cannot describe.
        """
        if phone == SILENCE:
            return ("0",) * len(self.names)
        found = self._lookup(phone)
        if found is None:
            raise UserError(f"phone {phone!r} is not described by the {self.kind} feature table")
        return found

    def vector(self, phone: str) -> np.ndarray:
        """float32 [len(names) + 1]: 1 where the value is ``+``, else 0; the last entry is the silence bit."""
        out = np.zeros(len(self.names) + 1, np.float32)
        if phone == SILENCE:
            out[-1] = 1.0
            return out
        out[:-1] = [v == "+" for v in self.values(phone)]
        return out

    def matrix(self, phones: Sequence[str]) -> np.ndarray:
        """float32 [len(phones), len(names) + 1] input vectors."""
        return np.stack([self.vector(p) for p in phones]) if phones else np.zeros((0, len(self.names) + 1),
                                                                                  np.float32)


class PanPhonTable(FeatureTable):
    """PanPhon's 24 features (``panphon.FeatureTable``)."""

    kind = "panphon"

    def __init__(self) -> None:
        import panphon

        self._table = panphon.FeatureTable()
        self.names = tuple(self._table.names)

    def _segment(self, segment: str) -> tuple[str, ...]:
        return tuple(self._table.word_to_vector_list(segment, numeric=False)[0])

    def _lookup(self, phone: str) -> tuple[str, ...] | None:
        segments = self._table.ipa_segs(phone)
        if not segments:
            return None
        if len(segments) >= 2:
            tied = segments[0] + "\u0361" + segments[1]
            if self._table.ipa_segs(tied) == [tied]:
                return self._segment(tied)  # an affricate written without its tie bar
        return self._segment(segments[0])  # one segment, or a diphthong's first part


class PhoibleTable(FeatureTable):
    """PHOIBLE's 37 features from a user-supplied TSV (``segment`` column, then the features)."""

    kind = "phoible"

    def __init__(self, path: str | os.PathLike):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserError(f"PHOIBLE feature table {path!r} does not exist (download "
                            f"phoible-segments-features.tsv from phoible/dev yourself; it is CC BY-SA)")
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = [f for f in ("segment", *PHOIBLE_FEATURES) if f not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"PHOIBLE feature table {path!r} lacks the column(s) {', '.join(missing)}")
            self._rows = {row["segment"]: tuple(row[f] for f in PHOIBLE_FEATURES) for row in reader}
        self.names = PHOIBLE_FEATURES

    def _lookup(self, phone: str) -> tuple[str, ...] | None:
        if phone in self._rows:
            return self._rows[phone]
        if phone == "ɜ˞":  # the reference code's one spelling fix
            return self._rows.get("ə˞")
        for end in range(len(phone) - 1, 0, -1):  # drop trailing modifiers
            if phone[:end] in self._rows:
                return self._rows[phone[:end]]
        return None


def feature_table(kind: str = "panphon", path: str = "") -> FeatureTable:
    """``panphon`` (default) or ``phoible`` (needs ``path``)."""
    if kind == "panphon":
        return PanPhonTable()
    if kind == "phoible":
        return PhoibleTable(path)
    raise UserError(f"feature table must be 'panphon' or 'phoible'; got {kind!r}")
