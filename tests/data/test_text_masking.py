"""ALBERT example construction: n-gram masking statistics, pairs, truncation, packing.

References for the checks: the closed forms p(n) = (1/n) / sum_k 1/k and the
80/10/10 split (Lan et al., ALBERT, sec. 4.1; Devlin et al., BERT, sec. 3.1),
and a slow pure-Python re-implementation of the masking procedure written
from the paper's description (different code, different random generator),
compared by distribution.
"""

import random

import numpy as np
import pytest

from jaxcompress.data.text.pretraining import (
    PretrainingSpec,
    choose_ngrams,
    fit_pair,
    mask_sequence,
    ngram_probabilities,
    num_to_predict,
    pack_pair,
    pretraining_batch,
    segment_pair,
    word_spans,
)
from jaxcompress.errors import ConfigError

VOCAB, SPECIAL, MASK_ID = 1000, 5, 4


def _random_words(rng: np.random.Generator, num_words: int, max_pieces: int = 3) -> list[tuple[int, int]]:
    """Contiguous words of 1..max_pieces tokens starting at position 1 (after [CLS])."""
    sizes = rng.integers(1, max_pieces + 1, num_words)
    ends = 1 + np.cumsum(sizes)
    return [(int(e - s), int(e)) for s, e in zip(sizes, ends)]


def _reference_spans(words, budget, max_ngram, rnd: random.Random):
    """Slow reference of ALBERT's n-gram masking, from the paper's description."""
    def contiguous(i, n):
        return i + n <= len(words) and all(words[j][1] == words[j + 1][0] for j in range(i, i + n - 1))

    def size(i, n):
        return words[i + n - 1][1] - words[i][0]

    starts = list(range(len(words)))
    rnd.shuffle(starts)
    taken, used, spans = set(), 0, []
    for i in starts:
        if used >= budget:
            break
        if i in taken:
            continue
        options = [n for n in range(1, max_ngram + 1) if contiguous(i, n)]
        n = rnd.choices(options, weights=[1.0 / k for k in options])[0]
        while n > 1 and used + size(i, n) > budget:
            n -= 1
        if used + size(i, n) > budget or any(j in taken for j in range(i, i + n)):
            continue
        taken.update(range(i, i + n))
        used += size(i, n)
        spans.append(n)
    return spans


def test_ngram_probabilities_closed_form():
    np.testing.assert_allclose(ngram_probabilities(3), [6 / 11, 3 / 11, 2 / 11])
    np.testing.assert_allclose(ngram_probabilities(1), [1.0])


def test_span_lengths_follow_one_over_n_when_spans_rarely_collide():
    # 20,000 one-token words and a budget of 60 tokens: overlaps are rare (0.3 %
    # of words covered), and only the last n-gram of a sequence can be
    # shortened to fit the budget, so without it the lengths must follow the
    # closed form p(n) = (1/n) / H_3 = (6/11, 3/11, 2/11).
    rng = np.random.default_rng(0)
    words = np.stack([np.arange(20000), np.arange(1, 20001)], axis=1)
    lengths = [n for _ in range(400) for _, n in choose_ngrams(words, 60, 3, rng)[:-1]]
    counts = np.bincount(lengths, minlength=4)[1:]
    expected = ngram_probabilities(3)
    se = np.sqrt(expected * (1 - expected) / counts.sum())
    assert counts.sum() > 12000
    assert np.all(np.abs(counts / counts.sum() - expected) < 4 * se), (counts / counts.sum(), expected)


