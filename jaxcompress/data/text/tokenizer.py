"""A SentencePiece unigram tokenizer with BERT/ALBERT special tokens, trained offline and cached.

Special ids are fixed (as in ALBERT's released vocabulary): ``[PAD]`` 0,
``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4; ordinary pieces follow.
:func:`corpus_tokenizer` trains the model on the sentences of the ``pydocs``
train split (never validation or test) and caches the model file under the
data directory, keyed by a hash of the exact training text and options, so a
changed corpus or option can never pick up a stale file. Training runs on one
thread with a fixed seed, which makes the model file byte-for-byte
reproducible.

References:
  Kudo, "Subword Regularization: Improving Neural Network Translation Models
  with Multiple Subword Candidates", ACL 2018 (the unigram language model);
  Kudo & Richardson, "SentencePiece", EMNLP 2018 (demo track); Lan et al.,
  "ALBERT", ICLR 2020 (SentencePiece vocabulary with these special tokens).
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from jaxcompress.errors import ConfigError, DataError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
#: Version of the training recipe; part of the cache key.
RECIPE = "unigram-v1"
#: Smallest vocabulary SentencePiece can train with the special tokens and the corpus's characters.
MIN_VOCAB = 256
_WORD_START = "\u2581"  # SentencePiece's visible space, which starts a word.


class Tokenizer:
    """Encodes text to ids ``[n]`` and marks which pieces start a word.

    Attributes:
      vocab_size: V, number of ids (special ones included).
      pad_id, unk_id, cls_id, sep_id, mask_id: the special ids 0..4.
      num_special: 5; ids in ``[num_special, V)`` are ordinary pieces (what
        MLM's random replacement draws from).
      path: the model file.
    """

    def __init__(self, path: str | os.PathLike):
        import sentencepiece as spm

        self.path = pathlib.Path(path)
        try:
            self._sp = spm.SentencePieceProcessor(model_file=os.fspath(self.path))
        except (OSError, RuntimeError) as error:
            raise DataError(f"cannot load tokenizer model {self.path}: {error}") from error
        ids = [self._sp.piece_to_id(token) for token in SPECIAL_TOKENS]
        if ids != list(range(len(SPECIAL_TOKENS))):
            raise DataError(f"tokenizer model {self.path} must map {', '.join(SPECIAL_TOKENS)} to ids 0..4 "
                            f"(got {ids}); train it with jaxcompress.data.text.tokenizer.train_tokenizer")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids
        self.num_special = len(SPECIAL_TOKENS)
        self.vocab_size = int(self._sp.get_piece_size())
        pieces = [self._sp.id_to_piece(i) for i in range(self.vocab_size)]
        # Whole-word masking needs word boundaries: a piece starts a word when
        # it carries SentencePiece's space mark or begins with punctuation
        # (so "sub" and "(" in "sub(" are separate words).
        self._starts_word = np.array([p.startswith(_WORD_START) or not p[:1].isalnum() for p in pieces])
        self._starts_word[:self.num_special] = True

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, path='{self.path}')"

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text: a list of int32 ``[n_i]`` (no special tokens added)."""
        return [np.asarray(ids, np.int32) for ids in self._sp.encode(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ordinary ids (special ids are dropped)."""
        return self._sp.decode([int(i) for i in ids if int(i) >= self.num_special])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self._sp.id_to_piece(int(i)) for i in ids]

    def starts_word(self, ids: np.ndarray) -> np.ndarray:
        """bool ``[...]``: which ids begin a new word (special ids always do)."""
        return self._starts_word[np.asarray(ids)]


def _options(vocab_size: int, lowercase: bool) -> dict:
    return dict(
        model_type="unigram", vocab_size=vocab_size, hard_vocab_limit=False,
        character_coverage=0.9999, normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece=PAD, unk_piece=UNK,
        control_symbols=[CLS, SEP, MASK], split_digits=True, max_sentence_length=8192,
        # One thread, every sentence, no shuffling: the model file is a pure function of the input.
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
    )


def train_tokenizer(sentences: Sequence[str], vocab_size: int, path: str | os.PathLike,
                    lowercase: bool = True) -> Tokenizer:
    """Trains a unigram SentencePiece model on ``sentences`` and writes it to ``path`` atomically.

    Args:
      sentences: training text, one sentence per item.
      vocab_size: the target V (a small corpus may yield fewer pieces).
      path: where the ``.model`` file goes (its folder is created).
      lowercase: case-fold while normalising (ALBERT's released models are uncased).

    Raises:
      ConfigError: ``vocab_size`` below :data:`MIN_VOCAB`.
      DataError: no training text.
    """
    import sentencepiece as spm

    if vocab_size < MIN_VOCAB:
        raise ConfigError(f"tokenizer vocab_size must be >= {MIN_VOCAB}, got {vocab_size}")
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise DataError("cannot train a tokenizer on an empty corpus")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spm.set_random_generator_seed(0)
    proto = io.BytesIO()
    with open(os.devnull, "w") as devnull:
        # SentencePiece logs every EM round to file descriptor 2; it can only be
        # redirected when sys.stderr is a real file (not a captured or wrapped stream).
        quiet = devnull if _has_fileno(sys.stderr) else None
        spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=proto, logstream=quiet,
                                       minloglevel=2, **_options(vocab_size, lowercase))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(proto.getvalue())
    os.replace(tmp, path)  # Another process training the same file writes the same bytes.
    return Tokenizer(path)


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return True


def cache_key(sentences: Sequence[str], vocab_size: int, lowercase: bool) -> str:
    """Hex digest of the training text and options (16 characters)."""
    digest = hashlib.sha256(f"{RECIPE}|{vocab_size}|{lowercase}|{sorted(_options(vocab_size, lowercase).items())}"
                            .encode())
    for sentence in sentences:
        digest.update(sentence.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def corpus_tokenizer(data_dir: str | os.PathLike | None = None, vocab_size: int = 8000,
                     lowercase: bool = True, quiet: bool = True) -> Tokenizer:
    """The tokenizer of the embedded corpus: trained on the ``pydocs`` train split, cached.

    The model lives in ``<data_dir>/jaxcompress_tokenizers/pydocs-<key>-<V>.model``
    where ``key`` hashes the training sentences and options; the first call
    trains it (seconds), later calls load it.

    Args:
      data_dir: the TFDS data directory (None or '' for the default).
      vocab_size: target V.
      lowercase: case-fold the text.
      quiet: no progress note on stderr while training.
    """
    from jaxcompress.data._paths import resolve_data_dir
    from jaxcompress.data.text.records import read_documents
    from jaxcompress.data.text.segment import sentences as split_sentences

    root = resolve_data_dir(data_dir)
    train = read_documents("pydocs", "train", root)
    text = [s for document in train for s in split_sentences(document["text"])]
    name = f"pydocs-{cache_key(text, vocab_size, lowercase)}-{vocab_size}.model"
    path = root / "jaxcompress_tokenizers" / name
    if path.is_file():
        return Tokenizer(path)
    if not quiet:
        import sys

        print(f"training a {vocab_size}-piece tokenizer on the pydocs train split -> {path}", file=sys.stderr)
    return train_tokenizer(text, vocab_size, path, lowercase)
