"""Opening one split of a dataset as a random-access source of NumPy batches.

Embedded datasets are prepared on first use; any other name is opened exactly
like a real TFDS dataset (``tfds.builder(name, data_dir=...,
file_format="array_record")``) and must already be prepared: nothing is ever
downloaded at run time. Records are read through TFDS's ArrayRecord data
source, which needs no TensorFlow.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jaxcompress.data import _registry
from jaxcompress.data._paths import DATA_DIR_ENV, resolve_data_dir
from jaxcompress.errors import DataError

#: ``{feature name: (shape without the batch dim, dtype)}``; None marks a variable dimension.
FeatureSpec = Mapping[str, tuple[tuple[int | None, ...], np.dtype]]


@runtime_checkable
class Source(Protocol):
    """What :func:`load_split` returns: random access to one split.

    ``len(source)`` is the number of records N; ``source.read(indices)`` with
    ``indices`` int [n] in [0, N) returns ``{feature: array [n, *shape]}``, the
    records stacked in the order asked; ``source.features`` gives each
    feature's per-record shape and dtype.
    """

    features: FeatureSpec

    def __len__(self) -> int:
        ...

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        ...


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested feature dicts to ``{"outer/inner": leaf}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _as_numpy_dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:  # Strings and other non-numeric features.
        return np.dtype(object)


def _feature_spec(info: Any) -> dict[str, tuple[tuple[int | None, ...], np.dtype]]:
    """Returns ``{feature: (per-record shape, dtype)}`` of a ``tfds.core.DatasetInfo``."""
    # `np_dtype`, not `dtype`: the latter converts through TensorFlow.
    return {key: (tuple(tensor.shape), _as_numpy_dtype(tensor.np_dtype))
            for key, tensor in _flatten(info.features.get_tensor_info()).items()}


def _cache_budget_bytes() -> int:
    return int(float(os.environ.get("JAXCOMPRESS_DATA_CACHE_MB", "512")) * 2**20)


class _RecordCache:
    """Decoded records of one split kept in memory, filled as they are first read.

    Decoding a record through TFDS costs tens of microseconds, which would
    dominate the step of a small model. A split whose decoded size fits the
    budget (``$JAXCOMPRESS_DATA_CACHE_MB``, default 512) is therefore kept in
    preallocated arrays. It fills lazily, so a host still reads from disk only
    the records of its own slices.
    """

    def __init__(self, length: int, features: dict[str, tuple[tuple[int, ...], np.dtype]]):
        self._arrays = {key: np.zeros((length,) + shape, dtype) for key, (shape, dtype) in features.items()}
        self._loaded = np.zeros(length, bool)

    @classmethod
    def for_split(cls, length: int, features: dict[str, tuple[tuple[int | None, ...], np.dtype]]
                  ) -> "_RecordCache | None":
        """A cache when every feature has a static numeric shape and the split fits the budget."""
        if any(None in shape or dtype == np.dtype(object) for shape, dtype in features.values()):
            return None
        size = sum(length * int(np.prod(shape)) * dtype.itemsize for shape, dtype in features.values())
        return cls(length, features) if size <= _cache_budget_bytes() else None

    def missing(self, indices: np.ndarray) -> np.ndarray:
        return np.unique(indices[~self._loaded[indices]])

    def store(self, indices: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        for key, values in batch.items():
            self._arrays[key][indices] = values
        self._loaded[indices] = True

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: array[indices] for key, array in self._arrays.items()}


class ArrayRecordSource:
    """One split of a prepared TFDS dataset stored as ArrayRecord files.

    Attributes:
      name: the dataset name the user gave (``digits``, ``mnist``, ...).
      split: the split spec (``train``, ``test[:10%]``, ...).
      path: the prepared folder.
      info: the ``tfds.core.DatasetInfo`` (supervised keys, class names, citation).
      features: ``{feature: (shape, dtype)}`` per record; nested features are
        named ``outer/inner``.
    """

    def __init__(self, builder: Any, name: str, split: str, rebuild_hint: str):
        self.name = name
        self.split = split
        self.path = pathlib.Path(os.fspath(builder.data_path))
        self.info = builder.info
        self._rebuild_hint = rebuild_hint
        self._records = builder.as_data_source(split=split)
        self._length = len(self._records)
        self.features = _feature_spec(self.info)
        self._cache = _RecordCache.for_split(self._length, self.features)

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"ArrayRecordSource(name={self.name!r}, split={self.split!r}, len={self._length}, path='{self.path}')"

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Reads records ``indices`` (int [n]) and stacks them: ``{feature: [n, *shape]}``."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise ValueError(f"indices must be a 1-D integer array, got shape {indices.shape} {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= self._length):
            raise IndexError(f"indices must lie in [0, {self._length}), got [{indices.min()}, {indices.max()}]")
        if indices.size == 0:
            return {key: np.zeros((0,) + tuple(d or 0 for d in shape), dtype)
                    for key, (shape, dtype) in self.features.items()}
        if self._cache is not None:
            missing = self._cache.missing(indices)
            if missing.size:
                self._cache.store(missing, self._decode(missing))
            return self._cache.take(indices)
        return self._decode(indices)

    def _decode(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Reads and decodes records through TFDS (tens of microseconds each)."""
        from jaxcompress.data._checks import first_line

        try:
            records = self._records.__getitems__([int(i) for i in indices])
        except Exception as error:  # Riegeli/protobuf errors from a damaged shard.
            raise DataError(f"cannot read split {self.split!r} of dataset {self.name!r} in {self.path} "
                            f"({first_line(error)}); {self._rebuild_hint}") from error
        records = [_flatten(record) for record in records]
        batch = {}
        for key, (_, dtype) in self.features.items():
            try:
                batch[key] = np.stack([np.asarray(record[key], dtype=dtype) for record in records])
            except ValueError as error:
                raise DataError(f"feature {key!r} of dataset {self.name!r} has a different shape in each "
                                f"record, so records cannot be stacked into a batch ({first_line(error)})") from error
        return batch


