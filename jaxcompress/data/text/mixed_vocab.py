"""Host-side text for mixed-vocabulary distillation: a student vocabulary, mixed and aligned tokenisations.

Both vocabularies are SentencePiece models of the same corpus with the same
normalisation, and SentencePiece never lets a piece cross a space, so a text
split on whitespace into words tokenises word by word exactly as it does as a
whole. That shared pre-tokenisation is what keeps word boundaries identical
in the two vocabularies:

* :func:`mixed_example` (stage I, dual training): each word is tokenised with
  the student's vocabulary with probability ``p_mix``, else with the
  teacher's; whole teacher-tokenised words are masked and their targets are
  the teacher's pieces at the same positions (student-tokenised words are
  context only, so a target is always a teacher id where it stands).
* :func:`aligned_example` (stage II): the same words tokenised twice, once per
  vocabulary, with a word index per token so hidden states can be compared
  word by word; the student's sequence carries its own whole-word MLM masks.

Both truncate to whole words that fit (in both tokenisations for the aligned
pair), so a word is never cut.

References:
  Zhao, Gupta, Song & Zhou, "Extremely Small BERT Models from Mixed-Vocabulary
  Training", EACL 2021 (arXiv 1909.11687; stage I mixed tokenisation, stage II
  student vocabulary only); Kudo & Richardson, "SentencePiece", EMNLP 2018.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxcompress.data.text.pretraining import PretrainingSpec, mask_sequence
from jaxcompress.errors import ConfigError, DataError

#: Word index of tokens that belong to no word ([CLS], [SEP], padding).
NO_WORD = -1


@dataclasses.dataclass(frozen=True)
class MixSpec:
    """Options of mixed and aligned example construction.

    Attributes:
      max_seq_length: L, tokens per sequence ([CLS] and [SEP] included).
      p_mix: probability that a word is tokenised with the student's vocabulary (stage I).
      masked_lm_prob: fraction of maskable tokens predicted.
      max_predictions: P, masked positions per sequence (padded).
      max_ngram: longest run of whole words masked together.
    """

    max_seq_length: int = 64
    p_mix: float = 0.5
    masked_lm_prob: float = 0.15
    max_predictions: int = 10
    max_ngram: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_mix <= 1.0:
            raise ConfigError(f"p_mix (the mixing rate) must lie in [0, 1], got {self.p_mix}")
        if self.max_seq_length < 4:
            raise ConfigError(f"max_seq_length must be >= 4, got {self.max_seq_length}")

    def masking(self) -> PretrainingSpec:
        return PretrainingSpec(max_seq_length=self.max_seq_length, objective="none",
                               masked_lm_prob=self.masked_lm_prob, max_predictions=self.max_predictions,
                               max_ngram=self.max_ngram)


def student_tokenizer(data_dir: str | None, vocab_size: int, teacher, lowercase: bool = True):
    """The student's vocabulary: the corpus tokenizer at ``vocab_size`` pieces, cached like the teacher's,
    and refused (:func:`check_coverage`) if it does not cover the characters the teacher's covers."""
    from jaxcompress.data.text.tokenizer import corpus_tokenizer

    student = corpus_tokenizer(data_dir, vocab_size, lowercase)
    check_coverage(student, teacher, corpus_characters(data_dir))
    return student


def corpus_characters(data_dir: str | None) -> str:
    """Every distinct non-space character of the ``pydocs`` train split, sorted."""
    from jaxcompress.data._paths import resolve_data_dir
    from jaxcompress.data.text.records import read_documents

    chars: set[str] = set()
    for document in read_documents("pydocs", "train", resolve_data_dir(data_dir)):
        chars.update(document["text"])
    return "".join(sorted(c for c in chars if not c.isspace()))


def uncovered_characters(tokenizer, characters: str) -> list[str]:
    """The characters that ``tokenizer`` can only write as ``[UNK]``."""
    chars = [c for c in characters if not c.isspace()]
    return [c for c, ids in zip(chars, tokenizer.encode(chars)) if tokenizer.unk_id in ids.tolist()]


def check_coverage(student, teacher, characters: str) -> None:
    """Refuses a student vocabulary that writes as ``[UNK]`` a character of the corpus the teacher covers.

    A word with such a character would read as ``[UNK]`` to the student but
    as text to the teacher, so its stage-I embedding and its stage-II
    hidden-state target would describe different inputs.

    Raises:
      DataError: naming the student's model file and the first missing characters.
    """
    missing = sorted(set(uncovered_characters(student, characters)) - set(uncovered_characters(teacher, characters)))
    if missing:
        shown = " ".join(repr(c) for c in missing[:12])
        raise DataError(f"student vocabulary {student.path.name} does not cover {len(missing)} character(s) of "
                        f"the corpus that the teacher's vocabulary covers ({shown}); train the student's "
                        f"vocabulary on the same corpus (jaxcompress.data.text.mixed_vocab.student_tokenizer)")


