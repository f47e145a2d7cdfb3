"""Weight sharing: k-means clustering (Deep Compression) and the hashing trick (HashedNets).

**k-means.** Each selected kernel's weights are clustered into ``2^bits``
shared values (1-D k-means, centroids initialised linearly over
``[min, max]``); a weight is stored as the index of its centroid, and the
index stream is Huffman-coded for real in the compact form. A pruned kernel
keeps its zeros: either as an extra "zero" symbol in the stream or as a
bitmask plus the indices of the survivors, whichever is smaller. Centroids
are fine-tuned by :func:`tie_to_centroids`, an optax wrapper whose update of
centroid k is driven by ``dL/dc_k = sum_{i: idx_i = k} dL/dw_i`` (a
``segment_sum``), so every weight of a cluster moves together.

**Hashing trick.** A kernel ``W`` of any shape is replaced by ``K`` free
parameters ``theta``: ``W_i = xi(i) * theta[h(i)]`` with ``h`` a fixed integer
hash of the flat position into ``K`` buckets and ``xi`` a ±1 sign hash (both
murmur3's 32-bit finaliser of the position and a per-layer seed: jittable,
deterministic, identical on every host). :func:`hash_project` fits ``theta``
to a trained kernel by least squares (the signed bucket mean);
:class:`HashedDense` trains one from scratch (gradients scatter-add into
``theta`` through ``jnp.take``).

References:
  Han, Mao & Dally, "Deep Compression", ICLR 2016; Gong et al., "Compressing
  Deep Convolutional Networks using Vector Quantization", arXiv 1412.6115;
  Chen et al., "Compressing Neural Networks with the Hashing Trick", ICML 2015.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress import huffman
from jaxcompress.compress import options as opt
from jaxcompress.compress.artifact import Compressed, register_decoder
from jaxcompress.compress.methods import register_method
from jaxcompress.compress.packing import pack_bits, pack_mask, packed_nbytes, unpack_bits, unpack_mask
from jaxcompress.compress.paths import map_with_path, path_str, select
from jaxcompress.compress.quantize import LOSSY_CODECS
from jaxcompress.compress.storage import LeafStorage
from jaxcompress.errors import ConfigError

# ----------------------------------------------------------------------------
# k-means


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars with linear initialisation.

    Args:
      values: float ``[n]``.
      k: number of centroids.
      iterations: maximum Lloyd iterations (stops early when assignments settle).

    Returns:
      ``(centroids float32 [k] ascending, assignments int64 [n])``. An empty
      cluster keeps its previous centroid.

    References: Han, Mao & Dally, ICLR 2016 (linear initialisation works best).
    """
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        return np.zeros(k, np.float32), np.zeros(0, np.int64)
    centroids = np.linspace(values.min(), values.max(), k)
    assignments = np.full(values.size, -1)
    for _ in range(iterations):
        order = np.argsort(centroids, kind="stable")
        centroids = centroids[order]
        # 1-D clusters are intervals: nearest centroid by the midpoints between sorted centroids.
        new = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
        if np.array_equal(new, assignments):
            break
        assignments = new
        counts = np.bincount(assignments, minlength=k)
        sums = np.bincount(assignments, weights=values, minlength=k)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    return centroids.astype(np.float32), assignments.astype(np.int64)


def centroid_gradients(weight_grads: jax.Array, assignments: jax.Array, k: int) -> jax.Array:
    """``dL/dc_k = sum_{i: idx_i = k} dL/dw_i`` for ``w = c[idx]``; ``[k]``.

    Entries with a negative assignment (pruned zeros) contribute nothing.
    """
    flat_idx = assignments.ravel()
    grads = jnp.where(flat_idx >= 0, weight_grads.ravel(), 0.0)
    return jax.ops.segment_sum(grads, jnp.maximum(flat_idx, 0), num_segments=k)


class TiedState(NamedTuple):
    inner: Any


