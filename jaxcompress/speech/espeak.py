"""Offline speech synthesis with eSpeak NG, with the position of every phone and word.

The ``espeakng-loader`` package ships ``libespeak-ng`` and its voice data; we
drive the C library through ``ctypes`` in worker processes (see
``_espeak_worker.py`` for why every utterance is spoken by a fresh fork: the
engine carries state from one utterance to the next). The synthesis callback
reports a phoneme event at the first output sample of every phone and a word
event per word, which give exact phone and word boundaries.

Example::

    with Engine() as engine:
        [utt] = engine.synthesize([Request("3 5 7", Voice("de", "f2", rate=160))])
    utt.audio          # int16 [N] at utt.sample_rate (22050 Hz)
    utt.words          # ((start_sample, end_sample), ...) one per word of the text
    utt.phones         # ((name, start_sample, end_sample, word_index), ...); pauses have word -1

References: eSpeak NG text-to-speech (https://github.com/espeak-ng/espeak-ng),
``speak_lib.h`` API; used to generate data for Chen, Meng, Lee, "Once-for-All
Sequence Compression for Self-Supervised Speech Models", ICASSP 2023.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import functools
import json
import pathlib
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxcompress.errors import UserError

_WORKER = pathlib.Path(__file__).with_name("_espeak_worker.py")

#: Limits of the engine's parameters (speak_lib.h): words per minute, 0..100 scales.
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)


class SynthesisError(UserError):
    """Bad synthesis input (unknown voice or language, empty text) or a failed engine."""


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise SynthesisError("speech synthesis needs the 'espeakng-loader' package: "
                             "pip install espeakng-loader") from error
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


@functools.cache
def available_languages() -> tuple[str, ...]:
    """Language voice names the bundled eSpeak NG data provides (``en``, ``de``, ``fr-BE``, ...)."""
    root = pathlib.Path(_paths()[1]) / "lang"
    return tuple(sorted(p.name for p in root.rglob("*") if p.is_file()))


@functools.cache
def available_variants() -> tuple[str, ...]:
    """Voice variants (``m1``..``m8``, ``f1``..``f5``, ``klatt``..., ...) that apply to any language."""
    root = pathlib.Path(_paths()[1]) / "voices" / "!v"
    return tuple(sorted(p.name for p in root.iterdir() if p.is_file()))


@dataclasses.dataclass(frozen=True)
class Voice:
    """A speaking voice: language, variant and prosody.

    Attributes:
        language: an eSpeak NG language voice (see :func:`available_languages`).
        variant: a voice variant (see :func:`available_variants`); '' for the language's default.
        rate: speaking rate in words per minute, in :data:`RATE_RANGE`.
        pitch: base pitch, 0..100.
        pitch_range: pitch variation, 0..100 (0 is a monotone).
    """

    language: str
    variant: str = ""
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    @property
    def name(self) -> str:
        """The engine's voice name, ``language+variant``."""
        return f"{self.language}+{self.variant}" if self.variant else self.language

    def validate(self) -> None:
        """Raises :class:`SynthesisError` naming the bad field and what is allowed."""
        if self.language not in available_languages():
            raise SynthesisError(f"unknown language {self.language!r}; allowed: "
                                 f"{', '.join(available_languages())}")
        if self.variant and self.variant not in available_variants():
            raise SynthesisError(f"unknown voice variant {self.variant!r}; allowed: "
                                 f"{', '.join(available_variants())}")
        for field, (low, high) in (("rate", RATE_RANGE), ("pitch", PITCH_RANGE),
                                   ("pitch_range", PITCH_RANGE)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise SynthesisError(f"voice {field} must be an integer in [{low}, {high}]; got {value!r}")


@dataclasses.dataclass(frozen=True)
class Request:
    """One utterance to synthesise: ``text`` spoken by ``voice``."""

    text: str
    voice: Voice

    def validate(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise SynthesisError(f"text to synthesise must be a non-empty string; got {self.text!r}")
        self.voice.validate()


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """A synthesised utterance with phone and word positions in samples.

    Attributes:
        audio: int16 [N] mono audio at ``sample_rate``.
        sample_rate: Hz (22050 for the bundled engine).
        phones: ``(name, start, end, word)`` per phone in time order, tiling
            ``[first phone start, N)``; pauses have names starting with ``_`` and
            ``word = -1``; ``name`` is eSpeak's phoneme mnemonic (stress marks kept).
        words: ``(start, end)`` per word event, in order; a word spans its phones.
    """

    audio: np.ndarray
    sample_rate: int
    phones: tuple[tuple[str, int, int, int], ...]
    words: tuple[tuple[int, int], ...]


def _phones_and_words(events: list[list[Any]], num_samples: int
                      ) -> tuple[tuple[tuple[str, int, int, int], ...], tuple[tuple[int, int], ...]]:
    """Turns the engine's event stream into phone and word spans (samples)."""
    word_positions = [e[2] for e in events if e[0] == "word"]
    raw = [(e[3], min(max(int(e[1]), 0), num_samples), e[2]) for e in events if e[0] == "phoneme"]
    phones = []
    for i, (name, start, text_position) in enumerate(raw):
        end = raw[i + 1][1] if i + 1 < len(raw) else num_samples
        word = -1
        if not name.startswith("_"):
            # A phone belongs to the last word that starts at or before its text position.
            candidates = [k for k, pos in enumerate(word_positions) if pos <= text_position]
            word = candidates[-1] if candidates else -1
        phones.append((name, start, max(end, start), word))
    words = []
    for k in range(len(word_positions)):
        spans = [(s, e) for _, s, e, w in phones if w == k]
        words.append((spans[0][0], spans[-1][1]) if spans else (-1, -1))
    return tuple(phones), tuple(words)


class _Worker:
    """One template process; requests are served one at a time."""

    def __init__(self, ipa: bool = False) -> None:
        library, data = _paths()
        self._process = subprocess.Popen([sys.executable, "-I", "-S", str(_WORKER), library, data]
                                         + (["ipa"] if ipa else []),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        header = self._header()
        if not header.get("ok"):
            self.close()
            raise SynthesisError(f"could not start eSpeak NG: {header.get('error')}")
        self.sample_rate = int(header["sample_rate"])
        self.lock = threading.Lock()

    def _header(self) -> dict[str, Any]:
        line = self._process.stdout.readline()
        if not line:
            raise SynthesisError("the eSpeak NG worker process exited unexpectedly")
        return json.loads(line)

    def _ask(self, message: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
            header = self._header()
            raw = self._process.stdout.read(2 * int(header.get("num_samples", 0))) if header["ok"] else b""
        return header, raw

    def phonemize(self, texts: Sequence[str], voice: str) -> list[str]:
        header, _ = self._ask({"phonemize": list(texts), "voice": voice})
        if not header["ok"]:
            raise SynthesisError(f"cannot transcribe with voice {voice!r}: {header['error']}")
        return list(header["phonemes"])

    def synthesize(self, request: Request) -> Synthesis:
        voice = request.voice
        message = {"text": request.text, "voice": voice.name, "rate": voice.rate, "pitch": voice.pitch,
                   "range": voice.pitch_range}
        header, raw = self._ask(message)
        if not header["ok"]:
            raise SynthesisError(f"cannot synthesise {request.text!r} with voice {voice.name!r}: "
                                 f"{header['error']}")
        audio = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        if audio.size == 0:
            raise SynthesisError(f"eSpeak NG produced no audio for {request.text!r} (voice {voice.name!r})")
        phones, words = _phones_and_words(header["events"], audio.size)
        return Synthesis(audio, self.sample_rate, phones, words)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=10)


class Engine:
    """A pool of eSpeak NG worker processes (use as a context manager).

    Args:
        processes: number of worker processes; requests are spread over them.
        ipa: phone names in IPA (eSpeak NG's ``espeakINITIALIZE_PHONEME_IPA``) instead of its mnemonics.
    """

    def __init__(self, processes: int = 1, ipa: bool = False):
        if processes < 1:
            raise SynthesisError(f"processes must be >= 1; got {processes}")
        self._workers = [_Worker(ipa) for _ in range(processes)]
        self.sample_rate = self._workers[0].sample_rate

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def phonemize(self, texts: Sequence[str], language: str) -> list[str]:
        """IPA transcriptions of ``texts`` in ``language`` (phones joined by ``_``, words by spaces).

        Raises:
            SynthesisError: an unknown language (the message lists the available ones).
        """
        Voice(language).validate()
        return self._workers[0].phonemize(texts, language)

    def synthesize(self, requests: Sequence[Request]) -> list[Synthesis]:
        """Synthesises ``requests`` (validated first) and returns them in order.

        Every utterance is spoken from the same initial engine state, so the
        result depends on its request only (not on order or worker).

        Raises:
            SynthesisError: empty text, unknown language or variant, out-of-range prosody.
        """
        for request in requests:
            request.validate()
        if len(self._workers) == 1 or len(requests) < 2:
            return [self._workers[0].synthesize(r) for r in requests]
        with concurrent.futures.ThreadPoolExecutor(len(self._workers)) as pool:
            futures = [pool.submit(self._workers[i % len(self._workers)].synthesize, r)
                       for i, r in enumerate(requests)]
            return [f.result() for f in futures]


_DEFAULT: list[Engine] = []


def synthesize(text: str, voice: Voice) -> Synthesis:
    """Synthesises one utterance with a shared single-process engine (see :class:`Engine`).

    Raises:
        SynthesisError: empty text, unknown language or variant, out-of-range prosody.
    """
    if not _DEFAULT:
        _DEFAULT.append(Engine(1))
        atexit.register(_DEFAULT[0].close)
    return _DEFAULT[0].synthesize([Request(text, voice)])[0]
