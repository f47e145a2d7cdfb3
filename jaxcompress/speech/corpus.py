"""Synthetic spoken corpora: which utterances to speak, and turning them into records.

Two corpora, both spoken by the same 12 synthetic speakers (an eSpeak NG voice
variant with its own base pitch and pitch range; the speaking rate and a small
pitch offset vary per utterance):

* ``commands``: one English command word per utterance (the ten words of
  Speech Commands v1), for keyword recognition;
* ``digits``: strings of 2-4 digits in five languages (each digit written as a
  numeral, so the engine reads it in the utterance's language), for language
  and speaker identification and for digit and phone recognition with CTC.

A plan (:func:`plan_corpus`) draws every utterance's text, language, speaker,
rate, silences and noise level from a NumPy generator seeded by the corpus
name, so it never changes; an utterance is kept only if no earlier one (in any
split) has the same text, language, speaker, rate and pitch, so the splits are
disjoint. :func:`render` synthesises the plan (:mod:`jaxcompress.speech.espeak`),
resamples to 16 kHz, pads with silence, adds white noise at the planned SNR,
computes 100 Hz log-mels and converts the engine's phone and word positions to
seconds.

References: Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech
Recognition", arXiv 1804.03209 (the command words); Chen, Meng, Lee,
"Once-for-All Sequence Compression for Self-Supervised Speech Models", ICASSP
2023 (arXiv 2211.02332) (the downstream task mix this corpus imitates).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxcompress.speech.espeak import Engine, Request, Synthesis, Voice
from jaxcompress.speech.features import FeatureSpec, log_mel, resample

#: Silence symbol in phone sequences; pauses from the engine and padding map to it.
SILENCE = "_"
#: Stress and length marks stripped from the engine's phoneme mnemonics.
_MARKS = str.maketrans("", "", "',%=")

MAX_WORDS = 8
MAX_SEGMENTS = 64
MAX_PHONES = 48


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: voice variant, base pitch and pitch range (0..100)."""

    variant: str
    pitch: int
    pitch_range: int

    @property
    def name(self) -> str:
        return f"{self.variant}-p{self.pitch}"


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("m1", 40, 50), Speaker("m2", 50, 60), Speaker("m3", 35, 40), Speaker("m4", 55, 70),
    Speaker("m5", 45, 50), Speaker("m7", 30, 30), Speaker("f1", 65, 60), Speaker("f2", 75, 70),
    Speaker("f3", 60, 40), Speaker("f4", 70, 80), Speaker("f5", 80, 50), Speaker("klatt", 50, 50),
)

COMMAND_WORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS: tuple[str, ...] = tuple("0123456789")
DIGIT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it")


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """What a corpus contains and how many utterances each split holds.

    Attributes:
        name: ``commands`` or ``digits`` (seeds the plan).
        tokens: the vocabulary; each token is also the text that is spoken.
        languages: languages utterances are spoken in.
        words: (min, max) tokens per utterance.
        rate: (min, max) speaking rate, words per minute.
        silence_ms: (min, max) silence added before and after the speech.
        snr_db: (min, max) signal-to-noise ratio of the added white noise.
        splits: ``((split, count), ...)``.
        max_frames: 100 Hz frames every record is padded to (longer utterances are an error).
    """

    name: str
    tokens: tuple[str, ...]
    languages: tuple[str, ...]
    words: tuple[int, int]
    rate: tuple[int, int]
    silence_ms: tuple[int, int]
    snr_db: tuple[float, float]
    splits: tuple[tuple[str, int], ...]
    max_frames: int


def commands_spec(splits: tuple[tuple[str, int], ...]) -> CorpusSpec:
    return CorpusSpec("commands", COMMAND_WORDS, ("en",), (1, 1), (130, 210), (50, 250), (20.0, 40.0),
                      splits, max_frames=128)


def digits_spec(splits: tuple[tuple[str, int], ...]) -> CorpusSpec:
    return CorpusSpec("digits", DIGITS, DIGIT_LANGUAGES, (2, 4), (150, 230), (50, 200), (20.0, 40.0),
                      splits, max_frames=240)