def tie_to_centroids(tx: optax.GradientTransformation, assignments: dict[str, Any],
                     num_centroids: dict[str, int]) -> optax.GradientTransformation:
    """Optimise shared centroids instead of individual weights.

    Args:
      tx: the optimiser to run on centroids (and on untied leaves).
      assignments: ``{leaf path: int [*shape]}`` centroid index per weight
        (``-1`` for weights fixed at 0) for the tied leaves; every other leaf
        trains normally.
      num_centroids: ``{leaf path: k}`` for the same leaves.

    The inner optimiser sees each tied leaf as its centroid vector ``[k]``
    (gradient: :func:`centroid_gradients`); the resulting centroid update is
    broadcast back to every weight of the cluster, so weights that start
    equal to their centroid stay shared.

    References: Han, Mao & Dally, "Deep Compression", ICLR 2016 (sec. 3.1).
    """
    tied = {path: jnp.asarray(idx, jnp.int32) for path, idx in assignments.items()}
    is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)  # noqa: E731

    def to_centroids(tree: Any, reduce: str) -> Any:
        # Flax partitioning boxes are leaves here: a tied kernel's centroid
        # vector [k] drops the kernel's axis names (it is replicated); untied
        # leaves keep theirs, so their optimiser state shards like them.
        def leaf(key_path: Any, x: Any) -> Any:
            path = path_str(key_path)
            if path not in tied:
                return x
            x = nn.unbox(x)
            idx, k = tied[path], num_centroids[path]
            sums = centroid_gradients(x, idx, k)
            if reduce == "sum":
                return sums
            counts = jax.ops.segment_sum((idx.ravel() >= 0).astype(x.dtype), jnp.maximum(idx.ravel(), 0), k)
            return sums / jnp.maximum(counts, 1)

        return jax.tree_util.tree_map_with_path(leaf, tree, is_leaf=is_box)

    def to_weights(updates: Any, like: Any) -> Any:
        def leaf(path: str, u: jax.Array, p: jax.Array) -> jax.Array:
            if path not in tied:
                return u
            idx = tied[path]
            return jnp.where(idx >= 0, u[jnp.maximum(idx, 0)], 0.0).astype(p.dtype)

        return map_with_path(leaf, updates, like)

    def init(params: Any) -> TiedState:
        return TiedState(tx.init(to_centroids(params, "mean")))

    def update(grads: Any, state: TiedState, params: Any = None) -> tuple[Any, TiedState]:
        centroid_params = None if params is None else to_centroids(params, "mean")
        updates, inner = tx.update(to_centroids(grads, "sum"), state.inner, centroid_params)
        return to_weights(updates, grads), TiedState(inner)

    return optax.GradientTransformation(init, update)


def _symbol_stream(path: str, symbols: np.ndarray, alphabet: int, use_huffman: bool) -> tuple[dict, int, int]:
    """Parts and (stream bytes, table bytes) for a symbol stream, Huffman or fixed width."""
    if use_huffman:
        coded = huffman.encode(symbols, alphabet)
        if coded is not None:
            stream, lengths, _ = coded
            return {"stream": stream, "lengths": lengths}, stream.size, lengths.size
    bits = max(1, math.ceil(math.log2(alphabet)))
    return {"indices": pack_bits(symbols, bits), "index_bits": np.asarray(bits, np.int8)}, \
        packed_nbytes(symbols.size, bits), 0


def _read_symbols(parts: dict[str, np.ndarray], count: int) -> np.ndarray:
    if "stream" in parts:
        return huffman.decode(parts["stream"], parts["lengths"], count)
    return unpack_bits(parts["indices"], int(parts["index_bits"]), count)


