"""``pydocs_topic``: which library area a passage of Python's documentation comes from (12 classes).

Passages are the first blocks (about 500 characters of consecutive sentences,
at most :data:`MAX_PASSAGES` per document) of every ``pydocs`` document whose
module has a library area (see :mod:`jaxcompress.data.text.areas`): text
processing, data types, numeric, files, storage, system, concurrency,
internet, developer tools, runtime, language services, and the Language
Reference topics. Splits follow ``pydocs`` (by document), so the documents
used to pretrain never appear in validation or test.

Records: ``text``, ``label`` (ClassLabel over the areas), ``document`` (the
``pydocs`` id) and ``module``. Supervised keys: ``(text, label)``.

References:
  Lan et al., "ALBERT", ICLR 2020 (fine-tuning a pretrained encoder on
  single-sentence classification, as SST-2 in GLUE); the Python Library
  Reference's chapters define the areas.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.builders._pydocs_source import document_blocks, load_corpus, stable_seed
from jaxcompress.data.builders.pydocs import AREA_NAMES
from jaxcompress.data.text.areas import AREAS, OTHER
from jaxcompress.data.text.corpus import SPLIT_NAMES, python_tag

PASSAGE_CHARS = 500
#: At most this many passages per document, so long documents do not swamp their class.
MAX_PASSAGES = 4


class JaxcompressPydocsTopic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Library-area classification of Python documentation passages (12 classes, offline)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: up to 4 passages of ~500 characters per document."}
    url_infos = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(f"Passages of about {PASSAGE_CHARS} characters from the pydocs corpus (Python "
                         f"{python_tag()} documentation) labelled with the library area of their module."),
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(AREAS)),
                "document": tfds.features.Text(),
                "module": tfds.features.Text(),
            }),
            supervised_keys=("text", "label"),
            homepage="https://docs.python.org/3/library/",
            metadata=tfds.core.MetadataDict(python_version=python_tag()),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(name) for name in SPLIT_NAMES}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        rng = np.random.default_rng(stable_seed("pydocs_topic", split))
        for document in load_corpus(self, split):
            area = AREA_NAMES[document["area"]]
            if area == OTHER:
                continue
            blocks = document_blocks(document, PASSAGE_CHARS, rng, short_seq_prob=0.0)
            for index, block in enumerate(blocks[:MAX_PASSAGES]):
                yield f"{document['id']}/{index}", {"text": " ".join(block), "label": area,
                                                    "document": document["id"], "module": document["module"]}

