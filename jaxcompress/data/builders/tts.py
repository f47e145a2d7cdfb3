"""Embedded TTS corpora: one per language of the paper, synthesised offline with eSpeak NG.

Each utterance is 1-3 words of the language (drawn from its CLDR words, see
:mod:`jaxcompress.phonology.inventory`) spoken by the language's eSpeak NG voice
(default variant, 175 wpm, 22050 Hz). Phones are the engine's own IPA phoneme
events, so phone boundaries are exact; they are put on the 80-bin log-mel grid
of the paper's FastSpeech 2 setting (1024-point FFT and window, hop 256, 0-8 kHz)
and every phone gets an integer duration in frames (durations sum to the
utterance's frames; silences before, between and after phones are ``sil``
phones).

Records:

* ``mel`` float16 [256, 80]: natural-log mel power, zero past ``num_frames``;
* ``num_frames`` int32;
* ``phones`` int32 [48] and ``durations`` int32 [48]: phone ids (names in
  ``info.metadata["phones"]``) and frames per phone, -1 / 0 padded; ``num_phones``;
* ``chars`` int32 [48] and ``num_chars``: the text's characters (names in
  ``info.metadata["chars"]``), for the CER recogniser.

Splits ``train`` (400) and ``test`` (40) have no text in common.

References: Do, Coler, Dijkstra, Klabbers, SSW 2023 (arXiv 2306.12040) (languages,
mel settings); Ren et al., "FastSpeech 2", ICLR 2021 (durations per phone).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.phonology.inventory import SILENCE, cldr_words, is_modifier, strip_marks
from jaxcompress.phonology.languages import LANGUAGES, get_language
from jaxcompress.speech.features import FeatureSpec, log_mel, num_frames

#: Mel settings of the paper's acoustic model (22.05 kHz, 80 bins, hop 256, fmax 8 kHz).
TTS_FEATURES = FeatureSpec(sample_rate=22050, win_length=1024, hop_length=256, n_fft=1024, num_mels=80,
                           fmin=0.0, fmax=8000.0, floor=1e-5)
MAX_FRAMES = 256
MAX_PHONES = 48
MAX_CHARS = 48
RATE = 175
SPLITS: tuple[tuple[str, int], ...] = (("train", 400), ("test", 40))


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One rendered utterance: text, phones with frame durations, log-mel [T, 80] and audio."""

    text: str
    phones: tuple[str, ...]
    durations: tuple[int, ...]
    mel: np.ndarray
    audio: np.ndarray


def phone_segments(events: Sequence[tuple[str, int, int, int]], num_samples: int
                   ) -> list[tuple[str, int, int]]:
    """``(phone, start, end)`` samples from IPA phoneme events, tiling ``[0, num_samples)``.

    Stress marks are dropped; a modifier-only event (``ʲ``) or an empty one inside the
    speech extends the phone before it; empty events after the last phone and the
    audio before the first are silence; neighbouring silences merge.
    """
    segments: list[list[Any]] = []
    names = [strip_marks(e[0]) for e in events]
    last_named = max((i for i, n in enumerate(names) if n), default=-1)
    for i, (name, (_, start, end, _)) in enumerate(zip(names, events)):
        inside = bool(segments) and segments[-1][0] != SILENCE
        if name and not (inside and is_modifier(name)):
            segments.append([name, start, end])
        elif inside and (name or i <= last_named):
            segments[-1][2] = end  # a modifier or an inner empty event belongs to the phone before
            segments[-1][0] += name
        else:
            segments.append([SILENCE, start, end])
    first = segments[0][1] if segments else num_samples
    out: list[list[Any]] = [[SILENCE, 0, first]] if first > 0 else []
    for seg in segments:
        if out and seg[0] == SILENCE and out[-1][0] == SILENCE:
            out[-1][2] = seg[2]
        else:
            out.append(seg)
    if out:
        out[-1][2] = num_samples
    return [(name, int(s), int(e)) for name, s, e in out]


def frame_durations(segments: Sequence[tuple[str, int, int]], frames: int, hop: int) -> list[int]:
    """Frames per segment: boundaries ``round(end / hop)`` clipped to ``[0, frames]``, last = ``frames``."""
    ends = [min(frames, int(round(e / hop))) for _, _, e in segments]
    ends[-1] = frames
    ends = list(np.maximum.accumulate(ends))
    return [b - a for a, b in zip([0, *ends[:-1]], ends)]


def plan(code: str, splits: Sequence[tuple[str, int]] = SPLITS, spare: int = 2) -> dict[str, list[str]]:
    """Texts per split (``spare`` x the count, so over-long ones can be skipped), disjoint, deterministic."""
    words = cldr_words(code)
    seed = int.from_bytes(hashlib.blake2b(f"jaxcompress-tts/{code}".encode(), digest_size=8).digest(), "little")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for split, count in splits:
        texts: list[str] = []
        while len(texts) < spare * count:
            n = int(rng.integers(1, 4))
            text = " ".join(words[int(i)] for i in rng.integers(0, len(words), n))
            if text not in seen:
                seen.add(text)
                texts.append(text)
        out[split] = texts
    return out


