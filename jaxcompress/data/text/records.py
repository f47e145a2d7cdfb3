"""Reading whole text splits as Python records (strings decoded from TFDS bytes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def as_text(value: Any) -> str:
    """A TFDS ``Text`` value (bytes from array_record, or str) as ``str``."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_documents(name: str, split: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Reads every record of a split, strings decoded, sorted by ``id`` when the dataset has one.

    Returns:
      One ``{feature: value}`` dict per record (numbers as Python ints).
    """
    from jaxcompress.data import load_split

    source = load_split(name, split, data_dir)
    batch = source.read(np.arange(len(source)))
    records = [{key: (as_text(values[i]) if values.dtype == object else values[i].item())
                for key, values in batch.items()} for i in range(len(source))]
    if records and "id" in records[0]:
        records.sort(key=lambda record: record["id"])
    return records
