"""Bytes as stored: the itemised size accounting every compression method reports.

Each parameter leaf of a compressed model is described by a :class:`LeafStorage`
(its format and the bytes of values, indices and codebooks/scales), so the
compression report can add them up honestly and say where the bytes go.

References:
  Han, Mao & Dally, "Deep Compression", ICLR 2016 (sparse index and codebook
  accounting, Huffman coding); Cheng et al., "A Survey of Model Compression and
  Acceleration for Deep Neural Networks", arXiv 1710.09282 (metrics alpha, beta).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from typing import Iterable

import numpy as np

FORMATS = ("dense", "bitmask", "csr", "int8", "int4", "binary", "ternary", "codebook", "low_rank", "hashed")


@dataclasses.dataclass(frozen=True)
class LeafStorage:
    """How one parameter leaf is stored.

    Attributes:
      path: the leaf's ``a/b/c`` path.
      shape: the logical (uncompressed) shape.
      format: one of :data:`FORMATS`.
      value_bytes: bytes of the stored values (packed sub-byte values rounded up).
      index_bytes: bytes of sparsity indices or bitmasks.
      meta_bytes: bytes of codebooks, scales and zero points.
      nonzeros: non-zero entries of the logical weight.
    """

    path: str
    shape: tuple[int, ...]
    format: str
    value_bytes: int
    index_bytes: int = 0
    meta_bytes: int = 0
    nonzeros: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def total_bytes(self) -> int:
        return self.value_bytes + self.index_bytes + self.meta_bytes


def _nnz(x: np.ndarray) -> int:
    return int(np.count_nonzero(x))


def _index_itemsize(limit: int) -> int:
    """Smallest unsigned integer width (bytes) that can index ``limit`` positions."""
    for size in (1, 2, 4):
        if limit <= 2 ** (8 * size):
            return size
    return 8


def dense(path: str, x: np.ndarray, itemsize: int | None = None) -> LeafStorage:
    """Every entry stored at ``itemsize`` bytes (default: the array's own)."""
    x = np.asarray(x)
    itemsize = x.dtype.itemsize if itemsize is None else itemsize
    return LeafStorage(path, x.shape, "dense", x.size * itemsize, nonzeros=_nnz(x))


def bitmask(path: str, x: np.ndarray) -> LeafStorage:
    """Non-zero values plus one bit per position."""
    x = np.asarray(x)
    nnz = _nnz(x)
    return LeafStorage(path, x.shape, "bitmask", nnz * x.dtype.itemsize, math.ceil(x.size / 8), nonzeros=nnz)


def csr(path: str, x: np.ndarray) -> LeafStorage:
    """Compressed sparse rows of ``x`` viewed as ``[prod(shape[:-1]), shape[-1]]``.

    Column indices use the smallest integer type that fits the row length;
    row pointers use the smallest that fits the non-zero count.
    """
    x = np.asarray(x)
    matrix = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    nnz = _nnz(matrix)
    index = nnz * _index_itemsize(matrix.shape[1]) + (matrix.shape[0] + 1) * _index_itemsize(nnz + 1)
    return LeafStorage(path, x.shape, "csr", nnz * x.dtype.itemsize, index, nonzeros=nnz)


def smallest_sparse(path: str, x: np.ndarray) -> LeafStorage:
    """The cheapest of dense, bitmask and CSR for this leaf."""
    return min((dense(path, x), bitmask(path, x), csr(path, x)), key=lambda s: s.total_bytes)


def quantized(path: str, shape: tuple[int, ...], bits: int, num_scales: int, nonzeros: int,
              with_zero_point: bool = False, scale_itemsize: int = 4) -> LeafStorage:
    """Integer values of ``bits`` each (packed), plus one scale (and zero point) per channel."""
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"bits must be 1, 2, 4 or 8, got {bits}")
    fmt = {8: "int8", 4: "int4", 2: "ternary", 1: "binary"}[bits]
    size = int(math.prod(shape))
    meta = num_scales * scale_itemsize * (2 if with_zero_point else 1)
    return LeafStorage(path, tuple(shape), fmt, math.ceil(size * bits / 8), 0, meta, nonzeros)


def codebook(path: str, shape: tuple[int, ...], index_bits: int, num_centroids: int, nonzeros: int,
             centroid_itemsize: int = 4, coded_index_bits: float | None = None) -> LeafStorage:
    """k-means weight sharing: an index per weight plus the centroid table.

    ``coded_index_bits`` replaces the fixed-width index stream by its entropy
    coded size (e.g. :func:`huffman_bits`) when given.
    """
    size = int(math.prod(shape))
    index_stream_bits = coded_index_bits if coded_index_bits is not None else size * index_bits
    return LeafStorage(path, tuple(shape), "codebook", math.ceil(index_stream_bits / 8), 0,
                       num_centroids * centroid_itemsize, nonzeros)


def huffman_bits(counts: Iterable[int]) -> int:
    """Exact total length in bits of a Huffman code for symbols with these counts.

    Built with a heap: each merge of the two rarest groups adds one bit to every
    symbol below it, i.e. adds the merged count to the total.
    """
    heap = [int(c) for c in counts if c > 0]
    if len(heap) <= 1:
        return sum(heap)  # one symbol still costs a bit per occurrence
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def entropy_bits(counts: Iterable[int]) -> float:
    """Shannon lower bound ``sum_k n_k * -log2(p_k)`` on any prefix code's length."""
    counts = np.asarray([c for c in counts if c > 0], dtype=np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def total_bytes(leaves: Iterable[LeafStorage]) -> int:
    return sum(leaf.total_bytes for leaf in leaves)