def _tfds_hint(name: str, root: pathlib.Path) -> str:
    """Returns how to get a prepared copy of a TFDS dataset onto an offline machine."""
    folder = name.split("/")[0].split(":")[0]
    return (f"on a machine with internet run `tfds build {name} --file_format=array_record "
            f"--data_dir=DIR` and copy DIR/{folder} into {root}")


def _raise_if_other_format(name: str, root: pathlib.Path) -> None:
    """Explains a dataset prepared in another file format (TFDS refuses it with a generic error)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=os.fspath(root))
        stored = builder.info.file_format if builder.is_prepared() else None
    except Exception:  # Really garbage: the caller reports it.
        return
    if stored is not None and stored != tfds.core.FileFormat.ARRAY_RECORD:
        raise DataError(f"dataset {name!r} in {builder.data_path} is stored as {getattr(stored, 'value', stored)}, "
                        f"but jaxcompress reads array_record only (random access without TensorFlow); "
                        f"replace it: {_tfds_hint(name, root)}")


def _open_tfds(name: str, root: pathlib.Path) -> Any:
    """Returns the builder of a prepared, non-embedded TFDS dataset, never downloading."""
    import tensorflow_datasets as tfds

    from jaxcompress.data._checks import first_line

    folder = root / name.split("/")[0].split(":")[0]
    try:
        builder = tfds.builder(name, data_dir=os.fspath(root), file_format="array_record")
    except tfds.core.DatasetNotFoundError as error:
        if os.path.lexists(folder):
            raise DataError(f"dataset {name!r} in {folder} is corrupt or incomplete (TFDS cannot read it); "
                            f"replace it: {_tfds_hint(name, root)}") from error
        raise DataError(f"unknown dataset {name!r}: not an embedded dataset (allowed: "
                        f"{', '.join(_registry.embedded_names())}), not a TFDS catalog name, and not "
                        f"prepared in {root}") from error
    except Exception as error:  # Garbage metadata fails inside the builder's constructor.
        _raise_if_other_format(name, root)
        where = folder if os.path.lexists(folder) else root
        raise DataError(f"dataset {name!r} in {where} is corrupt or incomplete ({first_line(error)}); "
                        f"replace it: {_tfds_hint(name, root)}") from error
    path = pathlib.Path(os.fspath(builder.data_path))
    if not builder.is_prepared():
        if path.is_dir() and any(path.iterdir()):
            raise DataError(f"dataset {name!r} in {path} is corrupt or incomplete (dataset_info.json or "
                            f"features.json is missing); replace it: {_tfds_hint(name, root)}")
        raise DataError(f"dataset {name!r} is not prepared in {root} (looked for {path}) and nothing is "
                        f"downloaded at run time; {_tfds_hint(name, root)}, or point data_dir or ${DATA_DIR_ENV} "
                        f"at a directory that has it")
    return builder


def _split_names(split: str) -> list[str]:
    """Returns the split names a TFDS split spec refers to: ``"train[:10%]+test"`` -> train, test."""
    return [re.sub(r"\[.*$", "", part).strip() for part in split.split("+")]


def _open(name: str, root: pathlib.Path) -> tuple[Any, str]:
    """Returns ``(prepared builder, rebuild advice)`` for any dataset name."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}; "
                        f"embedded datasets: {', '.join(_registry.embedded_names())}")
    if _registry.is_embedded(name):
        return _registry.open_embedded(name, root), _registry.rebuild_hint(name)
    return _open_tfds(name, root), f"replace it: {_tfds_hint(name, root)}"


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Source:
    """Opens one split of a dataset for random access.

    Embedded names (see :func:`embedded_names`) are prepared on first use,
    offline and deterministically. Any other name is treated as a TFDS dataset
    that must already be prepared in ``data_dir`` in the array_record format.
    ``split`` may use TFDS slicing (``"train[:80%]"``, ``"train+validation"``).

    Args:
      name: dataset name.
      split: split name or TFDS split spec.
      data_dir: TFDS data directory; None or '' uses :func:`default_data_dir`.

    Returns:
      A :class:`Source` with ``len(source) = N`` and
      ``source.read(int [n]) -> {feature: [n, *shape]}``.

    Raises:
      DataError: unknown dataset or split, a dataset that is not prepared, or
        a prepared folder that is corrupt (the message says how to rebuild it).
    """
    from jaxcompress.data._checks import find_problem, first_line

    if not isinstance(split, str) or not split.strip():
        raise DataError(f"split must be a non-empty string such as 'train', got {split!r}")
    builder, hint = _open(name, resolve_data_dir(data_dir))
    available = list(builder.info.splits.keys())
    unknown = [part for part in _split_names(split) if part not in available]
    if unknown:
        raise DataError(f"unknown split {unknown[0]!r} of dataset {name!r}; available splits: {', '.join(available)}")
    path = pathlib.Path(os.fspath(builder.data_path))
    problem = find_problem(builder, sorted(set(_split_names(split))))
    if problem is not None:
        raise DataError(f"dataset {name!r} in {path} is corrupt or incomplete ({problem}); {hint}")
    try:
        return ArrayRecordSource(builder, name, split, hint)
    except Exception as error:  # A malformed slice such as "train[:x%]".
        raise DataError(f"cannot open split {split!r} of dataset {name!r} in {path}: {first_line(error)}") from error


