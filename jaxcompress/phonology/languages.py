"""The paper's source and target languages: eSpeak NG voices, roles and family-tree paths.

Family paths are genealogical classifications from the root of each family down to
the language (after Glottolog's classification, shortened to its well-established
nodes); languages of different families meet at a virtual root. The tree distance
is the number of edges between the two leaves, our stand-in for the paper's
``distance_1`` (whose exact tree is not published).

References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 2 (languages) and 4.3
(family-tree distance); Hammarström et al., Glottolog 5 (classification).
"""

from __future__ import annotations

import dataclasses

from jaxcompress.errors import UserError


@dataclasses.dataclass(frozen=True)
class Language:
    """One language: ISO 639-1 code, English name, eSpeak NG voice, role, family path (root first)."""

    code: str
    name: str
    voice: str
    role: str  # "source" or "target" in the paper
    family: tuple[str, ...]


LANGUAGES: dict[str, Language] = {lang.code: lang for lang in (
    Language("en", "English", "en", "source", ("Indo-European", "Germanic", "West Germanic", "Anglic", "English")),
    Language("fi", "Finnish", "fi", "source", ("Uralic", "Finnic", "Finnish")),
    Language("hi", "Hindi", "hi", "source", ("Indo-European", "Indo-Iranian", "Indo-Aryan", "Central Indo-Aryan",
                                             "Hindustani", "Hindi")),
    Language("ja", "Japanese", "ja", "source", ("Japonic", "Japanesic", "Japanese")),
    Language("ru", "Russian", "ru", "source", ("Indo-European", "Balto-Slavic", "Slavic", "East Slavic", "Russian")),
    Language("bg", "Bulgarian", "bg", "target", ("Indo-European", "Balto-Slavic", "Slavic", "South Slavic",
                                                 "Eastern South Slavic", "Bulgarian")),
    Language("ka", "Georgian", "ka", "target", ("Kartvelian", "Karto-Zan", "Georgian")),
    Language("kk", "Kazakh", "kk", "target", ("Turkic", "Common Turkic", "Kipchak", "Kipchak-Nogai", "Kazakh")),
    Language("sw", "Swahili", "sw", "target", ("Atlantic-Congo", "Volta-Congo", "Benue-Congo", "Bantoid", "Bantu",
                                               "Sabaki", "Swahili")),
    Language("ur", "Urdu", "ur", "target", ("Indo-European", "Indo-Iranian", "Indo-Aryan", "Central Indo-Aryan",
                                            "Hindustani", "Urdu")),
    Language("uz", "Uzbek", "uz", "target", ("Turkic", "Common Turkic", "Karluk", "Uzbek")),
)}

SOURCES: tuple[str, ...] = tuple(c for c, lang in LANGUAGES.items() if lang.role == "source")
TARGETS: tuple[str, ...] = tuple(c for c, lang in LANGUAGES.items() if lang.role == "target")


def get_language(code: str, field: str = "language") -> Language:
    """The language ``code``; UserError naming ``field`` and the available codes otherwise."""
    if code not in LANGUAGES:
        raise UserError(f"{field} {code!r} is not available; allowed: "
                        + ", ".join(f"{c} ({lang.name})" for c, lang in LANGUAGES.items()))
    return LANGUAGES[code]


def family_distance(a: str, b: str) -> int:
    """Edges between two languages in the family tree (different families meet at a virtual root).

    ``len(path_a) + len(path_b) - 2 * shared_prefix``; 0 for the same language.
    """
    pa, pb = get_language(a).family, get_language(b).family
    shared = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        shared += 1
    return len(pa) + len(pb) - 2 * shared


def same_family(a: str, b: str) -> bool:
    """Whether two languages share a top-level family."""
    return get_language(a).family[0] == get_language(b).family[0]
