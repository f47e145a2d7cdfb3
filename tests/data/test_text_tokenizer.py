"""The SentencePiece tokenizer of the embedded corpus: special ids, determinism, cache, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcompress.data.text.records import read_documents
from jaxcompress.data.text.segment import sentences
from jaxcompress.data.text.tokenizer import Tokenizer, corpus_tokenizer, train_tokenizer
from jaxcompress.errors import ConfigError, DataError

_TRAIN_IN_CHILD = """
import pathlib, sys
from jaxcompress.data.text.tokenizer import train_tokenizer
train_tokenizer(pathlib.Path(sys.argv[1]).read_text().split("\\n"), 8000, sys.argv[2])
"""


@pytest.fixture(scope="module")
def tokenizer():
    return corpus_tokenizer(vocab_size=8000)


def test_special_ids_and_round_trip(tokenizer):
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert tokenizer.pieces(range(5)) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 4000 < tokenizer.vocab_size <= 8000
    ids = tokenizer.encode(["Return the sine of x (measured in radians)."])[0]
    assert ids.dtype == np.int32 and ids.min() >= tokenizer.num_special
    assert tokenizer.decode(ids) == "return the sine of x (measured in radians)."  # lower-cased
    # Special-token strings in text are ordinary characters, never control ids.
    assert tokenizer.encode(["[MASK] [CLS]"])[0].min() >= tokenizer.num_special
    starts = tokenizer.starts_word(ids)
    assert starts[0] and starts.sum() >= 7  # return, the, sine, of, x, (, measured...


def test_held_out_text_is_covered(tokenizer):
    text = [s for d in read_documents("pydocs", "test") for s in sentences(d["text"])]
    ids = np.concatenate(tokenizer.encode(text))
    assert (ids == tokenizer.unk_id).mean() < 0.005
    chars_per_token = sum(map(len, text)) / len(ids)
    assert 3.0 < chars_per_token < 6.0


def test_training_is_reproducible_across_processes(tmp_path):
    # Two fresh interpreters train from scratch: the model files must be identical bytes.
    text = tmp_path / "train.txt"
    text.write_text("\n".join(s for d in read_documents("pydocs", "train") for s in sentences(d["text"])))
    paths = [tmp_path / f"run{i}.model" for i in range(2)]
    for path in paths:
        subprocess.run([sys.executable, "-c", _TRAIN_IN_CHILD, str(text), str(path)], check=True, timeout=120,
                       capture_output=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert Tokenizer(paths[0]).vocab_size > 4000


def test_the_cache_is_reused_and_keyed_by_options(tokenizer):
    mtime = os.stat(tokenizer.path).st_mtime_ns
    again = corpus_tokenizer(vocab_size=8000)
    assert again.path == tokenizer.path and os.stat(again.path).st_mtime_ns == mtime
    assert tokenizer.path.parent.name == "jaxcompress_tokenizers"
    cased = corpus_tokenizer(vocab_size=8000, lowercase=False)
    assert cased.path != tokenizer.path
    assert cased.decode(cased.encode(["Return X"])[0]) == "Return X"


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="vocab_size must be >= 256"):
        train_tokenizer(["a b c"], 10, tmp_path / "x.model")
    with pytest.raises(DataError, match="empty corpus"):
        train_tokenizer(["", "  "], 1000, tmp_path / "x.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a sentencepiece model")
    with pytest.raises(DataError, match="cannot load tokenizer model"):
        Tokenizer(garbage)
