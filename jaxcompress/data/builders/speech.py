"""Embedded synthetic speech datasets: spoken commands and digit strings with exact boundaries.

Utterances are synthesised offline with eSpeak NG (shipped by the
``espeakng-loader`` package) by 12 synthetic speakers at varied rates and
pitches, padded with silence, mixed with white noise and stored as 100 Hz
log-mel features (see :mod:`jaxcompress.speech.corpus`). Phone and word
boundaries come from the synthesiser itself, so they are exact ("oracle"
segments).

Records (``T`` = ``max_frames`` of the corpus, 128 for commands, 240 for digits):

* ``logmel`` float16 [T, 40]: natural-log mel power, zero past ``num_frames``;
* ``num_frames`` int32: valid 100 Hz frames;
* ``segment_ends`` float32 [64]: end time (s) of every phone-level segment
  (phones, and silences merged into one segment per run), -1 padded; the
  last one is the end of the audio;
* ``word_starts``, ``word_ends`` float32 [8]: time span (s) of each spoken token, -1 padded;
* ``tokens`` int32 [8] and ``num_tokens``: the token ids (the digit, or the command word);
* ``phones`` int32 [48] and ``num_phones``: phone ids (pauses dropped); names in
  ``info.metadata["phones"]``;
* ``speaker`` and ``language`` (``ClassLabel``), and ``keyword`` for commands.

Splits are disjoint: no (text, language, speaker, rate, pitch) occurs twice.
The ``_tiny`` variants hold a few dozen utterances per split for tests and
quick runs.

References: Warden, "Speech Commands", arXiv 1804.03209 (the command words);
Chen, Meng, Lee, "Once-for-All Sequence Compression for Self-Supervised Speech
Models", ICASSP 2023 (arXiv 2211.02332) (the tasks this data serves).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.speech import corpus as corpus_lib

SPLIT_NAMES = ("train", "validation", "test")


class _SpeechBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared generation of the speech corpora (subclasses choose the corpus)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None  # nothing is downloaded (see the digits builder)
    SPLITS: tuple[tuple[str, int], ...] = ()
    KIND = ""

    @classmethod
    def corpus(cls) -> corpus_lib.CorpusSpec:
        make = corpus_lib.commands_spec if cls.KIND == "commands" else corpus_lib.digits_spec
        return make(cls.SPLITS)

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self.corpus()
        features: dict[str, Any] = {
            "logmel": tfds.features.Tensor(shape=(spec.max_frames, 40), dtype=np.float16),
            "num_frames": tfds.features.Scalar(dtype=np.int32),
            "segment_ends": tfds.features.Tensor(shape=(corpus_lib.MAX_SEGMENTS,), dtype=np.float32),
            "word_starts": tfds.features.Tensor(shape=(corpus_lib.MAX_WORDS,), dtype=np.float32),
            "word_ends": tfds.features.Tensor(shape=(corpus_lib.MAX_WORDS,), dtype=np.float32),
            "tokens": tfds.features.Tensor(shape=(corpus_lib.MAX_WORDS,), dtype=np.int32),
            "num_tokens": tfds.features.Scalar(dtype=np.int32),
            "phones": tfds.features.Tensor(shape=(corpus_lib.MAX_PHONES,), dtype=np.int32),
            "num_phones": tfds.features.Scalar(dtype=np.int32),
            "speaker": tfds.features.ClassLabel(names=[s.name for s in corpus_lib.SPEAKERS]),
            "language": tfds.features.ClassLabel(names=list(spec.languages)),
        }
        if self.KIND == "commands":
            features["keyword"] = tfds.features.ClassLabel(names=list(spec.tokens))
        sizes = ", ".join(f"{name} {count}" for name, count in spec.splits)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(f"Synthetic speech ({self.KIND}) from eSpeak NG: 12 voices, "
                         f"{'/'.join(spec.languages)}, 100 Hz 40-bin log-mels with exact phone and "
                         f"word boundaries ({sizes} utterances)."),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("logmel", "keyword" if self.KIND == "commands" else "language"),
            homepage="https://github.com/espeak-ng/espeak-ng",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # everything is synthesised locally
        from tqdm import tqdm

        from jaxcompress.speech.espeak import Engine

        spec = self.corpus()
        plan = corpus_lib.plan_corpus(spec)
        total = sum(len(v) for v in plan.values())
        rendered: dict[str, list[corpus_lib.Rendered]] = {}
        processes = max(1, min(2, os.cpu_count() or 1))
        with Engine(processes) as engine, tqdm(total=total, desc=f"synthesising {spec.name}",
                                               unit="utt", leave=False) as bar:
            for split, specs in plan.items():
                rendered[split] = corpus_lib.render(spec, specs, engine, on_chunk=bar.update)
        # Phone ids are ranks in the sorted inventory of the whole corpus (a label
        # set, not label statistics, so using every split leaks nothing).
        names = corpus_lib.phone_inventory([r for items in rendered.values() for r in items])
        self.info.metadata["phones"] = list(names)
        self.info.metadata["tokens"] = list(spec.tokens)
        ids = {name: i for i, name in enumerate(names)}
        return {split: self._generate_examples(items, spec, ids) for split, items in rendered.items()}

    def _generate_examples(self, items: list[corpus_lib.Rendered], spec: corpus_lib.CorpusSpec,
                           ids: dict[str, int]) -> Iterator[tuple[str, dict]]:
        for item in items:
            record = corpus_lib.to_record(item, spec, ids)
            if self.KIND == "commands":
                record["keyword"] = int(item.spec.tokens[0])
            yield item.spec.key, record


class JaxcompressSpeechCommands(_SpeechBuilder, skip_registration=True):
    """Spoken English command words (10 classes), 12 synthetic voices, exact boundaries."""

    KIND = "commands"
    SPLITS = (("train", 1200), ("validation", 240), ("test", 240))


class JaxcompressSpeechDigits(_SpeechBuilder, skip_registration=True):
    """Spoken digit strings in 5 languages, 12 synthetic voices, exact phone and word boundaries."""

    KIND = "digits"
    SPLITS = (("train", 2400), ("validation", 300), ("test", 300))


class JaxcompressSpeechCommandsTiny(_SpeechBuilder, skip_registration=True):
    """Spoken English command words, a few dozen per split (tests, quick runs)."""

    KIND = "commands"
    SPLITS = (("train", 48), ("validation", 24), ("test", 24))


class JaxcompressSpeechDigitsTiny(_SpeechBuilder, skip_registration=True):
    """Spoken digit strings in 5 languages, a few dozen per split (tests, quick runs)."""

    KIND = "digits"
    SPLITS = (("train", 64), ("validation", 32), ("test", 32))