@dataclasses.dataclass(frozen=True)
class UtteranceSpec:
    """One planned utterance (all randomness of the corpus lives here)."""

    key: str
    tokens: tuple[int, ...]
    language: int
    speaker: int
    rate: int
    pitch: int
    lead_ms: int
    trail_ms: int
    snr_db: float
    noise_seed: int

    def request(self, corpus: CorpusSpec) -> Request:
        text = " ".join(corpus.tokens[t] for t in self.tokens)
        speaker = SPEAKERS[self.speaker]
        return Request(text, Voice(corpus.languages[self.language], speaker.variant, rate=self.rate,
                                   pitch=self.pitch, pitch_range=speaker.pitch_range))


def _stable_seed(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(parts).encode(), digest_size=8).digest(), "little")


def plan_corpus(corpus: CorpusSpec) -> dict[str, list[UtteranceSpec]]:
    """Every split's utterances, deterministic and disjoint across splits.

    Returns:
        ``{split: [UtteranceSpec, ...]}`` in the order of ``corpus.splits``.
    """
    rng = np.random.default_rng(_stable_seed("jaxcompress-speech", corpus.name))
    seen: set[tuple] = set()
    plan: dict[str, list[UtteranceSpec]] = {}
    for split, count in corpus.splits:
        specs: list[UtteranceSpec] = []
        while len(specs) < count:
            n = int(rng.integers(corpus.words[0], corpus.words[1] + 1))
            tokens = tuple(int(t) for t in rng.integers(0, len(corpus.tokens), n))
            language = int(rng.integers(len(corpus.languages)))
            speaker = int(rng.integers(len(SPEAKERS)))
            rate = int(rng.integers(corpus.rate[0], corpus.rate[1] + 1))
            pitch = SPEAKERS[speaker].pitch + int(rng.integers(-4, 5))
            lead, trail = (int(v) for v in rng.integers(corpus.silence_ms[0], corpus.silence_ms[1] + 1, 2))
            snr = float(rng.uniform(*corpus.snr_db))
            noise_seed = int(rng.integers(2**31))
            identity = (tokens, language, speaker, rate, pitch)
            if identity in seen:
                continue
            seen.add(identity)
            specs.append(UtteranceSpec(f"{corpus.name}/{split}/{len(specs)}", tokens, language, speaker,
                                       rate, pitch, lead, trail, snr, noise_seed))
        plan[split] = specs
    return plan


def phone_symbol(name: str) -> str:
    """The engine's phoneme mnemonic without stress and length marks (pauses -> ``_``)."""
    return SILENCE if name.startswith("_") else (name.translate(_MARKS) or SILENCE)


@dataclasses.dataclass
class Rendered:
    """A rendered utterance before it is padded into a record.

    Attributes:
        spec: the plan entry.
        logmel: float32 [T, num_mels] at 100 Hz.
        duration: seconds of audio (after silence padding).
        segment_ends: phone-level segmentation (silences included) as end
            times in seconds, increasing, the last equal to ``duration``.
        word_spans: ``(start, end)`` seconds per token.
        phones: phone symbols of the speech (pauses dropped), in order.
    """

    spec: UtteranceSpec
    logmel: np.ndarray
    duration: float
    segment_ends: list[float]
    word_spans: list[tuple[float, float]]
    phones: list[str]


