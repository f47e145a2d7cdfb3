"""Weight sharing: k-means against a slow loop, the centroid-gradient identity, Huffman, hashing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcompress.compress import huffman
from jaxcompress.compress import sharing as S
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.storage import entropy_bits, huffman_bits
from jaxcompress.errors import ConfigError

RNG = np.random.default_rng(2)


def slow_kmeans(values, k, iterations=30):
    """Plain Lloyd iterations with explicit nearest-centroid search (reference)."""
    c = [values.min() + i * (values.max() - values.min()) / (k - 1) for i in range(k)]
    for _ in range(iterations):
        groups = [[] for _ in range(k)]
        for v in values:
            groups[min(range(k), key=lambda j: (abs(v - c[j]), j))].append(v)
        c = [sum(g) / len(g) if g else c[j] for j, g in enumerate(groups)]
    return np.sort(np.asarray(c))


def test_kmeans_matches_a_slow_lloyd_loop():
    values = np.concatenate([RNG.normal(-1, 0.2, 60), RNG.normal(0.5, 0.1, 40), RNG.normal(2, 0.3, 30)])
    centroids, idx = S.kmeans_1d(values, 4)
    np.testing.assert_allclose(centroids, slow_kmeans(values, 4), rtol=1e-5)
    np.testing.assert_array_equal(idx, np.abs(values[:, None] - centroids[None]).argmin(1))


def test_centroid_gradient_is_the_segment_sum_of_weight_gradients():
    k = 5
    centroids = jnp.asarray(RNG.normal(size=k), jnp.float32)
    idx = jnp.asarray(RNG.integers(0, k, size=(6, 7)))
    x = jnp.asarray(RNG.normal(size=(3, 6)), jnp.float32)
    loss_w = lambda w: jnp.sum(jnp.tanh(x @ w) ** 2)  # noqa: E731
    direct = jax.grad(lambda c: loss_w(c[idx]))(centroids)
    grad_w = np.asarray(jax.grad(loss_w)(centroids[idx]))
    loop = np.zeros(k)
    for (i, j), cluster in np.ndenumerate(np.asarray(idx)):
        loop[cluster] += grad_w[i, j]
    np.testing.assert_allclose(S.centroid_gradients(jnp.asarray(grad_w), idx, k), loop, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(direct, loop, rtol=1e-5, atol=1e-6)


def test_tied_optimiser_keeps_clusters_shared_and_steps_by_the_segment_sum():
    k, lr = 4, 0.1
    idx = RNG.integers(0, k, size=(5, 3))
    idx[0, 0] = -1  # a pruned weight
    centroids = np.array([-1.0, -0.2, 0.3, 1.1], np.float32)
    params = {"w": jnp.asarray(np.where(idx >= 0, centroids[np.maximum(idx, 0)], 0.0), jnp.float32),
              "b": jnp.ones(3)}
    tx = S.tie_to_centroids(optax.sgd(lr), {"w": idx}, {"w": k})
    state = tx.init(params)
    grads = {"w": jnp.asarray(RNG.normal(size=(5, 3)), jnp.float32), "b": jnp.full(3, 2.0)}
    updates, state = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    expected = centroids - lr * np.asarray(S.centroid_gradients(grads["w"], jnp.asarray(idx), k))
    np.testing.assert_allclose(new["w"], np.where(idx >= 0, expected[np.maximum(idx, 0)], 0.0), rtol=1e-6)
    np.testing.assert_allclose(new["b"], 1.0 - lr * 2.0)


def test_huffman_hand_example_bounds_and_round_trip():
    # counts a=5, b=2, c=1, d=1 -> code lengths 1, 2, 3, 3 -> 5 + 4 + 3 + 3 = 15 bits.
    counts = np.array([5, 2, 1, 1])
    np.testing.assert_array_equal(huffman.code_lengths(counts), [1, 2, 3, 3])
    assert huffman_bits(counts) == 15
    symbols = np.repeat(np.arange(4), counts)
    RNG.shuffle(symbols)
    stream, lengths, total = huffman.encode(symbols, 4)
    assert total == 15 and stream.size == 2
    np.testing.assert_array_equal(huffman.decode(stream, lengths, symbols.size), symbols)
    # Canonical codes are prefix-free.
    codes = huffman.canonical_codes(lengths.astype(np.int64))
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths)]
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    # Random skewed streams: entropy <= Huffman < entropy + 1 bit per symbol.
    skewed = RNG.geometric(0.3, size=5000).clip(max=16) - 1
    c = np.bincount(skewed, minlength=16)
    assert entropy_bits(c) <= huffman_bits(c) < entropy_bits(c) + skewed.size
    stream, lengths, total = huffman.encode(skewed, 16)
    assert total == huffman_bits(c)
    np.testing.assert_array_equal(huffman.decode(stream, lengths, skewed.size), skewed)


def _params():
    return {"dense": {"kernel": RNG.normal(size=(40, 24)).astype(np.float32), "bias": np.zeros(24, np.float32)},
            "conv": {"kernel": RNG.normal(size=(3, 3, 4, 8)).astype(np.float32)}}


def test_kmeans_step_huffman_storage_is_exact_and_round_trips(tmp_path):
    params = _params()
    artifact = get_method("kmeans")(Compressed.from_params(params), {"bits": 3})
    w, shared = params["dense"]["kernel"], artifact.params["dense"]["kernel"]
    centroids = np.unique(shared)
    assert centroids.size <= 8
    # Each weight went to its nearest centroid.
    np.testing.assert_allclose(shared, centroids[np.abs(w[..., None] - centroids).argmin(-1)])
    counts = [np.count_nonzero(shared == c) for c in centroids]
    record = artifact.storage["dense/kernel"]
    assert record.format == "codebook" and record.value_bytes == math.ceil(huffman_bits(counts) / 8)
    assert record.meta_bytes == 8 * 4 + 8  # centroids + one code length per symbol
    artifact.save(tmp_path)
    stored = np.load(tmp_path / "encodings.npz")["dense/kernel::stream"]
    assert stored.size == record.value_bytes
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)


def test_kmeans_on_a_pruned_kernel_keeps_zeros(tmp_path):
    params = _params()
    w = params["dense"]["kernel"]
    w[np.abs(w) < 1.0] = 0.0
    artifact = S.kmeans_params(Compressed.from_params(params), bits=2, include="dense")
    shared = artifact.params["dense"]["kernel"]
    np.testing.assert_array_equal(shared == 0, w == 0)
    assert np.unique(shared[w != 0]).size <= 4
    artifact.save(tmp_path)
    np.testing.assert_array_equal(Compressed.load(tmp_path, artifact.params).params["dense"]["kernel"], shared)
    assignments, ks = S.codebook_assignments(artifact)
    assert ks == {"dense/kernel": 4} and np.all((assignments["dense/kernel"] == -1) == (w == 0))


def numpy_fmix32(h):
    h = np.asarray(h, np.uint64) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_hash_matches_a_numpy_port_and_is_jittable_and_deterministic():
    size, buckets, seed = 1000, 37, 12345
    bucket, sign = S.hash_buckets(size, buckets, seed)
    pos = np.arange(size, dtype=np.uint64)
    ref_bucket = numpy_fmix32(pos ^ seed) % buckets
    ref_sign = 1 - 2 * (numpy_fmix32(((pos + 0x9E3779B9) & 0xFFFFFFFF) ^ numpy_fmix32(seed)) >> 31).astype(np.int64)
    np.testing.assert_array_equal(bucket, ref_bucket)
    np.testing.assert_array_equal(sign, ref_sign)
    jitted = jax.jit(S.hash_buckets, static_argnums=(0, 1, 2))(size, buckets, seed)
    np.testing.assert_array_equal(jitted[0], bucket)
    assert 0.4 < float((sign > 0).mean()) < 0.6 and np.bincount(np.asarray(bucket)).min() > 10


def test_hashed_dense_gradient_scatter_adds_into_theta():
    layer = S.HashedDense(features=6, buckets=7, seed=3)
    x = jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32)
    params = layer.init(jax.random.key(0), x)["params"]
    grad = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2))(params)["theta"]
    kernel = np.asarray(S.virtual_weight(params["theta"], (5, 6), 3))
    grad_kernel = 2 * np.asarray(x).T @ (np.asarray(x) @ kernel + np.asarray(params["bias"]))
    bucket, sign = (np.asarray(a).reshape(5, 6) for a in S.hash_buckets(30, 7, 3))
    loop = np.zeros(7)
    for (i, j), b in np.ndenumerate(bucket):
        loop[b] += sign[i, j] * grad_kernel[i, j]
    np.testing.assert_allclose(grad, loop, rtol=1e-4, atol=1e-5)


def test_hash_step_stores_theta_only_and_round_trips(tmp_path):
    params = _params()
    artifact = get_method("hash")(Compressed.from_params(params), {"compression": 4.0})
    record = artifact.storage["dense/kernel"]
    assert record.format == "hashed" and record.total_bytes == math.ceil(40 * 24 / 4) * 4 + 4
    # theta is the least-squares fit: each bucket's value is the signed mean of its weights.
    w, virtual = params["dense"]["kernel"].ravel(), artifact.params["dense"]["kernel"].ravel()
    bucket, sign = (np.asarray(a) for a in S.hash_buckets(w.size, 240, S.layer_seed("dense/kernel")))
    for b in (0, 17, 239):
        members = bucket == b
        np.testing.assert_allclose(virtual[members] * sign[members], np.mean(w[members] * sign[members]), rtol=1e-5)
    artifact.save(tmp_path)
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method, options, field", [
    ("kmeans", {"bits": 9}, "kmeans.bits"), ("kmeans", {"bits": 2, "clusters": 3}, "clusters"),
    ("hash", {"compression": 1.0}, "hash.compression"), ("hash", {"include": "nope"}, "include"),
])
def test_bad_sharing_options_name_the_field(method, options, field):
    with pytest.raises(ConfigError, match=field):
        get_method(method)(Compressed.from_params(_params()), options)


def test_code_lengths_agree_with_the_storage_huffman_total():
    """Our per-symbol lengths and storage.huffman_bits (an independent merge-sum) agree."""
    for _ in range(20):
        counts = RNG.integers(1, 50, size=RNG.integers(2, 12))
        assert int((huffman.code_lengths(counts) * counts).sum()) == huffman_bits(counts)
