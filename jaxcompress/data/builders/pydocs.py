"""The embedded English corpus ``pydocs``: Python's own documentation as a TFDS builder.

Documents: the ``pydoc_data`` topics (the Language Reference, about 465k
characters) and the docstrings of the standard library's modules, public
classes (class docstring followed by its methods') and public functions,
about 2,200 documents and 1.6M characters on CPython 3.11. They are extracted
offline by an isolated child interpreter (see
:mod:`jaxcompress.data.text.corpus`); the content depends on the Python
version, which the dataset records in its metadata (``python_version``) and
description.

Records: ``id`` (``topic:assert``, ``module:json``, ``class:re.Pattern``,
``function:math.sin``), ``text``, ``module``, ``kind`` (ClassLabel: topic,
module, class, function) and ``area`` (ClassLabel: the library area of the
module, see :mod:`jaxcompress.data.text.areas`).

Splits: by the BLAKE2b hash of the document id, 80 / 10 / 10 % of documents
(no RNG, so a document keeps its split across numpy versions); exact duplicate
texts are kept once.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020; the Python documentation (docs.python.org).
"""

from __future__ import annotations

from collections.abc import Iterator

import tensorflow_datasets as tfds

from jaxcompress.data.text.areas import AREAS, OTHER
from jaxcompress.data.text.corpus import KINDS, SPLIT_NAMES, Document, extract_documents, python_tag, split_of

#: ClassLabel names of the ``area`` feature: the topic areas, then ``other``.
AREA_NAMES = AREAS + (OTHER,)


def documents_by_split() -> dict[str, list[Document]]:
    """``{split: documents sorted by id}`` of this interpreter's documentation."""
    out: dict[str, list[Document]] = {name: [] for name in SPLIT_NAMES}
    for document in extract_documents():
        out[split_of(document.id)].append(document)
    return out


class JaxcompressPydocs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Python's documentation (pydoc topics and stdlib docstrings) as English documents (offline)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: topics and module/class/function docstrings, 80/10/10 by id hash."}
    url_infos = None  # Nothing is downloaded (see the digits builder).

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "English documents from the Python interpreter's own documentation: the pydoc_data "
                "topics and the docstrings of standard-library modules, classes and functions, "
                f"extracted offline from Python {python_tag()} (the content depends on the Python "
                "version). Split 80/10/10 by the hash of the document id."),
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "text": tfds.features.Text(),
                "module": tfds.features.Text(),
                "kind": tfds.features.ClassLabel(names=list(KINDS)),
                "area": tfds.features.ClassLabel(names=list(AREA_NAMES)),
            }),
            supervised_keys=("text", "area"),
            homepage="https://docs.python.org/3/library/",
            metadata=tfds.core.MetadataDict(python_version=python_tag()),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        return {name: self._generate_examples(documents) for name, documents in documents_by_split().items()}

    def _generate_examples(self, documents: list[Document]) -> Iterator[tuple[str, dict]]:
        for document in documents:
            yield document.id, {"id": document.id, "text": document.text, "module": document.module,
                                "kind": document.kind, "area": document.area}
