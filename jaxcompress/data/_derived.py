"""Prepare a dataset derived from another one as an unregistered TFDS builder (array_record, no TensorFlow).

References:
  TensorFlow Datasets, "Writing custom datasets" (GeneratorBasedBuilder).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import types
from collections.abc import Callable
from typing import Any

from jaxcompress.data._paths import resolve_data_dir


def prepare_derived(name: str, class_name: str, info: Callable[[Any], Any],
                    split_generators: Callable[[Any, Any], dict], data_dir: str | os.PathLike | None) -> None:
    """Builds ``name`` under the data directory unless it is prepared already.

    ``info(builder)`` returns the ``tfds.core.DatasetInfo``; ``split_generators(builder, dl_manager)`` returns
    ``{split: iterable of (key, example)}``. The class is created here, unregistered, so deriving a dataset
    at run time never clashes with TFDS's registry; TFDS progress goes to stderr.
    """
    import tensorflow_datasets as tfds

    attributes = {"name": name, "VERSION": tfds.core.Version("1.0.0"), "url_infos": None,
                  "_info": info, "_split_generators": split_generators,
                  "_generate_examples": lambda self: iter(())}
    cls = types.new_class(class_name, (tfds.core.GeneratorBasedBuilder,), {"skip_registration": True},
                          lambda ns: ns.update(attributes))
    builder = cls(data_dir=os.fspath(resolve_data_dir(data_dir)), file_format="array_record")
    if not builder.is_prepared():
        with tempfile.TemporaryDirectory(prefix="jaxcompress-") as downloads, \
                contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare(download_dir=downloads)
