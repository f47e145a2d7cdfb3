"""``pydocs_pair``: do two passages come from the same document? (a sentence-pair task)

For every block (about 500 characters, at most :data:`MAX_PAIRS` per
document) with at least two sentences, ``first`` is the block's first part and
``second`` is either the rest of the same block (label ``same_document``) or
the second part of a block of another document **of the same library area**
(label ``different_document``), so the topic alone cannot tell the classes
apart. Labels are balanced by the hash of the block's key. Splits follow
``pydocs`` (by document).

Records: ``first``, ``second``, ``label`` (ClassLabel: different_document,
same_document) and ``document``.

References:
  Lan et al., "ALBERT", ICLR 2020 (sentence-pair fine-tuning, as QQP/MNLI in
  GLUE); Devlin et al., "BERT", NAACL 2019 (same-document pairs as in NSP).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.builders._pydocs_source import document_blocks, load_corpus, stable_seed
from jaxcompress.data.text.corpus import SPLIT_NAMES, python_tag

BLOCK_CHARS = 500
MAX_PAIRS = 4
LABELS = ("different_document", "same_document")


def _halves(block: list[str], rng: np.random.Generator) -> tuple[str, str]:
    cut = int(rng.integers(1, len(block)))
    return " ".join(block[:cut]), " ".join(block[cut:])


class JaxcompressPydocsPair(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Same-document vs different-document passage pairs from Python's documentation (offline)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: negatives from another document of the same area."}
    url_infos = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(f"Pairs of passages from the pydocs corpus (Python {python_tag()} documentation): "
                         "the continuation of the same block, or a passage of another document of the same "
                         "library area."),
            features=tfds.features.FeaturesDict({
                "first": tfds.features.Text(),
                "second": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(LABELS)),
                "document": tfds.features.Text(),
            }),
            homepage="https://docs.python.org/3/library/",
            metadata=tfds.core.MetadataDict(python_version=python_tag()),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(name) for name in SPLIT_NAMES}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        rng = np.random.default_rng(stable_seed("pydocs_pair", split))
        documents = load_corpus(self, split)
        # Blocks with at least two sentences, per document, and the documents of each area.
        blocks = [[b for b in document_blocks(d, BLOCK_CHARS, rng, 0.0) if len(b) >= 2][:MAX_PAIRS]
                  for d in documents]
        by_area: dict[int, list[int]] = defaultdict(list)
        for index, document in enumerate(documents):
            if blocks[index]:
                by_area[document["area"]].append(index)
        for index, document in enumerate(documents):
            peers = by_area[document["area"]] if len(by_area[document["area"]]) > 1 else \
                [i for members in by_area.values() for i in members]
            for block_index, block in enumerate(blocks[index]):
                key = f"{document['id']}/{block_index}"
                first, second = _halves(block, rng)
                same = stable_seed("pydocs_pair", key) % 2 == 1
                if not same:
                    other = index
                    while other == index:
                        other = peers[int(rng.integers(len(peers)))]
                    _, second = _halves(blocks[other][int(rng.integers(len(blocks[other])))], rng)
                yield key, {"first": first, "second": second, "label": LABELS[int(same)],
                            "document": document["id"]}
