"""Mixed and aligned tokenisation for mixed-vocabulary distillation, and the student vocabulary's coverage check."""

import numpy as np
import pytest

from jaxcompress.data.text import mixed_vocab as MV
from jaxcompress.data.text.pretraining import pack_pair
from jaxcompress.data.text.records import read_documents
from jaxcompress.data.text.segment import sentences
from jaxcompress.data.text.tokenizer import corpus_tokenizer, train_tokenizer
from jaxcompress.errors import ConfigError, DataError

TEXT = ("Return a new sorted list from the items in iterable. A custom key function can be supplied to "
        "customize the sort order, and the reverse flag can be set to request the result in descending order.")


@pytest.fixture(scope="module")
def teacher():
    return corpus_tokenizer(vocab_size=8000)


@pytest.fixture(scope="module")
def student():
    return corpus_tokenizer(vocab_size=1000)


def _words_and_runs(example, spec_length):
    """Slow loop: the token runs of each word index, in order."""
    runs: dict[int, list[int]] = {}
    for position in range(spec_length):
        w = int(example["word_index"][position])
        if w >= 0:
            runs.setdefault(w, []).append(position)
    return runs


def test_mixed_tokenisation_keeps_word_boundaries_and_aligns_targets(teacher, student):
    words = MV.words_of(TEXT)
    t_pieces, s_pieces = MV.word_pieces(teacher, words), MV.word_pieces(student, words)
    spec = MV.MixSpec(max_seq_length=48, p_mix=0.5, masked_lm_prob=0.3, max_predictions=12)
    example = MV.mixed_example(t_pieces, s_pieces, spec, teacher, np.random.default_rng(3))
    ids = example["input_ids"].copy()
    weights = example["masked_weights"] > 0
    positions, labels = example["masked_positions"][weights], example["masked_ids"][weights]
    assert len(positions) > 0
    ids[positions] = labels  # undo the masking: the targets must restore the teacher's pieces in place
    runs = _words_and_runs(example, spec.max_seq_length)
    assert sorted(runs) == list(range(len(runs))) and 5 < len(runs) < len(words)  # truncated to whole words
    seen_student = seen_teacher = False
    for w, run in runs.items():
        assert run == list(range(run[0], run[-1] + 1))  # contiguous
        flags = set(example["student_token"][run].tolist())
        assert len(flags) == 1  # one vocabulary per word
        expected = s_pieces[w] if flags == {1} else t_pieces[w]
        np.testing.assert_array_equal(ids[run], expected)
        masked = np.isin(run, positions)
        assert masked.all() or not masked.any()  # whole words are masked
        if masked.any():
            assert flags == {0}  # targets are always teacher pieces at their own positions
        seen_student |= flags == {1}
        seen_teacher |= flags == {0}
    assert seen_student and seen_teacher
    assert ids[0] == teacher.cls_id and ids[example["attention_mask"].sum() - 1] == teacher.sep_id
    assert not example["student_token"][example["word_index"] < 0].any()


def test_mixing_rate_zero_is_the_teachers_whole_text_encoding(teacher, student):
    words = MV.words_of(TEXT)
    spec = MV.MixSpec(max_seq_length=128, p_mix=0.0, masked_lm_prob=0.15, max_predictions=20)
    example = MV.mixed_example(MV.word_pieces(teacher, words), MV.word_pieces(student, words), spec, teacher,
                               np.random.default_rng(0))
    ids = example["input_ids"].copy()
    w = example["masked_weights"] > 0
    ids[example["masked_positions"][w]] = example["masked_ids"][w]
    # Encoding the text as a whole (not word by word) is the independent reference.
    reference, _, mask = pack_pair(teacher.encode([TEXT])[0], None, 128, teacher.cls_id, teacher.sep_id, teacher.pad_id)
    np.testing.assert_array_equal(ids, reference)
    np.testing.assert_array_equal(example["attention_mask"], mask)
    assert not example["student_token"].any()
    everything = MV.mixed_example(MV.word_pieces(teacher, words), MV.word_pieces(student, words),
                                  MV.MixSpec(max_seq_length=128, p_mix=1.0), teacher, np.random.default_rng(0))
    assert everything["student_token"][everything["word_index"] >= 0].all()
    assert everything["masked_weights"].sum() == 0  # nothing of the teacher's left to predict


def test_aligned_pair_tokenises_the_same_words(teacher, student):
    words = MV.words_of(TEXT)
    t_pieces, s_pieces = MV.word_pieces(teacher, words), MV.word_pieces(student, words)
    spec = MV.MixSpec(max_seq_length=32, masked_lm_prob=0.15, max_predictions=5)
    example = MV.aligned_example(t_pieces, s_pieces, spec, teacher, student, np.random.default_rng(1))
    t_runs = _words_and_runs({"word_index": example["teacher_word_index"]}, 32)
    s_runs = _words_and_runs(example, 32)
    assert sorted(t_runs) == sorted(s_runs) and len(t_runs) > 3
    # The next word would overflow one of the two sequences: both stop at the same word.
    count = len(t_runs)
    assert (sum(map(len, t_pieces[:count + 1])) > 30) or (sum(map(len, s_pieces[:count + 1])) > 30)
    ids = example["input_ids"].copy()
    w = example["masked_weights"] > 0
    ids[example["masked_positions"][w]] = example["masked_ids"][w]
    for word in t_runs:
        np.testing.assert_array_equal(example["teacher_input_ids"][t_runs[word]], t_pieces[word])
        np.testing.assert_array_equal(ids[s_runs[word]], s_pieces[word])
        assert teacher.decode(t_pieces[word]) == student.decode(s_pieces[word]) == words[word].lower()


def test_mixing_rate_outside_zero_one_is_refused():
    with pytest.raises(ConfigError, match="p_mix"):
        MV.MixSpec(p_mix=1.5)


def test_student_vocabulary_that_misses_corpus_characters_is_refused(teacher, student, tmp_path):
    characters = MV.corpus_characters(None)
    MV.check_coverage(student, teacher, characters)  # trained on the same corpus: accepted
    train = read_documents("pydocs", "train", None)
    text = [s for doc in train[:400] for s in sentences(doc["text"])]
    # A vocabulary trained on text without 'q', 'z' or digits cannot write them.
    stripped = [s.translate(str.maketrans("", "", "qQzZ0123456789")) for s in text]
    narrow = train_tokenizer(stripped, 300, tmp_path / "narrow.model")
    assert {"q", "z", "7"} <= set(MV.uncovered_characters(narrow, characters))
    with pytest.raises(DataError, match="does not cover") as error:
        MV.check_coverage(narrow, teacher, characters)
    missing = set(MV.uncovered_characters(narrow, characters)) - set(MV.uncovered_characters(teacher, characters))
    assert f"{len(missing)} character(s)" in str(error.value) and "narrow.model" in str(error.value)
