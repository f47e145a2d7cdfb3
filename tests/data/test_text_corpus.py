"""The embedded English corpus and its derived datasets: content, determinism, disjoint splits."""

import collections
import json
import os
import subprocess
import sys

import pytest

from jaxcompress import data
from jaxcompress.data.text import corpus
from jaxcompress.data.text.areas import AREAS, MODULE_AREAS, OTHER, area_of
from jaxcompress.data.text.records import read_documents
from jaxcompress.data.text.segment import make_blocks, paragraphs, sentences

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def documents():
    """``{split: records}`` of the prepared pydocs dataset (session data dir)."""
    return {split: read_documents("pydocs", split) for split in SPLITS}


def test_extraction_is_identical_in_two_fresh_interpreters():
    # -I ignores PYTHONHASHSEED, so each child has its own random string hashing.
    script = os.path.join(os.path.dirname(corpus.__file__), "_stdlib_docs.py")
    runs = [subprocess.run([sys.executable, "-I", "-S", script], capture_output=True, timeout=120, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1]
    payload = json.loads(runs[0])
    assert payload["python_version"] == corpus.python_tag()
    modules = set(payload["modules"])
    assert {"json", "re", "asyncio.tasks", "email.mime.text", "collections.abc"} <= modules
    # Side-effect and GUI modules and test suites are never imported.
    assert not modules & {"antigravity", "this", "tkinter", "turtle", "idlelib", "test"}
    assert not any(".test" in m or m.startswith("test.") for m in modules)


def test_corpus_content_and_metadata(documents):
    records = [r for split in SPLITS for r in documents[split]]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) > 1500
    kinds = collections.Counter(r["id"].split(":")[0] for r in records)
    assert kinds["topic"] == 79 or kinds["topic"] > 50  # pydoc_data topics (79 on 3.11)
    assert min(kinds[k] for k in ("module", "class", "function")) > 100
    texts = [r["text"] for r in records]
    assert len(texts) == len(set(texts))  # exact duplicates are kept once
    assert sum(map(len, texts)) > 1_000_000
    sub = next(r for r in records if r["id"] == "function:re.sub")
    assert "replacement" in sub["text"] and sub["module"] == "re"
    assert corpus.split_of("function:re.sub") in SPLITS
    info = data.load_split("pydocs", "train").info
    assert info.metadata["python_version"] == corpus.python_tag()
    assert info.features["area"].names[:len(AREAS)] == list(AREAS)
    # Every module of the corpus has a library area.
    assert {info.features["area"].names[r["area"]] for r in records} == set(AREAS)


def test_splits_are_disjoint_by_document_and_follow_the_hash(documents):
    seen = {}
    for split in SPLITS:
        for record in documents[split]:
            assert corpus.split_of(record["id"]) == split
            assert record["id"] not in seen
            seen[record["id"]] = split
    sizes = {split: len(documents[split]) for split in SPLITS}
    total = sum(sizes.values())
    assert 0.75 < sizes["train"] / total < 0.85 and 0.07 < sizes["test"] / total < 0.13


@pytest.mark.parametrize("name,field", [("pydocs_pretrain", "document"), ("pydocs_topic", "document"),
                                        ("pydocs_pair", "document")])
def test_derived_datasets_keep_each_document_in_its_split(documents, name, field):
    for split in SPLITS:
        allowed = {r["id"] for r in documents[split]}
        records = read_documents(name, split)
        assert records and {r[field] for r in records} <= allowed


def test_pretraining_blocks_are_consecutive_sentences_and_dupes_differ(documents):
    train = read_documents("pydocs_pretrain", "train")
    by_id = {r["id"]: r for r in documents["train"]}
    info = data.load_split("pydocs_pretrain", "train").info
    dupes = info.metadata["dupe_factor"]
    assert dupes > 1 and len(train) > dupes * len(documents["train"]) * 0.9
    assert len({r["seed"] for r in train}) == len(train)
    for record in train[:200]:
        block = record["text"].split("\n")
        document = sentences(by_id[record["document"]]["text"])
        assert any(document[i:i + len(block)] == block for i in range(len(document)))
        assert record["other"] and record["other"] not in by_id[record["document"]]["text"]
    # Cutting the same document again gives other block boundaries somewhere.
    per_doc = collections.defaultdict(set)
    for record in train:
        per_doc[record["document"]].add(record["text"])
    assert sum(len(v) > 1 for v in per_doc.values()) > 100


def test_topic_and_pair_labels(documents):
    topic = read_documents("pydocs_topic", "train")
    names = data.load_split("pydocs_topic", "train").info.features["label"].names
    assert names == list(AREAS)
    counts = collections.Counter(r["label"] for r in topic)
    assert len(counts) == len(AREAS) and min(counts.values()) > 30
    assert all(names[r["label"]] == area_of(r["module"]) for r in topic)
    pair = read_documents("pydocs_pair", "train")
    rate = sum(r["label"] for r in pair) / len(pair)
    assert 0.45 < rate < 0.55
    records = {r["id"]: r for split in SPLITS for r in documents[split]}
    for record in pair[:400]:
        own = " ".join(sentences(records[record["document"]]["text"]))
        assert record["first"] in own
        # Positives continue the same passage; negatives come from another document.
        assert (own.find(record["first"] + " " + record["second"]) >= 0) == bool(record["label"])


def test_area_lookup():
    assert area_of("email.mime.text") == "internet"
    assert area_of("os") == "system" and area_of("posixpath") == "files"
    assert area_of("pydoc_data.topics") == "language_reference"
    assert area_of("no_such_module") == OTHER
    assert set(MODULE_AREAS.values()) == set(AREAS)


def test_sentence_splitting_and_blocks():
    text = "Title\n=====\n\nFirst sentence here. Second one,\nwrapped. e.g. not split.\n\n   code()  # x\n"
    assert paragraphs(text) == ["Title", "First sentence here. Second one, wrapped. e.g. not split.", "code() # x"]
    assert sentences(text) == ["Title", "First sentence here.", "Second one, wrapped. e.g. not split.", "code() # x"]
    assert all(len(s) <= 20 for s in sentences("word " * 50, max_chars=20))
    import numpy as np

    rng = np.random.default_rng(0)
    doc = [f"s{i} " * 5 for i in range(50)]
    blocks = make_blocks(doc, 60, rng, short_seq_prob=0.0)
    assert [s for b in blocks for s in b] == doc
    assert all(sum(len(s) + 1 for s in b) >= 60 for b in blocks[:-1])
