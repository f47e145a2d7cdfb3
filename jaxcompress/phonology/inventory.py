"""Phone inventories and frequencies from eSpeak NG IPA over real text in each language.

Text: the words of each language that the Unicode CLDR locale data ships with
``babel`` (names of languages, territories, currencies, months and weekdays,
written in that language), kept only when written in the language's own script
(Japanese: kana only, since eSpeak NG reads kanji as Chinese). These are real
words but proper-noun heavy and loanword-biased; inventories and ASPF values
built from them are a proxy for running text. Nothing is downloaded.

Phones: eSpeak NG's IPA transcription (``espeak_TextToPhonemes``, phones
separated by ``_``) with stress marks and zero-width joiners removed, and
modifier-only symbols (``ʲ``, ``ː`` ...) attached to the phone before them.

References: Do et al., SSW 2023 (arXiv 2306.12040), Sec. 3.3 (phone frequencies
over transcripts); Unicode CLDR (https://cldr.unicode.org) via babel.
"""

from __future__ import annotations

import collections
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

from jaxcompress.phonology.languages import get_language

#: Silence symbol of phone sequences (pauses, leading and trailing silence).
SILENCE = "sil"
_DROP = str.maketrans("", "", "ˈˌ\u200d\u200c'")
#: Unicode script prefix of the characters each language is written in.
_SCRIPTS = {"en": ("LATIN",), "fi": ("LATIN",), "sw": ("LATIN",), "uz": ("LATIN", "MODIFIER LETTER"),
            "ru": ("CYRILLIC",), "bg": ("CYRILLIC",), "kk": ("CYRILLIC",), "hi": ("DEVANAGARI",),
            "ka": ("GEORGIAN",), "ur": ("ARABIC",), "ja": ("KATAKANA", "HIRAGANA")}


def strip_marks(symbol: str) -> str:
    """``symbol`` without stress marks, joiners and surrounding space."""
    return symbol.translate(_DROP).strip()


def is_modifier(symbol: str) -> bool:
    """Symbols with no base letter (``ʲ``, ``ː``, combining marks) belong to the phone before them."""
    return all(unicodedata.category(ch) in ("Lm", "Mn", "Sk") for ch in symbol)


def normalise_phones(symbols: Iterable[str]) -> list[str]:
    """Phone symbols without stress marks; modifier-only symbols merged into the preceding phone.

    Example: ``['p', '', 'r', 'ʲ', 'ˈi']`` -> ``['p', 'rʲ', 'i']``.
    """
    out: list[str] = []
    for raw in symbols:
        symbol = strip_marks(raw)
        if not symbol:
            continue
        if is_modifier(symbol) and out:
            out[-1] += symbol
        else:
            out.append(symbol)
    return out


def split_ipa(transcription: str) -> list[str]:
    """Phones of an eSpeak NG IPA string (``_`` between phones, spaces between words)."""
    return normalise_phones(p for word in transcription.split() for p in word.split("_"))


def _in_script(word: str, scripts: tuple[str, ...]) -> bool:
    for ch in word:
        category = unicodedata.category(ch)
        if category.startswith("M"):
            continue
        if not category.startswith("L") or not unicodedata.name(ch, "").startswith(scripts):
            return False
    return True


@functools.cache
def cldr_words(code: str) -> tuple[str, ...]:
    """Distinct words (sorted) of language ``code`` from babel's CLDR data, in the language's script.

    Raises:
        UserError: an unknown language code (lists the available ones).
    """
    get_language(code)
    from babel import Locale

    locale = Locale.parse(code)
    names: list[str] = [*locale.territories.values(), *locale.languages.values(), *locale.currencies.values(),
                        *locale.months["format"]["wide"].values(), *locale.days["format"]["wide"].values()]
    words = set()
    for name in names:
        for word in re.split(r"[\s\-/(),.:;’'\"«»]+", name):
            if len(word) > 1 and _in_script(word, _SCRIPTS[code]) and word != "ー":
                words.add(word.lower())
    return tuple(sorted(words))


def phone_counts(transcripts: Iterable[Sequence[str]], exclude: Iterable[str] = (SILENCE,)) -> collections.Counter:
    """Counts of every phone over phone sequences, ``exclude`` (silence) left out."""
    drop = set(exclude)
    counts: collections.Counter = collections.Counter()
    for phones in transcripts:
        counts.update(p for p in phones if p not in drop)
    return counts


def context_counts(transcripts: Iterable[Sequence[str]], boundary: str = SILENCE
                   ) -> tuple[dict[str, collections.Counter], dict[str, collections.Counter]]:
    """Counts of the phone before and after each phone (``boundary`` at utterance edges).

    Returns:
        ``(previous, following)``: ``{phone: Counter(neighbour -> count)}``.
    """
    previous: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    following: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for phones in transcripts:
        padded = [boundary, *phones, boundary]
        for i in range(1, len(padded) - 1):
            previous[padded[i]][padded[i - 1]] += 1
            following[padded[i]][padded[i + 1]] += 1
    return dict(previous), dict(following)


def transcribe(texts: Sequence[str], code: str) -> list[list[str]]:
    """Phone sequences of ``texts`` in language ``code`` (eSpeak NG IPA, normalised)."""
    from jaxcompress.speech.espeak import Engine

    voice = get_language(code).voice
    with Engine(1) as engine:
        return [split_ipa(t) for t in engine.phonemize(list(texts), voice)]