def test_span_lengths_match_the_slow_reference_at_albert_settings():
    # 128-token sequences of multi-piece words at 15 % with max 20 predictions:
    # budget cuts and overlaps shift the lengths away from 1/n, identically in both.
    rng = np.random.default_rng(1)
    rnd = random.Random(1)
    ours, ref = np.zeros(4), np.zeros(4)
    for _ in range(1500):
        words = _random_words(rng, int(rng.integers(20, 60)))
        budget = num_to_predict(words[-1][1] - 1, 0.15, 20)
        for _, n in choose_ngrams(words, budget, 3, rng):
            ours[n] += 1
        for n in _reference_spans(words, budget, 3, rnd):
            ref[n] += 1
    p, q = ours[1:] / ours.sum(), ref[1:] / ref.sum()
    se = np.sqrt(p * (1 - p) / ours.sum() + q * (1 - q) / ref.sum())
    assert np.all(np.abs(p - q) < 4 * se + 1e-3), (p, q)
    assert p[0] > 6 / 11  # shortening at the budget favours unigrams


def test_masked_token_count_meets_the_budget_and_rate():
    rng = np.random.default_rng(2)
    spec = PretrainingSpec(max_predictions=20)
    rates = []
    for _ in range(300):
        n_tokens = int(rng.integers(10, 126))
        ids = np.concatenate([[2], rng.integers(SPECIAL, VOCAB, n_tokens), [3]]).astype(np.int32)
        candidates = ids >= SPECIAL
        starts = np.ones_like(candidates)  # one-token words: the budget is always reachable
        _, positions, labels, weights = mask_sequence(ids, candidates, starts, spec, VOCAB, SPECIAL, MASK_ID, rng)
        count = int(weights.sum())
        assert count == num_to_predict(n_tokens, 0.15, 20) == min(20, max(1, int(np.floor(0.15 * n_tokens + 0.5))))
        assert np.all(candidates[positions[:count]]) and np.all(np.diff(positions[:count]) > 0)
        np.testing.assert_array_equal(labels[:count], ids[positions[:count]])
        rates.append(count / n_tokens)
    # Rounding to whole tokens (and the floor of one) keeps the rate near 15 %, never far.
    assert abs(np.mean(rates) - 0.15) < 0.01


def test_replacements_are_80_10_10_and_whole_words():
    rng = np.random.default_rng(3)
    spec = PretrainingSpec(max_predictions=64)
    outcome = np.zeros(3)  # [MASK], random, kept
    for _ in range(400):
        words = _random_words(rng, 100)
        length = words[-1][1] + 1
        ids = np.concatenate([[2], rng.integers(SPECIAL, VOCAB, length - 2), [3]]).astype(np.int32)
        starts = np.zeros(length, bool)
        starts[[w[0] for w in words]] = True
        candidates = ids >= SPECIAL
        masked, positions, labels, weights = mask_sequence(ids, candidates, starts, spec, VOCAB, SPECIAL,
                                                           MASK_ID, rng)
        chosen = set(positions[weights > 0].tolist())
        for start, end in words:  # a word is masked entirely or not at all
            inside = [p in chosen for p in range(start, end)]
            assert all(inside) or not any(inside)
        for p in chosen:
            outcome[0 if masked[p] == MASK_ID else (2 if masked[p] == ids[p] else 1)] += 1
        untouched = np.setdiff1d(np.arange(length), list(chosen))
        np.testing.assert_array_equal(masked[untouched], ids[untouched])
    freq = outcome / outcome.sum()
    expected = np.array([0.8, 0.1 * (1 - 1 / (VOCAB - SPECIAL)), 0.1 + 0.1 / (VOCAB - SPECIAL)])
    se = np.sqrt(expected * (1 - expected) / outcome.sum())
    assert np.all(np.abs(freq - expected) < 4 * se), (freq, expected)


def test_ngrams_never_cross_a_separator():
    candidates = np.array([0, 1, 1, 0, 1, 1, 0], bool)  # [CLS] a b [SEP] c d [SEP]
    words = word_spans(candidates, np.ones(7, bool))
    assert words == [(1, 2), (2, 3), (4, 5), (5, 6)]
    rng = np.random.default_rng(4)
    for _ in range(300):
        for w, n in choose_ngrams(words, 4, 3, rng):
            assert not (w <= 1 and w + n - 1 >= 2)  # words 1 and 2 lie on either side of [SEP]


