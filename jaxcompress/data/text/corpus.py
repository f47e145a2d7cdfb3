"""The embedded English corpus: Python's own documentation, extracted offline.

Documents are the ``pydoc_data`` topics (the Language Reference) and the
docstrings of standard-library modules, public classes (with their methods)
and public functions. They are read by a child interpreter started with
``-I -S`` (see ``_stdlib_docs.py``), so site-packages, the current directory
and ``PYTHON*`` variables cannot change the result, and the imports' side
effects stay out of this process. The content depends on the Python version
(and on which optional C modules the build has); builders record
:func:`python_tag`.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (pretraining on a corpus of documents).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
import subprocess
import sys

from jaxcompress.data.text.areas import area_of
from jaxcompress.errors import DataError

#: Fractions of documents in each split, by the hash of their id.
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
SPLIT_NAMES = tuple(SPLIT_FRACTIONS)
KINDS = ("topic", "module", "class", "function")

_SCRIPT = pathlib.Path(__file__).with_name("_stdlib_docs.py")


@dataclasses.dataclass(frozen=True)
class Document:
    """One document: ``id`` such as ``function:re.sub``; ``module``; ``area``; ``kind``; ``text``."""

    id: str
    kind: str
    module: str
    area: str
    text: str


def python_tag() -> str:
    """``"3.11.7"``: the interpreter whose documentation the corpus holds."""
    return "%d.%d.%d" % sys.version_info[:3]


def split_of(document_id: str) -> str:
    """Assigns a document to a split by the BLAKE2b hash of its id (no RNG: stable across numpy versions).

    Returns:
      ``train`` (80 %), ``validation`` (10 %) or ``test`` (10 %).
    """
    digest = hashlib.blake2b(f"pydocs/{document_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS.items():
        edge += fraction
        if u < edge:
            return name
    return SPLIT_NAMES[-1]


@functools.lru_cache(maxsize=1)
def extract_documents(timeout_s: float = 300.0) -> tuple[Document, ...]:
    """Extracts every document of this interpreter's documentation, sorted by id.

    Exact duplicate texts (aliases such as ``posixpath.join`` documented twice)
    are kept once, under the smallest id, so a text cannot fall in two splits.

    Raises:
      DataError: if the child interpreter fails or times out.
    """
    try:
        result = subprocess.run([sys.executable, "-I", "-S", str(_SCRIPT)], capture_output=True,
                                timeout=timeout_s, stdin=subprocess.DEVNULL, cwd=_SCRIPT.parent)
    except subprocess.TimeoutExpired as error:
        raise DataError(f"extracting the standard-library documentation took more than {timeout_s:.0f} s") from error
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DataError(f"extracting the standard-library documentation failed ({tail[0]})")
    payload = json.loads(result.stdout.decode("utf-8"))
    seen: set[str] = set()
    documents = []
    for raw in payload["documents"]:  # Already sorted by id.
        if raw["text"] in seen:
            continue
        seen.add(raw["text"])
        documents.append(Document(id=raw["id"], kind=raw["kind"], module=raw["module"],
                                  area=area_of(raw["module"]), text=raw["text"]))
    return tuple(documents)
