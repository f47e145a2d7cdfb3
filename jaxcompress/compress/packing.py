"""Sub-byte integer packing for the compact form on disk (host-side NumPy).

``pack_bits`` stores ``n`` unsigned codes of ``bits`` bits each in
``ceil(n * bits / 8)`` bytes, little-endian inside every byte: with 4 bits,
code ``2i`` is the low nibble and code ``2i+1`` the high nibble of byte ``i``
(two int4 values per byte); with 1 bit, eight codes per byte.

References:
  Han, Mao & Dally, "Deep Compression", ICLR 2016 (packed index streams).
"""

from __future__ import annotations

import math

import numpy as np


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits take when packed."""
    return math.ceil(count * bits / 8)


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packs unsigned integer codes ``[n]`` in ``[0, 2**bits)`` into uint8 ``[ceil(n*bits/8)]``.

    Raises:
      ValueError: if ``bits`` is not in 1..8 or a code does not fit.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    codes = np.asarray(codes).ravel()
    if codes.size and (codes.min() < 0 or codes.max() >= 2 ** bits):
        raise ValueError(f"codes must lie in [0, {2 ** bits}), got [{codes.min()}, {codes.max()}]")
    if bits == 8:
        return codes.astype(np.uint8)
    # One row of bit planes per code, least significant bit first, then one
    # little-endian bit stream: code i occupies stream bits [i*bits, (i+1)*bits).
    planes = (codes.astype(np.uint16)[:, None] >> np.arange(bits, dtype=np.uint16)) & 1
    return np.packbits(planes.astype(np.uint8).ravel(), bitorder="little")


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint8 ``[m]`` -> int64 codes ``[count]``."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    packed = np.asarray(packed, np.uint8).ravel()
    if bits == 8:
        return packed[:count].astype(np.int64)
    stream = np.unpackbits(packed, bitorder="little", count=count * bits)
    return (stream.reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """One bit per position (True = stored), big-endian like ``np.packbits``."""
    return np.packbits(np.asarray(mask, bool).ravel())


def unpack_mask(packed: np.ndarray, count: int) -> np.ndarray:
    return np.unpackbits(np.asarray(packed, np.uint8), count=count).astype(bool)