def render(texts: Sequence[str], code: str, engine: Any) -> list[Utterance | None]:
    """Synthesises ``texts`` with the language's voice; None for one that does not fit the record."""
    from jaxcompress.speech.espeak import Request, Voice

    voice = Voice(get_language(code).voice, rate=RATE)
    out: list[Utterance | None] = []
    for text, synthesis in zip(texts, engine.synthesize([Request(t, voice) for t in texts])):
        audio = synthesis.audio.astype(np.float32) / 32768.0
        frames = num_frames(audio.size, TTS_FEATURES)
        if not 0 < frames <= MAX_FRAMES or len(text) > MAX_CHARS:
            out.append(None)
            continue
        segments = phone_segments(synthesis.phones, audio.size)
        durations = frame_durations(segments, frames, TTS_FEATURES.hop_length)
        if len(segments) > MAX_PHONES:
            out.append(None)
            continue
        mel = log_mel(audio, TTS_FEATURES)
        out.append(Utterance(text, tuple(s[0] for s in segments), tuple(durations), mel, audio))
    return out


def _padded(values: Sequence[int], size: int, fill: int) -> np.ndarray:
    out = np.full(size, fill, np.int32)
    out[:len(values)] = values
    return out


class _TTSBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared generation of the per-language TTS corpora (subclasses set ``LANGUAGE``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None
    LANGUAGE = ""

    def _info(self) -> tfds.core.DatasetInfo:
        lang = get_language(self.LANGUAGE)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(f"{lang.name} ({lang.code}) speech synthesised offline by eSpeak NG: 1-3 CLDR words per "
                         f"utterance, 80-bin log-mels at 22.05 kHz / hop 256, IPA phones with exact durations."),
            features=tfds.features.FeaturesDict({
                "mel": tfds.features.Tensor(shape=(MAX_FRAMES, TTS_FEATURES.num_mels), dtype=np.float16),
                "num_frames": tfds.features.Scalar(dtype=np.int32),
                "phones": tfds.features.Tensor(shape=(MAX_PHONES,), dtype=np.int32),
                "durations": tfds.features.Tensor(shape=(MAX_PHONES,), dtype=np.int32),
                "num_phones": tfds.features.Scalar(dtype=np.int32),
                "chars": tfds.features.Tensor(shape=(MAX_CHARS,), dtype=np.int32),
                "num_chars": tfds.features.Scalar(dtype=np.int32),
            }),
            homepage="https://github.com/espeak-ng/espeak-ng",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # everything is synthesised locally
        from jaxcompress.speech.espeak import Engine

        texts = plan(self.LANGUAGE)
        rendered: dict[str, list[Utterance]] = {}
        with Engine(1, ipa=True) as engine:
            for split, count in SPLITS:
                kept: list[Utterance] = []
                for start in range(0, len(texts[split]), 64):
                    kept += [u for u in render(texts[split][start:start + 64], self.LANGUAGE, engine) if u]
                    if len(kept) >= count:
                        break
                if len(kept) < count:
                    raise ValueError(f"only {len(kept)} of {count} {split} utterances of {self.LANGUAGE!r} fit")
                rendered[split] = kept[:count]
        everything = [u for items in rendered.values() for u in items]
        phones = sorted({p for u in everything for p in u.phones})
        chars = sorted({c for u in everything for c in u.text})
        self.info.metadata.update(phones=phones, chars=chars, language=self.LANGUAGE,
                                  texts={split: [u.text for u in items] for split, items in rendered.items()})
        ids = {p: i for i, p in enumerate(phones)}
        char_ids = {c: i for i, c in enumerate(chars)}
        return {split: self._generate_examples(items, split, ids, char_ids) for split, items in rendered.items()}

    def _generate_examples(self, items: list[Utterance], split: str, ids: dict[str, int], char_ids: dict[str, int]
                  ) -> Iterator[tuple[str, dict]]:
        for i, u in enumerate(items):
            mel = np.zeros((MAX_FRAMES, TTS_FEATURES.num_mels), np.float16)
            mel[:u.mel.shape[0]] = u.mel
            yield f"{split}/{i}", {
                "mel": mel, "num_frames": np.int32(u.mel.shape[0]),
                "phones": _padded([ids[p] for p in u.phones], MAX_PHONES, -1),
                "durations": _padded(u.durations, MAX_PHONES, 0), "num_phones": np.int32(len(u.phones)),
                "chars": _padded([char_ids[c] for c in u.text], MAX_CHARS, -1),
                "num_chars": np.int32(len(u.text)),
            }


def _builder(code: str) -> type:
    name = f"JaxcompressTts{code.capitalize()}"
    doc = f"{LANGUAGES[code].name} speech from eSpeak NG with IPA phones and exact durations (TTS transfer)."
    return type(name, (_TTSBuilder,), {"LANGUAGE": code, "__doc__": doc, "__module__": __name__},
                skip_registration=True)


#: One builder class per language, ``JaxcompressTtsBg`` ... (datasets ``tts_bg`` ...).
BUILDERS: dict[str, type] = {code: _builder(code) for code in LANGUAGES}
globals().update({cls.__name__: cls for cls in BUILDERS.values()})


def dataset_name(code: str) -> str:
    """The embedded dataset of language ``code`` (``tts_bg``); UserError listing the languages otherwise."""
    get_language(code)
    return f"tts_{code}"
