"""Canonical Huffman coding of small-alphabet index streams (host-side NumPy).

k-means weight sharing stores one centroid index per weight; Deep Compression
entropy-codes that stream. :func:`encode` writes the real bit stream (so the
compact form on disk has the size the report states) and :func:`decode`
reads it back. Code lengths come from the usual two-smallest merge; codes are
canonical (sorted by length, then symbol), so only the lengths are stored.

Decoding walks the stream one symbol at a time through a ``2^L``-entry table
(L the longest code), in a Python loop: about a microsecond per weight, fine
for the models here; an accelerator path is out of scope.

References:
  Huffman, "A Method for the Construction of Minimum-Redundancy Codes",
  Proc. IRE 1952; Han, Mao & Dally, "Deep Compression", ICLR 2016.
"""

from __future__ import annotations

import heapq

import numpy as np

#: Longer codes fall back to fixed-width indices (the decode table would be too large).
MAX_CODE_LENGTH = 20


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length per symbol (0 for symbols that never occur).

    A lone symbol gets length 1 (one bit per occurrence), matching
    :func:`jaxcompress.compress.storage.huffman_bits`.
    """
    counts = np.asarray(counts, np.int64)
    lengths = np.zeros(counts.size, np.int64)
    present = [int(s) for s in np.flatnonzero(counts)]
    if len(present) == 1:
        lengths[present[0]] = 1
        return lengths
    # Heap of (count, tie-breaker, symbols below this node); a merge deepens all of them by one.
    heap = [(int(counts[s]), s, [s]) for s in present]
    heapq.heapify(heap)
    tie = counts.size
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values (read MSB first) for the given lengths."""
    codes = np.zeros(lengths.size, np.int64)
    code, previous = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous
        codes[symbol] = code
        previous = int(lengths[symbol])
        code += 1
    return codes


def encode(symbols: np.ndarray, alphabet: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Huffman-codes ``symbols`` in ``[0, alphabet)``.

    Returns:
      ``(packed stream uint8, code lengths uint8 [alphabet], total bits)``, or
      None when the longest code would exceed :data:`MAX_CODE_LENGTH`.
    """
    symbols = np.asarray(symbols, np.int64).ravel()
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    if lengths.max(initial=0) > MAX_CODE_LENGTH:
        return None
    codes = canonical_codes(lengths)
    per_length, per_code = lengths[symbols], codes[symbols]
    total = int(per_length.sum())
    starts = np.cumsum(per_length) - per_length
    stream = np.zeros(total, np.uint8)
    for j in range(int(lengths.max(initial=0))):
        has = per_length > j
        stream[starts[has] + j] = (per_code[has] >> (per_length[has] - 1 - j)) & 1
    return np.packbits(stream), lengths.astype(np.uint8), total


def decode(packed: np.ndarray, lengths: np.ndarray, count: int) -> np.ndarray:
    """Inverse of :func:`encode`: ``count`` symbols from the packed stream."""
    lengths = np.asarray(lengths, np.int64)
    longest = int(lengths.max(initial=0))
    if count == 0 or longest == 0:
        return np.zeros(count, np.int64)
    codes = canonical_codes(lengths)
    # Every longest-length bit pattern that starts with a code maps to that code's symbol.
    table_symbol = np.zeros(1 << longest, np.int64)
    table_length = np.zeros(1 << longest, np.int64)
    for symbol in np.flatnonzero(lengths):
        shift = longest - int(lengths[symbol])
        start = int(codes[symbol]) << shift
        table_symbol[start:start + (1 << shift)] = symbol
        table_length[start:start + (1 << shift)] = lengths[symbol]
    bits = np.unpackbits(np.asarray(packed, np.uint8))
    bits = np.concatenate([bits, np.zeros(longest, np.uint8)])
    # windows[p] = the next `longest` bits starting at p, as an integer.
    windows = np.zeros(bits.size - longest + 1, np.int64)
    for j in range(longest):
        windows = (windows << 1) | bits[j:j + windows.size]
    windows_l, sym_l, len_l = windows.tolist(), table_symbol.tolist(), table_length.tolist()
    out = [0] * count
    position = 0
    for i in range(count):
        window = windows_l[position]
        out[i] = sym_l[window]
        position += len_l[window]
    return np.asarray(out, np.int64)