def _render_one(spec: UtteranceSpec, corpus: CorpusSpec, synthesis: Synthesis,
                features: FeatureSpec) -> Rendered:
    rate = features.sample_rate
    speech = resample(synthesis.audio.astype(np.float32) / 32768.0, synthesis.sample_rate, rate)
    lead, trail = spec.lead_ms * rate // 1000, spec.trail_ms * rate // 1000
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])
    voiced = speech[np.abs(speech) > 1e-4]
    rms = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 1e-2
    noise = np.random.default_rng(spec.noise_seed).normal(0.0, rms * 10 ** (-spec.snr_db / 20), audio.size)
    audio = (audio + noise).astype(np.float32)
    logmel = log_mel(audio, features)
    if logmel.shape[0] > corpus.max_frames:
        raise ValueError(f"utterance {spec.key} has {logmel.shape[0]} frames, more than the corpus limit "
                         f"{corpus.max_frames}; raise max_frames or shorten the plan")
    to_s = 1.0 / synthesis.sample_rate
    offset = lead / rate
    duration = audio.size / rate
    # Segments as (end time, is silence); runs of silence (added padding, the
    # engine's own leading silence, its pause phonemes) merge into one segment.
    segments: list[tuple[float, bool]] = []
    first = synthesis.phones[0][1] if synthesis.phones else synthesis.audio.size
    segments.append((offset + first * to_s, True))
    phones = []
    for name, _, end, _ in synthesis.phones:
        symbol = phone_symbol(name)
        segments.append((offset + end * to_s, symbol == SILENCE))
        if symbol != SILENCE:
            phones.append(symbol)
    segments.append((duration, True))
    ends: list[float] = []
    for i, (end, silent) in enumerate(segments):
        if silent and i + 1 < len(segments) and segments[i + 1][1]:
            continue  # the next segment is silence too: extend it instead
        end = min(end, duration)
        if not ends or end > ends[-1]:
            ends.append(end)
    n_tokens = len(spec.tokens)
    if len(synthesis.words) != n_tokens or any(s < 0 for s, _ in synthesis.words):
        raise ValueError(f"utterance {spec.key}: the engine reported {len(synthesis.words)} words for "
                         f"{n_tokens} tokens; cannot align word boundaries")
    spans = [(offset + s * to_s, offset + e * to_s) for s, e in synthesis.words]
    return Rendered(spec, logmel, duration, ends, spans, phones)


def render(corpus: CorpusSpec, specs: Sequence[UtteranceSpec], engine: Engine,
           features: FeatureSpec = FeatureSpec(), chunk: int = 64,
           on_chunk: Callable[[int], Any] | None = None) -> list[Rendered]:
    """Synthesises and featurises ``specs`` in order (``on_chunk(n)`` after every ``n`` done)."""
    out: list[Rendered] = []
    for start in range(0, len(specs), chunk):
        part = specs[start:start + chunk]
        syntheses = engine.synthesize([s.request(corpus) for s in part])
        out.extend(_render_one(s, corpus, y, features) for s, y in zip(part, syntheses))
        if on_chunk is not None:
            on_chunk(len(part))
    return out


def _padded(values: Sequence[float] | Sequence[int], size: int, dtype: Any, what: str, key: str) -> np.ndarray:
    if len(values) > size:
        raise ValueError(f"utterance {key} has {len(values)} {what}, more than the limit {size}")
    out = np.full(size, -1, dtype)
    out[:len(values)] = values
    return out


def to_record(item: Rendered, corpus: CorpusSpec, phone_ids: dict[str, int]) -> dict[str, Any]:
    """The fixed-shape record of one rendered utterance (see the dataset builders)."""
    spec = item.spec
    logmel = np.zeros((corpus.max_frames, item.logmel.shape[1]), np.float16)
    logmel[:item.logmel.shape[0]] = item.logmel
    return {
        "logmel": logmel,
        "num_frames": np.int32(item.logmel.shape[0]),
        "segment_ends": _padded(item.segment_ends, MAX_SEGMENTS, np.float32, "segments", spec.key),
        "word_starts": _padded([s for s, _ in item.word_spans], MAX_WORDS, np.float32, "words", spec.key),
        "word_ends": _padded([e for _, e in item.word_spans], MAX_WORDS, np.float32, "words", spec.key),
        "tokens": _padded(list(spec.tokens), MAX_WORDS, np.int32, "tokens", spec.key),
        "num_tokens": np.int32(len(spec.tokens)),
        "phones": _padded([phone_ids[p] for p in item.phones], MAX_PHONES, np.int32, "phones", spec.key),
        "num_phones": np.int32(len(item.phones)),
        "speaker": spec.speaker,
        "language": spec.language,
    }


def phone_inventory(items: Sequence[Rendered]) -> tuple[str, ...]:
    """Sorted phone symbols that occur in ``items``."""
    return tuple(sorted({p for item in items for p in item.phones}))
