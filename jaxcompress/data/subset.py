"""A subset of a split's rows as a source: the labelled part of an active-learning pool.

References:
  Settles, "Active Learning Literature Survey", 2009 (the labelled pool is a
  growing subset of one unlabelled split).
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from jaxcompress.data._source import Source
from jaxcompress.errors import DataError


class SubsetSource:
    """Rows ``rows`` of ``source`` as a source of their own: record i is ``source`` row ``rows[i]``.

    Shapes: ``read(int [n]) -> {feature: [n, *shape]}`` like any :class:`Source`.
    """

    def __init__(self, source: Source, rows: np.ndarray):
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size == 0:
            raise DataError("a row subset must name at least one row, got none")
        if rows.min() < 0 or rows.max() >= len(source):
            raise DataError(f"row subset names rows outside 0..{len(source) - 1} "
                            f"(min {int(rows.min())}, max {int(rows.max())})")
        self.source, self.rows = source, rows
        self.features = source.features

    def __len__(self) -> int:
        return int(self.rows.size)

    def __repr__(self) -> str:
        return f"SubsetSource({self.source!r}, {self.rows.size} rows)"

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.source.read(self.rows[np.asarray(indices, np.int64)])


def read_rows_file(path: str | os.PathLike) -> np.ndarray:
    """The row indices int64 [n] stored in a JSON file (a list of ints, or ``{"rows": [...]}``).

    Raises:
      DataError: a missing or malformed file.
    """
    try:
        payload = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"config key 'data.train_rows' = {os.fspath(path)!r} is not a readable JSON file of row "
                        f"indices: {error}") from None
    rows = payload.get("rows") if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows):
        raise DataError(f"config key 'data.train_rows': {os.fspath(path)!r} must hold a JSON list of integer row "
                        f"indices (or {{\"rows\": [...]}})")
    return np.asarray(rows, np.int64)
