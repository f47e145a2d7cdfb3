"""Where datasets live on disk: the default TFDS data directory and user overrides."""

from __future__ import annotations

import os
import pathlib

from jaxcompress.errors import DataError

#: Environment variable that overrides the default data directory.
DATA_DIR_ENV = "JAXCOMPRESS_DATA_DIR"


def default_data_dir() -> pathlib.Path:
    """Returns the data directory used when the caller names none.

    ``$JAXCOMPRESS_DATA_DIR`` if set, else
    ``$XDG_CACHE_HOME/jaxcompress/tensorflow_datasets`` with the XDG default
    ``~/.cache`` for ``XDG_CACHE_HOME``. The directory is not created here.

    References:
      XDG Base Directory Specification 0.8 (``XDG_CACHE_HOME``).
    """
    override = os.environ.get(DATA_DIR_ENV, "")
    if override:
        return pathlib.Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if not cache or not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "jaxcompress" / "tensorflow_datasets"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """Returns ``data_dir`` as an absolute path, or the default when it is None or ''.

    Raises:
      DataError: when the path exists but is not a directory.
    """
    path = default_data_dir() if data_dir is None or os.fspath(data_dir) == "" else pathlib.Path(data_dir)
    path = path.expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DataError(f"data directory {path} is a file, not a directory; "
                        f"pass a directory as data_dir or set ${DATA_DIR_ENV}")
    return path