def test_fit_pair_matches_berts_one_token_at_a_time_loop():
    def slow(a, b, m):
        while a + b > m:
            if a > b:
                a -= 1
            else:
                b -= 1
        return a, b

    for a in range(0, 40):
        for b in range(0, 40):
            for m in (1, 7, 20, 33, 80):
                assert fit_pair(a, b, m) == slow(a, b, m), (a, b, m)


def test_pack_pair_layout():
    ids, types, mask = pack_pair(np.array([10, 11]), np.array([12]), 8, cls_id=2, sep_id=3, pad_id=0)
    np.testing.assert_array_equal(ids, [2, 10, 11, 3, 12, 3, 0, 0])
    np.testing.assert_array_equal(types, [0, 0, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="max_seq_length"):
        pack_pair(np.arange(5), np.arange(5), 8, 2, 3, 0)


def test_sop_swaps_half_the_time_and_keeps_segments_consecutive():
    sentences = [np.arange(10 * k, 10 * k + 5, dtype=np.int32) for k in range(1, 5)]
    whole = np.concatenate(sentences)
    other = np.array([999, 998], np.int32)
    rng = np.random.default_rng(5)
    labels = []
    for _ in range(2000):
        a, b, label = segment_pair(sentences, other, PretrainingSpec(objective="sop"), rng)
        np.testing.assert_array_equal(np.concatenate([b, a] if label else [a, b]), whole)
        assert len(a) and len(b)
        labels.append(label)
    assert abs(np.mean(labels) - 0.5) < 4 * np.sqrt(0.25 / 2000)
    for _ in range(200):  # NSP: label 1 takes B from the other document
        a, b, label = segment_pair(sentences, other, PretrainingSpec(objective="nsp"), rng)
        if label:
            np.testing.assert_array_equal(b, other)
        else:
            np.testing.assert_array_equal(np.concatenate([a, b]), whole)


def test_single_sentence_blocks_split_or_take_another_document():
    one = [np.arange(10, 20, dtype=np.int32)]
    other = np.array([999], np.int32)
    rng = np.random.default_rng(6)
    a, b, _ = segment_pair(one, other, PretrainingSpec(objective="none"), rng)
    np.testing.assert_array_equal(np.concatenate([a, b]), one[0])
    a, b, label = segment_pair(one, other, PretrainingSpec(single_segment="random_doc"), rng)
    np.testing.assert_array_equal(b, other)
    assert label == 1


def test_bad_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="objective"):
        PretrainingSpec(objective="mlm")
    with pytest.raises(ConfigError, match="single_segment"):
        PretrainingSpec(single_segment="skip")


class _Words:
    """A stand-in tokenizer with a known vocabulary: one id per whitespace word."""

    pad_id, unk_id, cls_id, sep_id, mask_id, num_special, vocab_size = 0, 1, 2, 3, 4, 5, 100

    def encode(self, texts):
        return [np.array([SPECIAL + (hash(w) % 95) for w in t.split()], np.int32) for t in texts]

    def starts_word(self, ids):
        return np.ones(np.shape(ids), bool)


def test_batches_are_a_pure_function_of_records_and_seed():
    texts = ["one two three.\nfour five six seven.\neight nine ten", "alpha beta gamma delta"] * 4
    others = ["x y z"] * 8
    seeds = np.arange(8) * 7919
    spec = PretrainingSpec(max_seq_length=16, max_predictions=4)
    first = pretraining_batch(texts, others, seeds, spec, _Words(), seed=0)
    again = pretraining_batch(texts, others, seeds, spec, _Words(), seed=0)
    other_seed = pretraining_batch(texts, others, seeds, spec, _Words(), seed=1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert first["input_ids"].shape == (8, 16) and first["masked_positions"].shape == (8, 4)
    assert any(not np.array_equal(first[k], other_seed[k]) for k in ("masked_positions", "sentence_label"))