@register_decoder("codebook")
def decode_codebook(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Centroid per index; symbol ``k`` (one past the centroids) or an unset mask bit is 0."""
    size = int(np.prod(shape))
    table = np.concatenate([parts["centroids"].astype(np.float32), np.zeros(1, np.float32)])
    if "mask" in parts:
        keep = unpack_mask(parts["mask"], size)
        out = np.zeros(size, np.float32)
        out[keep] = table[_read_symbols(parts, int(keep.sum()))]
        return out.reshape(shape)
    return table[_read_symbols(parts, size)].reshape(shape)


def kmeans_leaf(path: str, w: np.ndarray, bits: int, *, use_huffman: bool = True,
                iterations: int = 30) -> tuple[np.ndarray, tuple[LeafStorage, tuple], np.ndarray]:
    """Clusters one kernel; returns (shared float value, (storage, encoding), assignments with -1 at zeros)."""
    k = 2 ** bits
    flat = np.asarray(w, np.float32).ravel()
    nonzero = flat != 0
    pruned = not nonzero.all()
    centroids, idx = kmeans_1d(flat[nonzero] if pruned else flat, k, iterations)
    assignments = np.full(flat.size, -1, np.int64)
    assignments[nonzero if pruned else slice(None)] = idx
    candidates = []
    # Dense layout: one symbol per weight; zeros (if any) are the extra symbol k.
    symbols = np.where(assignments >= 0, assignments, k)
    parts, value, table = _symbol_stream(path, symbols, k + 1 if pruned else k, use_huffman)
    candidates.append((value + table, {"centroids": centroids, **parts}, value, 0, table))
    if pruned:  # sparse layout: bitmask + symbols of the non-zeros
        parts, value, table = _symbol_stream(path, idx, k, use_huffman)
        mask_bytes = math.ceil(flat.size / 8)
        candidates.append((value + table + mask_bytes, {"centroids": centroids, "mask": pack_mask(nonzero), **parts},
                           value, mask_bytes, table))
    _, parts, value, index_bytes, table = min(candidates, key=lambda c: c[0])
    shared = decode_codebook(parts, w.shape).astype(w.dtype)
    storage = LeafStorage(path, w.shape, "codebook", value, index_bytes, k * 4 + table,
                          int(np.count_nonzero(shared)))
    return shared, (storage, ("codebook", parts)), assignments.reshape(w.shape)


def kmeans_params(artifact: Compressed, *, bits: int = 4, include: Any = ".*", exclude: Any = (),
                  huffman_coding: bool = True, iterations: int = 30) -> Compressed:
    """Deep-Compression weight sharing of the selected kernels (``2^bits`` centroids per layer).

    References: Han, Mao & Dally, "Deep Compression", ICLR 2016.
    """
    if not 1 <= bits <= 8:
        raise ConfigError(f"kmeans.bits must be in 1..8; got {bits!r}")
    selection = select(artifact.params, include, exclude, field="kmeans.include")
    updates: dict[str, tuple] = {}
    skipped: list[str] = []

    def visit(path: str, leaf: Any, chosen: bool) -> Any:
        if not chosen:
            return leaf
        if artifact.encodings.get(path, ("dense", {}))[0] in LOSSY_CODECS:
            skipped.append(path)
            return leaf
        shared, update, _ = kmeans_leaf(path, np.asarray(leaf), bits, use_huffman=huffman_coding,
                                        iterations=iterations)
        updates[path] = update
        return shared

    params = map_with_path(visit, artifact.params, selection)
    step = {"method": "kmeans", "bits": bits, "huffman": huffman_coding, "leaves": sorted(updates),
            "skipped": skipped}
    return artifact.with_leaves(step, params, updates)


def codebook_assignments(artifact: Compressed) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """``({path: assignments}, {path: k})`` of an artifact's codebook leaves, for
    :func:`tie_to_centroids` (``-1`` marks weights fixed at 0)."""
    assignments: dict[str, np.ndarray] = {}
    ks: dict[str, int] = {}

    def leaf(path: str, value: Any) -> None:
        codec, parts = artifact.encodings.get(path, ("dense", {}))
        if codec != "codebook":
            return
        k = int(parts["centroids"].size)
        shape = np.shape(value)
        size = int(np.prod(shape))
        if "mask" in parts:
            keep = unpack_mask(parts["mask"], size)
            idx = np.full(size, -1, np.int32)
            idx[keep] = _read_symbols(parts, int(keep.sum()))
        else:
            idx = _read_symbols(parts, size).astype(np.int32)
            idx[idx == k] = -1  # the zero symbol
        assignments[path], ks[path] = idx.reshape(shape), k

    map_with_path(leaf, artifact.params)
    return assignments, ks


# ----------------------------------------------------------------------------
# Hashing trick

_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35


def _fmix32(h: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser (a bijection of uint32 with good avalanche)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_M1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_M2)
    return h ^ (h >> 16)


def layer_seed(path: str, seed: int = 0) -> int:
    """A per-layer 32-bit seed: CRC32 of the path mixed with a global seed."""
    return (zlib.crc32(path.encode()) ^ (seed * 0x9E3779B1)) & 0xFFFFFFFF


def hash_buckets(size: int, buckets: int, seed: int) -> tuple[jax.Array, jax.Array]:
    """Bucket ``h(i)`` in ``[0, buckets)`` and sign ``xi(i)`` in {-1, +1} for flat positions ``0..size-1``.

    Jittable (uint32 arithmetic only) and deterministic across hosts.
    """
    position = jnp.arange(size, dtype=jnp.uint32)
    seed32 = jnp.uint32(seed & 0xFFFFFFFF)
    bucket = _fmix32(position ^ seed32) % jnp.uint32(buckets)
    # A second, independent stream for the sign: the golden-ratio offset decorrelates it.
    sign_bit = _fmix32(position + jnp.uint32(0x9E3779B9) ^ _fmix32(seed32)) >> 31
    return bucket.astype(jnp.int32), 1.0 - 2.0 * sign_bit.astype(jnp.float32)


def virtual_weight(theta: jax.Array, shape: tuple[int, ...], seed: int) -> jax.Array:
    """``W_i = xi(i) * theta[h(i)]`` reshaped to ``shape``."""
    bucket, sign = hash_buckets(int(np.prod(shape)), theta.shape[0], seed)
    return (sign * jnp.take(theta, bucket)).astype(theta.dtype).reshape(shape)


def hash_project(w: np.ndarray, buckets: int, seed: int) -> np.ndarray:
    """Least-squares ``theta`` for a given kernel: the signed mean of each bucket ``[buckets]``."""
    bucket, sign = (np.asarray(a) for a in hash_buckets(w.size, buckets, seed))
    sums = np.bincount(bucket, weights=sign * np.asarray(w, np.float64).ravel(), minlength=buckets)
    counts = np.bincount(bucket, minlength=buckets)
    return (sums / np.maximum(counts, 1)).astype(np.float32)


@register_decoder("hashed")
def decode_hashed(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(virtual_weight(jnp.asarray(parts["theta"]), shape, int(parts["seed"])))


class HashedDense(nn.Module):
    """A Dense layer whose ``[in, features]`` kernel is hashed into ``buckets`` shared parameters.

    Shapes: inputs ``[..., in]`` -> ``[..., features]``.

    References: Chen et al., "Compressing Neural Networks with the Hashing Trick", ICML 2015.
    """

    features: int
    buckets: int
    seed: int = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        theta = self.param("theta", nn.initializers.normal(1.0 / math.sqrt(fan_in)), (self.buckets,))
        kernel = virtual_weight(theta, (fan_in, self.features), self.seed)
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


def hash_params(artifact: Compressed, *, compression: float = 8.0, include: Any = ".*", exclude: Any = (),
                seed: int = 0) -> Compressed:
    """Replaces the selected kernels by hashed ones with ``ceil(size / compression)`` buckets each.

    The runnable params hold the virtual (dense) weights, so the unchanged
    model runs them; the compact form stores only ``theta`` and the seed.

    References: Chen et al., ICML 2015.
    """
    if not compression > 1:
        raise ConfigError(f"hash.compression must be > 1; got {compression!r}")
    selection = select(artifact.params, include, exclude, field="hash.include")
    updates: dict[str, tuple] = {}

    def visit(path: str, leaf: Any, chosen: bool) -> Any:
        if not chosen or artifact.encodings.get(path, ("dense", {}))[0] in LOSSY_CODECS:
            return leaf
        w = np.asarray(leaf)
        buckets = max(1, math.ceil(w.size / compression))
        s = layer_seed(path, seed)
        theta = hash_project(w, buckets, s)
        parts = {"theta": theta, "seed": np.asarray(s, np.uint32)}
        value = decode_hashed(parts, w.shape).astype(w.dtype)
        updates[path] = (LeafStorage(path, w.shape, "hashed", theta.nbytes, 0, 4, int(np.count_nonzero(value))),
                         ("hashed", parts))
        return value

    params = map_with_path(visit, artifact.params, selection)
    step = {"method": "hash", "compression": compression, "seed": seed, "leaves": sorted(updates)}
    return artifact.with_leaves(step, params, updates)


@register_method("kmeans")
def kmeans_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: bits (1..8; 2^bits centroids per layer), include, exclude, huffman (true), iterations."""
    m = "kmeans"
    opt.check_known(m, options, ("bits", "include", "exclude", "huffman", "iterations"))
    return kmeans_params(artifact, bits=opt.integer(m, options, "bits", 4, low=1, high=8),
                         include=opt.rules(m, options, "include", ".*"),
                         exclude=opt.rules(m, options, "exclude", ""),
                         huffman_coding=opt.boolean(m, options, "huffman", True),
                         iterations=opt.integer(m, options, "iterations", 30, low=1))


@register_method("hash")
def hash_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: compression (> 1: weights per stored parameter), include, exclude, seed."""
    m = "hash"
    opt.check_known(m, options, ("compression", "include", "exclude", "seed"))
    compression = opt.number(m, options, "compression", 8.0, low=1.0, low_open=True)
    return hash_params(artifact, compression=compression, include=opt.rules(m, options, "include", ".*"),
                       exclude=opt.rules(m, options, "exclude", ""), seed=opt.integer(m, options, "seed", 0, low=0))
