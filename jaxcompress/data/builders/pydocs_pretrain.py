"""``pydocs_pretrain``: blocks of consecutive sentences of the ``pydocs`` corpus, for MLM + SOP/NSP.

Each record is one pretraining instance before tokenization: a block of
consecutive sentences of one document (about 500 characters, i.e. about 120
tokens of the default 8k tokenizer, which fits ``max_seq_length=128``; with
probability 0.1 a shorter block), a segment of another document of the same
split (the NSP negative), and a per-record seed. The model-side work
(tokenizing, the SOP swap or NSP replacement, truncation, n-gram masking) is
done on the host by the ``mlm_sop`` task from that seed, so the examples do not
depend on when they are read and changing the tokenizer or the masking needs
no rebuild.

As in ALBERT's data builder (``dupe_factor``), every train document is cut
into blocks several times (:data:`DUPE_FACTOR`) with different block
boundaries and seeds, which gives different masks of the same text; the
validation and test splits are cut once.

Records: ``text`` (sentences joined by newlines), ``other``, ``seed`` (int64),
``document`` (the ``pydocs`` id) and ``area`` (ClassLabel). Splits follow
``pydocs`` (by document), so no train text appears in validation or test.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (sec. 4.1; google-research/albert
  create_pretraining_data.py describes dupe_factor and short_seq_prob).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.builders._pydocs_source import document_blocks, load_corpus, random_segment, stable_seed
from jaxcompress.data.builders.pydocs import AREA_NAMES
from jaxcompress.data.text.corpus import SPLIT_NAMES, python_tag

#: Characters per block: ~4.3 characters per token under the default tokenizer.
BLOCK_CHARS = 500
#: Probability of a shorter block (BERT/ALBERT's short_seq_prob).
SHORT_SEQ_PROB = 0.1
#: How many times each train document is cut into blocks (ALBERT uses 40 on Wikipedia + books).
DUPE_FACTOR = 5


class JaxcompressPydocsPretrain(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Pretraining blocks of the pydocs corpus (consecutive sentences + another document's segment)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: ~500-character blocks, dupe factor 5 on train."}
    url_infos = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                f"Blocks of about {BLOCK_CHARS} characters of consecutive sentences from the pydocs corpus "
                f"(Python {python_tag()} documentation), one sentence per line, with a segment of another "
                f"document and a seed for host-side masking. Train documents are cut {DUPE_FACTOR} times."),
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "other": tfds.features.Text(),
                "seed": tfds.features.Scalar(dtype=np.int64),
                "document": tfds.features.Text(),
                "area": tfds.features.ClassLabel(names=list(AREA_NAMES)),
            }),
            homepage="https://docs.python.org/3/library/",
            metadata=tfds.core.MetadataDict(python_version=python_tag(), block_chars=BLOCK_CHARS,
                                            dupe_factor=DUPE_FACTOR),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(name, DUPE_FACTOR if name == "train" else 1)
                for name in SPLIT_NAMES}

    def _generate_examples(self, split: str, dupes: int) -> Iterator[tuple[str, dict]]:
        documents = load_corpus(self, split)
        for dupe in range(dupes):
            rng = np.random.default_rng([stable_seed("pydocs_pretrain", split), dupe])
            for index, document in enumerate(documents):
                blocks = document_blocks(document, BLOCK_CHARS, rng, SHORT_SEQ_PROB)
                for block_index, block in enumerate(blocks):
                    key = f"{document['id']}/{dupe}/{block_index}"
                    yield key, {"text": "\n".join(block),
                                "other": random_segment(documents, index, BLOCK_CHARS // 2, rng),
                                "seed": stable_seed("pydocs_pretrain", key),
                                "document": document["id"], "area": document["area"]}