def words_of(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` (the pre-tokenisation both vocabularies share)."""
    return text.split()


def word_pieces(tokenizer, words: Sequence[str]) -> list[np.ndarray]:
    """Token ids of each word, int32 ``[n_w]`` each (a word SentencePiece normalises away gives ``[0]``)."""
    return tokenizer.encode(list(words)) if words else []


def _fit(lengths: Sequence[np.ndarray], room: int) -> int:
    """How many leading words fit in ``room`` tokens in every tokenisation: ``lengths[k][w]`` pieces each."""
    count = len(lengths[0])
    for per_word in lengths:
        cumulative = np.cumsum(per_word)
        count = min(count, int(np.searchsorted(cumulative, room, side="right")))
    return count


def _pack(pieces: Sequence[np.ndarray], tokenizer, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[CLS] w_0 ... w_k [SEP]`` padded to ``length``: ``(ids, attention_mask, word_index)`` int32 ``[L]``."""
    ids = np.full(length, tokenizer.pad_id, np.int32)
    word = np.full(length, NO_WORD, np.int32)
    mask = np.zeros(length, np.int32)
    ids[0] = tokenizer.cls_id
    cursor = 1
    for w, piece in enumerate(pieces):
        ids[cursor:cursor + len(piece)] = piece
        word[cursor:cursor + len(piece)] = w
        cursor += len(piece)
    ids[cursor] = tokenizer.sep_id
    mask[:cursor + 1] = 1
    return ids, mask, word


def _starts(word: np.ndarray) -> np.ndarray:
    """bool ``[L]``: the first token of each word (and every non-word token)."""
    previous = np.concatenate([[NO_WORD - 1], word[:-1]])
    return (word != previous) | (word == NO_WORD)


def mixed_example(teacher_pieces: Sequence[np.ndarray], student_pieces: Sequence[np.ndarray], spec: MixSpec,
                  teacher, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One stage-I sequence: words tokenised by either vocabulary, teacher-vocabulary MLM targets.

    Args:
      teacher_pieces, student_pieces: ``[W]`` lists, each word's ids in the two vocabularies.
      spec: options (``p_mix``, masking, L).
      teacher: the teacher's tokenizer (special ids, vocabulary size for random replacements).
      rng: the example's random generator.

    Returns:
      ``input_ids`` int32 [L] (an id of the vocabulary ``student_token`` names), ``student_token`` int32 [L]
      (1 where the id is a student piece), ``attention_mask`` and ``word_index`` int32 [L] (-1 outside
      words), ``masked_positions``, ``masked_ids`` (teacher ids) int32 [P], ``masked_weights`` float32 [P].
    """
    use_student = rng.random(len(teacher_pieces)) < spec.p_mix
    chosen = [s if flag else t for t, s, flag in zip(teacher_pieces, student_pieces, use_student)]
    count = _fit([np.asarray([len(p) for p in chosen], np.int64)], spec.max_seq_length - 2)
    ids, mask, word = _pack(chosen[:count], teacher, spec.max_seq_length)
    student_token = np.zeros(spec.max_seq_length, np.int32)
    in_word = word != NO_WORD
    student_token[in_word] = use_student[word[in_word]]
    # Only teacher-tokenised words are masked, so every target is the teacher's piece at its own position.
    candidates = in_word & (student_token == 0) & (ids >= teacher.num_special)
    masked, positions, labels, weights = mask_sequence(ids, candidates, _starts(word), spec.masking(),
                                                       teacher.vocab_size, teacher.num_special, teacher.mask_id, rng)
    return {"input_ids": masked, "student_token": student_token, "attention_mask": mask, "word_index": word,
            "masked_positions": positions, "masked_ids": labels, "masked_weights": weights}


def aligned_example(teacher_pieces: Sequence[np.ndarray], student_pieces: Sequence[np.ndarray], spec: MixSpec,
                    teacher, student, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One stage-II pair: the same leading words in both vocabularies, the student's sequence masked.

    Returns:
      ``input_ids``, ``attention_mask``, ``word_index`` int32 [L] (the student's, masked),
      ``masked_positions``, ``masked_ids`` (student ids) int32 [P], ``masked_weights`` float32 [P],
      ``teacher_input_ids``, ``teacher_attention_mask``, ``teacher_word_index`` int32 [L] (unmasked).
      Word ``w`` is the same text in both sequences.
    """
    lengths = [np.asarray([len(p) for p in pieces], np.int64) for pieces in (teacher_pieces, student_pieces)]
    count = _fit(lengths, spec.max_seq_length - 2)
    t_ids, t_mask, t_word = _pack(teacher_pieces[:count], teacher, spec.max_seq_length)
    s_ids, s_mask, s_word = _pack(student_pieces[:count], student, spec.max_seq_length)
    candidates = (s_word != NO_WORD) & (s_ids >= student.num_special)
    masked, positions, labels, weights = mask_sequence(s_ids, candidates, _starts(s_word), spec.masking(),
                                                       student.vocab_size, student.num_special, student.mask_id, rng)
    return {"input_ids": masked, "attention_mask": s_mask, "word_index": s_word, "masked_positions": positions,
            "masked_ids": labels, "masked_weights": weights, "teacher_input_ids": t_ids,
            "teacher_attention_mask": t_mask, "teacher_word_index": t_word}


def _batch(texts: Sequence[str], seeds: Sequence[int], seed: int, build) -> dict[str, np.ndarray]:
    examples = [build(words_of(text), np.random.default_rng([int(seed), int(s)])) for text, s in zip(texts, seeds)]
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def mixed_batch(texts: Sequence[str], seeds: Sequence[int], spec: MixSpec, teacher, student,
                seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`mixed_example` of each text (a pure function of the text, its seed and ``seed``): ``[B, ...]``."""
    def build(words: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return mixed_example(word_pieces(teacher, words), word_pieces(student, words), spec, teacher, rng)

    return _batch(texts, seeds, seed, build)


def aligned_batch(texts: Sequence[str], seeds: Sequence[int], spec: MixSpec, teacher, student,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`aligned_example` of each text: ``[B, ...]``."""
    def build(words: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return aligned_example(word_pieces(teacher, words), word_pieces(student, words), spec, teacher, student, rng)

    return _batch(texts, seeds, seed, build)
