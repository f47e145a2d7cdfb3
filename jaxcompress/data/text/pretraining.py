"""Host-side construction of ALBERT pretraining examples: segment pairs, packing, n-gram masking.

Everything here is NumPy and deterministic: an example is a pure function of
its record (block text, a segment of another document, a per-record seed) and
the options, so a batch is a pure function of ``(data seed, step)`` and a
resumed run sees exactly the examples it would have seen.

Pipeline for one record (:func:`pretraining_example`):

1. tokenize the block's sentences; cut them into two consecutive segments A, B
   at a random sentence boundary (a one-sentence block is cut inside, or takes
   B from another document: ``single_segment``);
2. the sentence-level objective: ``sop`` swaps A and B with probability 1/2
   (label 1 = swapped), ``nsp`` replaces B by a segment of another document
   with probability 1/2 (label 1 = random), ``none`` keeps the order (label 0);
3. truncate the pair to ``max_seq_length - 3`` tokens and pack
   ``[CLS] A [SEP] B [SEP]`` with segment ids 0/1 and padding;
4. n-gram masking over whole words: ``round(masked_lm_prob * n)`` of the n
   ordinary tokens (at most ``max_predictions``) are predicted; spans of n <= 3
   consecutive whole words are drawn with p(n) proportional to 1/n; each chosen
   token becomes [MASK] (80 %), a random ordinary token (10 %) or stays (10 %).

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020, sec. 3.1 (SOP) and 4.1 (n-gram masking,
  p(n) = (1/n) / sum_k 1/k, n <= 3); Devlin et al., "BERT", NAACL 2019, sec.
  3.1 (80/10/10 replacement, NSP); Joshi et al., "SpanBERT", TACL 2020
  (span masking).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxcompress.errors import ConfigError

OBJECTIVES = ("sop", "nsp", "none")
SINGLE_SEGMENT = ("split", "random_doc")


@dataclasses.dataclass(frozen=True)
class PretrainingSpec:
    """Options of example construction (mirrors the ``text`` config group)."""

    max_seq_length: int = 128
    objective: str = "sop"
    masked_lm_prob: float = 0.15
    max_predictions: int = 20
    max_ngram: int = 3
    mask_prob: float = 0.8
    random_prob: float = 0.1
    single_segment: str = "split"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.single_segment not in SINGLE_SEGMENT:
            raise ConfigError(f"single_segment must be one of {', '.join(SINGLE_SEGMENT)}, "
                              f"got {self.single_segment!r}")
        if self.max_seq_length < 5:
            raise ConfigError(f"max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP]), got {self.max_seq_length}")
        if not 0.0 <= self.mask_prob + self.random_prob <= 1.0 or min(self.mask_prob, self.random_prob) < 0:
            raise ConfigError(f"mask_prob + random_prob must lie in [0, 1], got {self.mask_prob} + {self.random_prob}")


def ngram_probabilities(max_ngram: int) -> np.ndarray:
    """float64 ``[max_ngram]``: p(n) = (1/n) / sum_{k<=max_ngram} 1/k for n = 1..max_ngram.

    For ``max_ngram=3``: (6/11, 3/11, 2/11).
    """
    weights = 1.0 / np.arange(1, max_ngram + 1)
    return weights / weights.sum()


def num_to_predict(num_candidates: int, masked_lm_prob: float, max_predictions: int) -> int:
    """How many tokens of a sequence with ``num_candidates`` ordinary tokens are predicted.

    ``min(max_predictions, max(1, floor(masked_lm_prob * n + 0.5)))``, and 0 when n = 0.
    """
    if num_candidates == 0:
        return 0
    return min(max_predictions, max(1, int(np.floor(masked_lm_prob * num_candidates + 0.5))))


def word_spans(candidates: np.ndarray, starts_word: np.ndarray) -> list[tuple[int, int]]:
    """Whole words of a packed sequence as ``[start, end)`` token ranges.

    Args:
      candidates: bool [L], True for ordinary tokens (not [CLS]/[SEP]/[PAD]).
      starts_word: bool [L], True where a piece begins a new word.

    Returns:
      The words in order; a word never crosses a special token.
    """
    spans: list[tuple[int, int]] = []
    start = -1
    for i in range(len(candidates)):
        if not candidates[i]:
            if start >= 0:
                spans.append((start, i))
                start = -1
        elif start < 0:
            start = i
        elif starts_word[i]:
            spans.append((start, i))
            start = i
    if start >= 0:
        spans.append((start, len(candidates)))
    return spans


def choose_ngrams(words: Sequence[tuple[int, int]], budget: int, max_ngram: int,
                  rng: np.random.Generator) -> list[tuple[int, int]]:
    """Picks non-overlapping n-grams of whole words covering at most ``budget`` tokens.

    Word starts are visited in a random order. At each uncovered start w, n is
    drawn from p(n) proportional to 1/n over the n-grams available there (n <=
    ``max_ngram``, consecutive words only: an n-gram never crosses a special
    token). If the n-gram would exceed the budget it is shortened; if even one
    word does not fit, or it overlaps a chosen n-gram, w is skipped. Stops once
    the budget is met.

    Args:
      words: ``[start, end)`` token ranges of the words, in order (a list of
        pairs or an int array [W, 2]).
      budget: the number of tokens to predict.
      max_ngram: the largest n.
      rng: the random generator.

    Returns:
      The chosen n-grams as ``(first word index, n)``, in the order chosen.
    """
    if budget <= 0 or len(words) == 0:
        return []
    probs = ngram_probabilities(max_ngram)
    count = len(words)
    bounds = np.asarray(words, np.int64).reshape(count, 2)
    # touches[w]: word w+1 starts where word w ends (no special token between).
    touches = np.append(bounds[1:, 0] == bounds[:-1, 1], False)
    # run[w] = n-grams available at w: 1 + the number of consecutive touches from w, capped.
    run = np.ones(count, np.int64)
    chain = np.ones(count, bool)
    for k in range(max_ngram - 1):
        chain &= np.append(touches[k:], np.zeros(k, bool))
        run += chain
    covered = np.zeros(count, bool)
    chosen: list[tuple[int, int]] = []
    used = 0
    for w in rng.permutation(count):
        if used >= budget:
            break
        if covered[w]:
            continue
        available = int(run[w])
        n = 1 + int(rng.choice(available, p=probs[:available] / probs[:available].sum()))
        while n > 1 and used + words[w + n - 1][1] - words[w][0] > budget:
            n -= 1
        size = words[w + n - 1][1] - words[w][0]
        if used + size > budget or covered[w:w + n].any():
            continue
        covered[w:w + n] = True
        chosen.append((int(w), n))
        used += size
    return chosen


def mask_sequence(ids: np.ndarray, candidates: np.ndarray, starts_word: np.ndarray, spec: PretrainingSpec,
                  vocab_size: int, num_special: int, mask_id: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ALBERT n-gram masking of one packed sequence.

    Args:
      ids: int [L] packed token ids.
      candidates: bool [L], ordinary tokens (maskable).
      starts_word: bool [L], word beginnings.
      spec: masking options.
      vocab_size, num_special, mask_id: tokenizer facts; random replacements
        are drawn uniformly from ``[num_special, vocab_size)``.
      rng: the random generator.

    Returns:
      ``(masked ids int32 [L], positions int32 [P], labels int32 [P], weights
      float32 [P])`` with P = ``spec.max_predictions``; positions are sorted,
      padded with 0 and weight 0.
    """
    words = word_spans(candidates, starts_word)
    budget = num_to_predict(int(candidates.sum()), spec.masked_lm_prob, spec.max_predictions)
    positions = np.sort(np.concatenate(
        [np.arange(words[w][0], words[w + n - 1][1]) for w, n in choose_ngrams(words, budget, spec.max_ngram, rng)]
        or [np.zeros(0, np.int64)])).astype(np.int32)
    masked = np.asarray(ids, np.int32).copy()
    draw = rng.random(len(positions))
    replace = rng.integers(num_special, vocab_size, len(positions))
    masked[positions[draw < spec.mask_prob]] = mask_id
    random_slot = (draw >= spec.mask_prob) & (draw < spec.mask_prob + spec.random_prob)
    masked[positions[random_slot]] = replace[random_slot]
    size = spec.max_predictions
    out_positions = np.zeros(size, np.int32)
    out_labels = np.zeros(size, np.int32)
    out_weights = np.zeros(size, np.float32)
    out_positions[:len(positions)] = positions
    out_labels[:len(positions)] = ids[positions]
    out_weights[:len(positions)] = 1.0
    return masked, out_positions, out_labels, out_weights


