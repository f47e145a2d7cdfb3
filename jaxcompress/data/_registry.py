"""Embedded datasets: which exist, where they live, and preparing them offline.

An embedded dataset is a TFDS ``GeneratorBasedBuilder`` that jaxcompress ships
and generates from what the installed packages contain (no download). Users
call it by a short name (``digits``); on disk it lives under the builder's own
name (``jaxcompress_digits``) so it cannot clash with a real TFDS dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any

from jaxcompress.data._paths import resolve_data_dir
from jaxcompress.errors import DataError


@dataclasses.dataclass(frozen=True)
class EmbeddedDataset:
    """One embedded dataset: its short name and where its builder class lives.

    The builder module is imported on first use, which keeps
    ``import jaxcompress.data`` cheap.
    """

    name: str
    builder: str  # "package.module:ClassName"

    def builder_class(self) -> Any:
        """Returns the TFDS builder class (imports its module)."""
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)

    def description(self) -> str:
        """Returns the first line of the builder's docstring."""
        return (self.builder_class().__doc__ or "").strip().splitlines()[0]

    def path(self, root: pathlib.Path) -> pathlib.Path:
        """Returns the prepared folder: ``root/<builder name>/<version>``."""
        cls = self.builder_class()
        return root / cls.name / str(cls.VERSION)


_EMBEDDED: dict[str, EmbeddedDataset] = {
    "digits": EmbeddedDataset("digits", "jaxcompress.data.builders.digits:JaxcompressDigits"),
    "cluttered_digits": EmbeddedDataset("cluttered_digits",
                                        "jaxcompress.data.builders.canvases:JaxcompressClutteredDigits"),
    "part_shapes": EmbeddedDataset("part_shapes", "jaxcompress.data.builders.canvases:JaxcompressPartShapes"),
    "pydocs": EmbeddedDataset("pydocs", "jaxcompress.data.builders.pydocs:JaxcompressPydocs"),
    "pydocs_pretrain": EmbeddedDataset("pydocs_pretrain",
                                       "jaxcompress.data.builders.pydocs_pretrain:JaxcompressPydocsPretrain"),
    "pydocs_topic": EmbeddedDataset("pydocs_topic", "jaxcompress.data.builders.pydocs_topic:JaxcompressPydocsTopic"),
    "pydocs_pair": EmbeddedDataset("pydocs_pair", "jaxcompress.data.builders.pydocs_pair:JaxcompressPydocsPair"),
    "graph_families": EmbeddedDataset("graph_families", "jaxcompress.data.builders.graphs:JaxcompressGraphFamilies"),
    "graph_communities": EmbeddedDataset("graph_communities",
                                         "jaxcompress.data.builders.graphs:JaxcompressGraphCommunities"),
    "graph_cycles": EmbeddedDataset("graph_cycles", "jaxcompress.data.builders.graphs:JaxcompressGraphCycles"),
    "sbm_nodes": EmbeddedDataset("sbm_nodes", "jaxcompress.data.builders.graphs:JaxcompressSbmNodes"),
    "nx_real_graphs": EmbeddedDataset("nx_real_graphs", "jaxcompress.data.builders.graphs:JaxcompressNxRealGraphs"),
    "street_scenes": EmbeddedDataset("street_scenes", "jaxcompress.data.builders.scenes:JaxcompressStreetScenes"),
    "point_shapes": EmbeddedDataset("point_shapes", "jaxcompress.data.builders.points:JaxcompressPointShapes"),
    "point_shapes_scan": EmbeddedDataset("point_shapes_scan",
                                         "jaxcompress.data.builders.points:JaxcompressPointShapesScan"),
    "speech_commands": EmbeddedDataset("speech_commands", "jaxcompress.data.builders.speech:JaxcompressSpeechCommands"),
    "speech_digits": EmbeddedDataset("speech_digits", "jaxcompress.data.builders.speech:JaxcompressSpeechDigits"),
    "speech_commands_tiny": EmbeddedDataset("speech_commands_tiny",
                                            "jaxcompress.data.builders.speech:JaxcompressSpeechCommandsTiny"),
    "speech_digits_tiny": EmbeddedDataset("speech_digits_tiny",
                                          "jaxcompress.data.builders.speech:JaxcompressSpeechDigitsTiny"),
    **{f"tts_{code}": EmbeddedDataset(f"tts_{code}", f"jaxcompress.data.builders.tts:JaxcompressTts{code.capitalize()}")
       for code in ("en", "fi", "hi", "ja", "ru", "bg", "ka", "kk", "sw", "ur", "uz")},
}


def embedded_names() -> list[str]:
    """Returns the names of the datasets jaxcompress generates offline, sorted."""
    return sorted(_EMBEDDED)


def is_embedded(name: str) -> bool:
    """Whether ``name`` is an embedded dataset's short name."""
    return name in _EMBEDDED


def rebuild_hint(name: str) -> str:
    """Returns the advice printed when an embedded dataset's folder is unreadable."""
    return f"rebuild it with `jaxcompress data prepare {name} --force`"


