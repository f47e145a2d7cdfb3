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

#: One line per method for ``jaxcompress compress --help``: the survey's families it covers.
FAMILIES: dict[str, str] = {
    "prune": "pruning and sharing: unstructured magnitude or random, layer-wise or global, N:M (2:4)",
    "structured": "pruning: structured surgery to a smaller model (MLP neurons, conv channels, "
                  "attention heads, FFN neurons, vocabulary rows)",
    "quantize": "quantization: int8/int4/int2 weights (qwix or our reference), per-channel, "
                "symmetric/affine, stochastic rounding",
    "binarize": "quantization: binary weights (XNOR-Net scaling)",
    "ternarize": "quantization: ternary weights (TWN threshold)",
    "lowrank": "low-rank factorisation: truncated SVD by rank, energy or budget; Tucker-2 for convs",
    "kmeans": "pruning and sharing: k-means weight sharing with fine-tunable centroids, Huffman sizes",
    "hash": "pruning and sharing: HashedNets (random weight tying)",
    "separable": "compact filters: depthwise or spatially separable convolutions",
}

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


def method_help() -> list[tuple[str, str]]:
    """``(name, families it covers)`` for every registered method."""
    return [(name, FAMILIES.get(name, (METHODS[name].__doc__ or "").strip().splitlines()[0]))
            for name in method_names()]