def fit_pair(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """Lengths after trimming a pair to ``max_tokens``: the longer side loses tokens first.

    Equivalent to BERT's loop "remove one token from the longer segment until
    the pair fits" (ties trim B), in closed form.
    """
    if len_a + len_b <= max_tokens:
        return len_a, len_b
    short = min(len_a, len_b)
    if short <= max_tokens // 2:
        return (max_tokens - len_b, len_b) if len_a > len_b else (len_a, max_tokens - len_a)
    return (max_tokens + 1) // 2, max_tokens // 2


def trim(segment: np.ndarray, length: int, from_front: bool) -> np.ndarray:
    """Keeps ``length`` tokens of ``segment``, dropping from the front or the back."""
    if len(segment) <= length:
        return segment
    return segment[len(segment) - length:] if from_front else segment[:length]


def pack_pair(a: np.ndarray, b: np.ndarray | None, max_seq_length: int, cls_id: int, sep_id: int,
              pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[CLS] A [SEP] (B [SEP])`` padded to L = ``max_seq_length``.

    A and B must already fit (``len(A) + len(B) + 3 <= L``).

    Returns:
      ``(input_ids int32 [L], token_type_ids int32 [L], attention_mask int32 [L])``;
      type 0 covers [CLS], A and the first [SEP], type 1 covers B and its [SEP].
    """
    parts = [np.asarray([cls_id], np.int32), np.asarray(a, np.int32), np.asarray([sep_id], np.int32)]
    types = [np.zeros(len(a) + 2, np.int32)]
    if b is not None:
        parts += [np.asarray(b, np.int32), np.asarray([sep_id], np.int32)]
        types.append(np.ones(len(b) + 1, np.int32))
    ids = np.concatenate(parts)
    if len(ids) > max_seq_length:
        raise ValueError(f"packed pair has {len(ids)} tokens, more than max_seq_length={max_seq_length}")
    length = len(ids)
    out_ids = np.full(max_seq_length, pad_id, np.int32)
    out_types = np.zeros(max_seq_length, np.int32)
    out_mask = np.zeros(max_seq_length, np.int32)
    out_ids[:length] = ids
    out_types[:length] = np.concatenate(types)
    out_mask[:length] = 1
    return out_ids, out_types, out_mask


def segment_pair(sentences: Sequence[np.ndarray], other: np.ndarray, spec: PretrainingSpec,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Two segments and the sentence-level label for one block (steps 1-2 of the module docstring).

    Args:
      sentences: token ids of the block's consecutive sentences (at least one non-empty).
      other: token ids of a segment of another document.
      spec: options (``objective``, ``single_segment``).
      rng: the random generator.

    Returns:
      ``(A, B, label)``: label 1 when SOP swapped the segments or NSP took B
      from the other document, else 0.
    """
    sentences = [s for s in sentences if len(s)]
    label = 0
    if len(sentences) >= 2:
        cut = int(rng.integers(1, len(sentences)))
        a, b = np.concatenate(sentences[:cut]), np.concatenate(sentences[cut:])
    else:
        tokens = sentences[0] if sentences else np.zeros(0, np.int32)
        if spec.single_segment == "random_doc" or len(tokens) < 2:
            # ALBERT's released data builder does this (an NSP-like negative inside SOP).
            return tokens, np.asarray(other, np.int32), 1
        cut = int(rng.integers(1, len(tokens)))
        a, b = tokens[:cut], tokens[cut:]
    if spec.objective == "sop":
        if rng.random() < 0.5:
            a, b, label = b, a, 1
    elif spec.objective == "nsp":
        if rng.random() < 0.5:
            b, label = np.asarray(other, np.int32), 1
    return a, b, label


def pretraining_example(sentences: Sequence[np.ndarray], other: np.ndarray, spec: PretrainingSpec,
                        tokenizer, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One packed, masked example from a block's tokenized sentences.

    Args:
      sentences: token ids of the block's sentences, in order.
      other: token ids of a segment of another document (NSP negatives).
      spec: options.
      tokenizer: a :class:`~jaxcompress.data.text.tokenizer.Tokenizer` (special
        ids, vocabulary size, word starts).
      rng: the example's random generator.

    Returns:
      ``input_ids``, ``token_type_ids``, ``attention_mask`` (int32 [L]),
      ``masked_positions``, ``masked_ids`` (int32 [P]), ``masked_weights``
      (float32 [P]) and ``sentence_label`` (int32 scalar).
    """
    a, b, label = segment_pair(sentences, other, spec, rng)
    len_a, len_b = fit_pair(len(a), len(b), spec.max_seq_length - 3)
    a = trim(a, len_a, from_front=bool(rng.random() < 0.5))
    b = trim(b, len_b, from_front=bool(rng.random() < 0.5))
    ids, types, mask = pack_pair(a, b, spec.max_seq_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    candidates = ids >= tokenizer.num_special
    candidates &= mask.astype(bool)
    masked, positions, labels, weights = mask_sequence(
        ids, candidates, tokenizer.starts_word(ids), spec, tokenizer.vocab_size, tokenizer.num_special,
        tokenizer.mask_id, rng)
    return {"input_ids": masked, "token_type_ids": types, "attention_mask": mask, "masked_positions": positions,
            "masked_ids": labels, "masked_weights": weights, "sentence_label": np.int32(label)}


def pretraining_batch(texts: Sequence[str], others: Sequence[str], seeds: Sequence[int], spec: PretrainingSpec,
                      tokenizer, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of examples from ``pydocs_pretrain``-style records.

    Args:
      texts: [B] blocks, one sentence per line.
      others: [B] segments of other documents.
      seeds: [B] per-record seeds (non-negative).
      spec: options.
      tokenizer: the tokenizer.
      seed: an extra seed mixed into every record's generator (``data.seed``),
        so a different seed gives different masks of the same records.

    Returns:
      The fields of :func:`pretraining_example`, stacked: ``[B, L]``, ``[B, P]``, ``[B]``.
    """
    lines = [text.split("\n") for text in texts]
    flat = tokenizer.encode([line for block in lines for line in block] + list(others))
    examples, offset = [], 0
    for i, block in enumerate(lines):
        sentences = flat[offset:offset + len(block)]
        offset += len(block)
        rng = np.random.default_rng([int(seed), int(seeds[i])])
        examples.append(pretraining_example(sentences, flat[-len(texts) + i], spec, tokenizer, rng))
    return {key: np.stack([example[key] for example in examples]) for key in examples[0]}