def _corrupt(name: str, path: pathlib.Path, reason: str) -> DataError:
    return DataError(f"dataset {name!r} in {path} is corrupt or incomplete ({reason}); {rebuild_hint(name)}")


def _construct(entry: EmbeddedDataset, root: pathlib.Path) -> Any:
    """Instantiates the builder; garbage metadata already fails here, inside TFDS."""
    from jaxcompress.data._checks import first_line

    try:
        return entry.builder_class()(data_dir=os.fspath(root), file_format="array_record")
    except Exception as error:  # TFDS raises anything from UnicodeDecodeError to ParseError.
        raise _corrupt(entry.name, entry.path(root), f"cannot read its metadata: {first_line(error)}") from error


def _open_existing(entry: EmbeddedDataset, root: pathlib.Path) -> Any:
    """Returns the builder of an existing prepared folder after checking every shard."""
    from jaxcompress.data._checks import find_problem

    builder = _construct(entry, root)
    problem = find_problem(builder)
    if problem is not None:
        raise _corrupt(entry.name, entry.path(root), problem)
    return builder


def _remove(path: pathlib.Path) -> None:
    """Deletes one dataset version folder, or a file sitting where it or its parent should be."""
    if os.path.lexists(path.parent) and not path.parent.is_dir():
        path.parent.unlink()
    elif path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()  # Never follow a link into somebody else's folder.
    elif path.is_dir():
        shutil.rmtree(path)


def _lookup(name: str) -> EmbeddedDataset:
    if not isinstance(name, str) or name not in _EMBEDDED:
        raise DataError(f"cannot prepare dataset {name!r}: only embedded datasets are generated offline "
                        f"(allowed: {', '.join(embedded_names())}); prepare a TFDS dataset on a machine "
                        f"with internet with `tfds build {name} --file_format=array_record --data_dir=DIR`")
    return _EMBEDDED[name]


def prepare(name: str, data_dir: str | os.PathLike | None = None, force: bool = False) -> Any:
    """Generates an embedded dataset in ``data_dir`` (offline, array_record, no TensorFlow).

    An already prepared, intact folder is reused unless ``force`` is set, in
    which case it is deleted and generated again. TFDS writes into a temporary
    ``incomplete.*`` folder and renames it at the end, so an interrupted run
    never leaves a folder that looks complete.

    Args:
      name: an embedded dataset name (see :func:`embedded_names`).
      data_dir: the TFDS data directory; None or '' uses :func:`default_data_dir`.
      force: rebuild even when the dataset is already prepared.

    Returns:
      The prepared ``tfds.core.DatasetBuilder``.

    Raises:
      DataError: unknown name, an unwritable directory, or (without ``force``)
        an existing folder that is corrupt.
    """
    entry = _lookup(name)
    root = resolve_data_dir(data_dir)
    path = entry.path(root)
    if force:
        _remove(path)
    if os.path.lexists(path):
        return _open_existing(entry, root)
    builder = _construct(entry, root)
    try:
        # A throw-away download folder: nothing is downloaded, but TFDS would
        # otherwise leave an empty `downloads/` tree in the user's data dir.
        # TFDS prints its progress notes to stdout; send them to stderr so that
        # commands whose stdout is machine-readable (JSON) stay clean.
        with tempfile.TemporaryDirectory(prefix="jaxcompress-") as downloads, \
                contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare(download_dir=downloads)
    except Exception as error:
        from jaxcompress.data._checks import first_line

        # Another process (a second host on a shared disk, a parallel test)
        # may have published the same folder first; its result is as good.
        if os.path.lexists(path):
            return _open_existing(entry, root)
        raise DataError(f"could not prepare dataset {name!r} in {path} ({first_line(error)}); check that {root} "
                        f"is a writable directory, then run `jaxcompress data prepare {name} --force`") from error
    return _open_existing(entry, root)


def open_embedded(name: str, root: pathlib.Path) -> Any:
    """Returns the builder of an embedded dataset, preparing it on first use."""
    entry = _EMBEDDED[name]
    if not os.path.lexists(entry.path(root)):
        return prepare(name, root)
    return _open_existing(entry, root)


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Describes every embedded dataset and whether it is prepared in ``data_dir``.

    Nothing is generated; a corrupt folder is reported as not prepared (loading
    it says why).

    Returns:
      One dict per embedded dataset, sorted by name: ``name``, ``description``,
      ``prepared`` (bool), ``splits`` (``{split: num_examples}``, empty when not
      prepared) and ``path`` (the prepared folder, as a string).
    """
    root = resolve_data_dir(data_dir)
    rows = []
    for name in embedded_names():
        entry = _EMBEDDED[name]
        path = entry.path(root)
        splits: dict[str, int] = {}
        if os.path.lexists(path):
            try:
                builder = _open_existing(entry, root)
                splits = {split: int(info.num_examples) for split, info in builder.info.splits.items()}
            except DataError:
                splits = {}
        rows.append({"name": name, "description": entry.description(), "prepared": bool(splits),
                     "splits": splits, "path": str(path)})
    return rows
