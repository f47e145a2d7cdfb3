"""The registry behind ``jaxcompress compress --method NAME``.

A method is a step ``(Compressed, options) -> Compressed``; options arrive as a
dict of already-typed values and each method validates its own.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from jaxcompress.compress.artifact import Compressed
from jaxcompress.errors import ConfigError

Method = Callable[[Compressed, dict[str, Any]], Compressed]
METHODS: dict[str, Method] = {}

# Modules whose import registers methods.
_METHOD_MODULES = ("pruning", "structured", "quantize", "lowrank", "sharing", "compact")


def register_method(name: str) -> Callable[[Method], Method]:
    def wrap(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    for module in _METHOD_MODULES:
        try:
            importlib.import_module(f"jaxcompress.compress.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"jaxcompress.compress.{module}":
                raise


def get_method(name: str) -> Method:
    """The step registered as ``name``.

    Raises:
      ConfigError: listing the allowed method names.
    """
    _load_all()
    if name not in METHODS:
        raise ConfigError(f"unknown compression method {name!r}; allowed methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_names() -> list[str]:
    _load_all()
    return sorted(METHODS)
