"""A reproducibility fingerprint over all parameter bytes.

The digest covers, for each leaf in sorted key-path order, the path, dtype,
shape and the little-endian C-order bytes. Two runs that end with bit-identical
parameters print the same ``params_sha256``, whatever their mesh or number of
hosts.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def host_value(x: Any) -> np.ndarray:
    """The full value of a (possibly multi-host sharded) array on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def params_sha256(params: Any) -> str:
    """SHA-256 hex digest of ``params`` in a canonical key order."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    digest = hashlib.sha256()
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        value = host_value(leaf)
        if value.dtype.byteorder == ">":  # canonicalise to little-endian bytes
            value = value.byteswap().view(value.dtype.newbyteorder("<"))
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(f"|{value.dtype.str}|{value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def count_params(params: Any) -> int:
    return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params)))