def dataset_info(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Describes a dataset for the code that builds a model and task for it.

    Opens the dataset like :func:`load_split` (embedded names are prepared on
    first use) but reads no records.

    Returns:
      ``name``, ``path``, ``splits`` (``{split: num_examples}``), ``features``
      (``{feature: (shape, dtype)}`` per record), ``supervised_keys``
      (``(input_key, label_key)`` or None), ``input_key``, ``label_key``,
      ``input_shape`` (per-record shape of the input or None) and
      ``num_classes`` (of the label when it is a ``ClassLabel``, else None).
    """
    import tensorflow_datasets as tfds

    builder, _ = _open(name, resolve_data_dir(data_dir))
    info = builder.info
    features = _feature_spec(info)
    keys = info.supervised_keys
    # Only the plain (input, label) form; TFDS also allows nested key structures.
    simple = isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)
    input_key, label_key = keys if simple else (None, None)
    num_classes = None
    if label_key is not None and isinstance(info.features[label_key], tfds.features.ClassLabel):
        num_classes = int(info.features[label_key].num_classes)
    return {"name": name, "path": str(builder.data_path),
            "splits": {split: int(s.num_examples) for split, s in info.splits.items()},
            "features": features, "supervised_keys": (input_key, label_key) if simple else None,
            "input_key": input_key, "label_key": label_key,
            "input_shape": features[input_key][0] if input_key in features else None,
            "num_classes": num_classes}
