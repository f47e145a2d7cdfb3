"""A compressed model: runnable params, how each leaf is stored, and how it got there.

Every compression method maps a :class:`Compressed` to a new one, so methods
compose (prune, then quantise, then entropy-code) and the report can account
for the final storage. ``params`` always holds float values the model can run
(dequantised, masked or factored); ``encodings`` holds the compact arrays
actually written to disk (packed integers, bitmasks, codebooks, factors), and
the decoder registered for each codec name (:func:`register_decoder`) turns
them back into float values when loading.

The compact form on disk is ``DIR/compressed.json`` (config changes, history,
storage table) plus ``DIR/encodings.npz`` (every encoded array, keyed
``<leaf path>::<part>``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable

import jax
import numpy as np

from jaxcompress.compress.paths import leaf_paths, map_with_path
from jaxcompress.compress.storage import LeafStorage, dense, total_bytes
from jaxcompress.errors import CheckpointError

# How to rebuild a leaf's float value from its encoded parts, by format name.
Decoder = Callable[[dict[str, np.ndarray], tuple[int, ...]], np.ndarray]
DECODERS: dict[str, Decoder] = {}


def register_decoder(name: str) -> Callable[[Decoder], Decoder]:
    """Registers how leaves encoded as ``name`` are decoded when loading from disk."""

    def wrap(fn: Decoder) -> Decoder:
        DECODERS[name] = fn
        return fn

    return wrap


@register_decoder("dense")
def _decode_dense(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return parts["values"].reshape(shape)


@dataclasses.dataclass
class Compressed:
    """A model after zero or more compression steps.

    Attributes:
      params: float params the (possibly reconfigured) model runs with.
      storage: ``{leaf path: LeafStorage}`` for every leaf.
      encodings: ``{leaf path: (codec name, {part: array})}`` compact form of
        each leaf (``("dense", {"values": w})`` when uncompressed).
      model_changes: config overrides the model needs to run ``params``
        (e.g. smaller widths after structured pruning), as ``{key: value}``.
      history: the applied steps, each ``{"method": ..., **settings}``.
    """

    params: Any
    storage: dict[str, LeafStorage]
    encodings: dict[str, tuple[str, dict[str, np.ndarray]]]
    model_changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_params(cls, params: Any) -> "Compressed":
        """The uncompressed starting point: every leaf dense at its own dtype."""
        # A copy: methods may then write into leaves without touching the caller's params.
        host = jax.tree.map(np.array, jax.device_get(params))
        storage, encodings = {}, {}

        def record(path: str, leaf: np.ndarray) -> None:
            storage[path] = dense(path, leaf)
            encodings[path] = ("dense", {"values": leaf})

        map_with_path(record, host)
        return cls(params=host, storage=storage, encodings=encodings)

    @property
    def total_bytes(self) -> int:
        return total_bytes(self.storage.values())

    def replace(self, **changes: Any) -> "Compressed":
        return dataclasses.replace(self, **changes)

    def with_leaves(self, method: dict[str, Any], params: Any,
                    updates: dict[str, tuple[LeafStorage, tuple[str, dict[str, np.ndarray]]]],
                    model_changes: dict[str, Any] | None = None) -> "Compressed":
        """A new artifact with ``params``, some leaves re-encoded, and one more history step."""
        storage, encodings = dict(self.storage), dict(self.encodings)
        for path, (leaf_storage, encoding) in updates.items():
            storage[path], encodings[path] = leaf_storage, encoding
        # Leaves that disappeared (structured surgery, factorisation) leave the tables.
        present = set(leaf_paths(params))
        storage = {p: s for p, s in storage.items() if p in present}
        encodings = {p: e for p, e in encodings.items() if p in present}
        missing = present - set(storage)
        if missing:
            raise ValueError(f"compression step {method.get('method')!r} left leaves without storage: "
                             f"{sorted(missing)[:5]}")
        return Compressed(params=params, storage=storage, encodings=encodings,
                          model_changes={**self.model_changes, **(model_changes or {})},
                          history=[*self.history, method])

    # ------------------------------------------------------------------ disk

    def save(self, directory: str | pathlib.Path) -> pathlib.Path:
        """Writes the compact form (encoded arrays only, never the float params)."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"{path}::{part}": value for path, (_, parts) in self.encodings.items()
                  for part, value in parts.items()}
        np.savez(directory / "encodings.npz", **arrays)
        meta = {
            "history": self.history,
            "model_changes": self.model_changes,
            "leaves": {path: {"codec": codec, "shape": list(self.storage[path].shape),
                              "storage": dataclasses.asdict(self.storage[path])}
                       for path, (codec, _) in self.encodings.items()},
            "order": leaf_paths(self.params),
        }
        (directory / "compressed.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | pathlib.Path, treedef_like: Any) -> "Compressed":
        """Reads a compact model and decodes it into float params shaped like ``treedef_like``.

        Args:
          directory: what :meth:`save` wrote.
          treedef_like: any pytree with the compressed model's structure (for
            example ``jax.eval_shape`` of the reconfigured model's init).
        """
        directory = pathlib.Path(directory)
        try:
            meta = json.loads((directory / "compressed.json").read_text())
            with np.load(directory / "encodings.npz") as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"compressed model in {directory} is missing or unreadable: {exc}") from None
        storage, encodings, values = {}, {}, {}
        for path, leaf in meta["leaves"].items():
            parts = {key.split("::", 1)[1]: arr for key, arr in arrays.items() if key.split("::", 1)[0] == path}
            codec, shape = leaf["codec"], tuple(leaf["shape"])
            if codec not in DECODERS:
                raise CheckpointError(f"leaf {path} in {directory} uses unknown codec {codec!r}; "
                                      f"known: {', '.join(sorted(DECODERS))}")
            stored = dict(leaf["storage"])
            stored["shape"] = tuple(stored["shape"])
            storage[path] = LeafStorage(**stored)
            encodings[path] = (codec, parts)
            values[path] = DECODERS[codec](parts, shape)
        expected = leaf_paths(treedef_like)
        if sorted(expected) != sorted(values):
            raise CheckpointError(f"compressed model in {directory} has leaves {sorted(values)[:4]}... "
                                  f"but the model expects {sorted(expected)[:4]}...")
        params = map_with_path(lambda path, _: values[path], treedef_like)
        return cls(params=params, storage=storage, encodings=encodings,
                   model_changes=meta["model_changes"], history=meta["history"])


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
