"""What the builders derived from ``pydocs`` share: reading the prepared corpus, blocks, stable seeds."""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import numpy as np

from jaxcompress.data.text.records import read_documents
from jaxcompress.data.text.segment import make_blocks, sentences


def corpus_root(builder: Any) -> pathlib.Path:
    """The TFDS data directory a builder writes into (where ``pydocs`` is, or will be, prepared)."""
    return pathlib.Path(str(builder._data_dir_root))  # noqa: SLF001 - TFDS keeps the root only here.


def load_corpus(builder: Any, split: str) -> list[dict[str, Any]]:
    """The ``pydocs`` documents of ``split`` (prepared on first use), sorted by id, with their sentences."""
    documents = read_documents("pydocs", split, corpus_root(builder))
    for document in documents:
        document["sentences"] = sentences(document["text"])
    return [d for d in documents if d["sentences"]]


def stable_seed(*parts: object) -> int:
    """A non-negative 63-bit integer from the BLAKE2b hash of ``parts`` (no RNG involved)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def document_blocks(document: dict[str, Any], target_chars: int, rng: np.random.Generator,
                    short_seq_prob: float) -> list[list[str]]:
    """The document's sentences grouped into blocks (see :func:`make_blocks`)."""
    return make_blocks(document["sentences"], target_chars, rng, short_seq_prob)


def random_segment(documents: list[dict[str, Any]], exclude: int, max_chars: int,
                   rng: np.random.Generator) -> str:
    """Consecutive sentences (about ``max_chars``) from a random document other than ``exclude``."""
    if len(documents) < 2:
        return ""
    j = int(rng.integers(len(documents) - 1))
    j += j >= exclude
    found = documents[j]["sentences"]
    start = int(rng.integers(len(found)))
    out, length = [], 0
    for sentence in found[start:]:
        out.append(sentence)
        length += len(sentence) + 1
        if length >= max_chars:
            break
    return " ".join(out)
