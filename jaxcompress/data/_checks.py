"""Integrity checks of a prepared TFDS folder, so garbage fails early with one clear line.

TFDS itself trusts a prepared folder: a truncated shard or a half-copied
directory only fails later, deep inside a read, with a Riegeli error. These
checks run when a split is opened and cost one footer read per shard file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import tensorflow_datasets as tfds


def first_line(error: BaseException, limit: int = 160) -> str:
    """Returns the first line of ``str(error)`` (or its type name), at most ``limit`` characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def find_problem(builder: tfds.core.DatasetBuilder, splits: Iterable[str] | None = None) -> str | None:
    """Looks for what makes a prepared folder unreadable.

    Args:
      builder: a builder whose ``data_path`` is the folder to check.
      splits: names of the splits to check (their shard files are opened);
        None checks every split in ``dataset_info.json``.

    Returns:
      None when the folder is complete, else a short reason (one line).
    """
    # Imported here: the reader's extension module is only needed once a
    # folder is actually opened.
    from array_record.python import array_record_module

    if not builder.is_prepared():
        return "dataset_info.json or features.json is missing"
    info = builder.info
    if not info.splits:
        return "dataset_info.json lists no splits"
    names = list(info.splits.keys()) if splits is None else list(splits)
    for name in names:
        split_info = info.splits[name]
        paths, lengths = split_info.filepaths, split_info.shard_lengths
        if len(paths) != len(lengths):
            return f"split {name!r} has {len(paths)} shard files but {len(lengths)} shard lengths"
        for path, expected in zip(paths, lengths):
            if not path.exists():
                return f"shard file {path.name} is missing"
            # A reader on a damaged file does not raise; it reports not-ok, and
            # closing it raises the underlying Riegeli error.
            reader = array_record_module.ArrayRecordReader(os.fspath(path), options="readahead_buffer_size:0")
            try:
                ok, found = reader.ok(), reader.num_records()
            finally:
                try:
                    reader.close()
                except RuntimeError:
                    ok = False
            if not ok:
                return f"shard file {path.name} is truncated or not an ArrayRecord file"
            if found != expected:
                return f"shard file {path.name} holds {found} records but dataset_info.json says {expected}"
    return None
