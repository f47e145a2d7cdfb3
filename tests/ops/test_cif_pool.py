"""Tests of jaxcompress.ops.cif_pool against an independent NumPy loop.

Ground truth is ``cif_numpy_reference.cif_loop`` (a sequential integrate-and-fire
loop in float64), direct NumPy formulas (average pooling, hand-worked tails)
and finite differences of that loop; the implementations are also checked
against each other, values and gradients.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.ops import (
    CifPoolOutput,
    cif_pool,
    cif_weights,
    mix_alpha,
    pool_like,
    upsample,
)
from tests.ops.cif_numpy_reference import cif_loop, pad_rows

# The public implementations, plus the GPU (Triton-flavoured) kernel run in the
# Pallas interpreter; "pallas" itself runs the TPU-flavoured kernel on CPU.
IMPLS = ["dense", "xla", "pallas", "pallas_interpret_gpu"]
FAST_IMPLS = ["xla", "pallas", "pallas_interpret_gpu"]

# One shape for most tests, so every kernel compiles once per dtype.
B, S, D, T = 3, 150, 12, 100


def _case(seed: int = 0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, S, D)).astype(dtype)
    alpha = rng.uniform(0.0, 1.0, size=(B, S)).astype(dtype)
    mask = np.arange(S)[None, :] < np.array([S, 97, 31])[:, None]
    mask[0, 40:45] = False  # a hole in the middle of a row
    return x, alpha, mask


def _np(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a, jnp.float32))


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("training", [True, False])
def test_matches_numpy_loop(impl, training):
    x, alpha, mask = _case()
    out = cif_pool(x, alpha, mask, num_frames=T, training=training, implementation=impl)
    want, lengths = pad_rows(cif_loop(x, alpha, mask, training=training), T)
    assert isinstance(out, CifPoolOutput)
    assert out.frames.shape == (B, T, D) and out.frames.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
    np.testing.assert_array_equal(np.asarray(out.mask), np.arange(T)[None] < lengths[:, None])
    np.testing.assert_allclose(_np(out.frames), want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("low, high", [(0.3, 1.0), (0.01, 0.1)])
def test_gather_forward_and_its_scatter_fallback_match_numpy_loop(low, high):
    # alpha >= 0.3: every output bin pools <= 4 frames (the gather path); alpha <= 0.1: runs of 10+ frames,
    # longer than the gather's cap, so the same call takes the scatter fallback. Both must equal the loop.
    from jaxcompress.ops._cif_pool import _GATHER_RUN_CAP

    x, _, mask = _case(5)
    alpha = np.random.default_rng(6).uniform(low, high, size=(B, S)).astype(np.float32)
    weights, _ = cif_weights(alpha, mask, num_frames=T)
    index = np.asarray(weights.index)
    runs = max(np.bincount(row[m]).max() for row, m in zip(index, mask))
    assert (runs <= _GATHER_RUN_CAP) == (low == 0.3)
    out = cif_pool(x, alpha, mask, num_frames=T, implementation="xla")
    want, _ = pad_rows(cif_loop(x, alpha, mask, training=True), T)
    np.testing.assert_allclose(_np(out.frames), want, atol=2e-5, rtol=1e-5)


def test_complete_outputs_are_weighted_averages():
    _, alpha, mask = _case(1)
    weights, lengths = cif_weights(alpha, mask, num_frames=S)
    idx, lo, hi = (np.asarray(a) for a in (weights.index, weights.lo, weights.hi))
    per_bin = np.zeros((B, S + 2))
    for b in range(B):
        np.add.at(per_bin[b], idx[b], lo[b])
        np.add.at(per_bin[b], idx[b] + 1, hi[b])
    totals = np.where(mask, alpha, 0).astype(np.float64).sum(1)
    np.testing.assert_array_equal(np.asarray(lengths), np.floor(totals))
    for b in range(B):
        np.testing.assert_allclose(per_bin[b, : lengths[b]], 1.0, atol=1e-5)
    # Every frame's two weights add up to its alpha (nothing lost, nothing made up).
    np.testing.assert_allclose(lo + hi, np.where(mask, alpha, 0), atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_alpha_one_is_identity(impl):
    x, _, _ = _case()
    out = cif_pool(x, np.ones((B, S), np.float32), num_frames=T, implementation=impl)
    np.testing.assert_array_equal(np.asarray(out.lengths), [T] * B)  # capped at T
    np.testing.assert_allclose(_np(out.frames), x[:, :T], atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_alpha_one_over_k_is_average_pooling(impl, k):
    x, _, _ = _case()
    out = cif_pool(x, np.full((B, S), 1.0 / k, np.float32), num_frames=T, implementation=impl)
    n = S // k
    want = x[:, : n * k].astype(np.float64).reshape(B, n, k, D).mean(axis=2)
    np.testing.assert_array_equal(np.asarray(out.lengths), [n] * B)
    np.testing.assert_allclose(_np(out.frames)[:, :n], want, atol=1e-5)
    assert not np.any(_np(out.frames)[:, n:])


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_and_full_mask(impl):
    x, alpha, _ = _case()
    empty = cif_pool(x, alpha, np.zeros((B, S), bool), num_frames=T, implementation=impl)
    assert not np.any(np.asarray(empty.lengths)) and not np.any(np.asarray(empty.mask))
    assert not np.any(_np(empty.frames))
    grads = jax.grad(
        lambda x, a: jnp.sum(cif_pool(x, a, jnp.zeros((B, S), bool), num_frames=T,
                                      implementation=impl).frames),
        argnums=(0, 1),
    )(x, alpha)
    assert all(np.all(np.isfinite(_np(g))) and not np.any(_np(g)) for g in grads)
    full = cif_pool(x, alpha, np.ones((B, S), bool), num_frames=T, implementation=impl)
    none = cif_pool(x, alpha, None, num_frames=T, implementation=impl)
    want, lengths = pad_rows(cif_loop(x, alpha), T)
    np.testing.assert_array_equal(np.asarray(full.lengths), lengths)
    np.testing.assert_allclose(_np(full.frames), want, atol=2e-5)
    np.testing.assert_array_equal(_np(full.frames), _np(none.frames))


def test_many_frames_per_output_and_truncation():
    # alpha = 0.01: each output spans ~100 frames, so every kernel block walks
    # several input chunks; num_frames below the natural length truncates.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 1000, 5)).astype(np.float32)
    alpha = rng.uniform(0.005, 0.015, size=(2, 1000)).astype(np.float32)
    want, lengths = pad_rows(cif_loop(x, alpha), 6)
    assert lengths.tolist() == [6, 6]  # natural lengths are ~10
    for impl in ["dense", "xla", "pallas"]:
        out = cif_pool(x, alpha, num_frames=6, implementation=impl)
        np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
        np.testing.assert_allclose(_np(out.frames), want, atol=2e-5)


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_long_sequence(impl):
    rng = np.random.default_rng(4)
    s = 3000
    x = rng.normal(size=(2, s, 8)).astype(np.float32)
    alpha = rng.uniform(0.0, 1.0, size=(2, s)).astype(np.float32)
    mask = np.arange(s)[None] < np.array([s, 2345])[:, None]
    want, lengths = pad_rows(cif_loop(x, alpha, mask), s)
    out = cif_pool(x, alpha, mask, implementation=impl)  # default num_frames = S
    np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
    # Positions are accumulated with compensated float32 sums, so even ~1500
    # frames in, the outputs match float64 to float32 precision.
    np.testing.assert_allclose(_np(out.frames), want, atol=5e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_bfloat16_inputs(impl):
    x, alpha, mask = _case(5)
    xb, ab = jnp.asarray(x, jnp.bfloat16), jnp.asarray(alpha, jnp.bfloat16)
    out = cif_pool(xb, ab, mask, num_frames=T, implementation=impl)
    assert out.frames.dtype == jnp.bfloat16
    want, lengths = pad_rows(cif_loop(_np(xb), _np(ab), mask), T)
    np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
    np.testing.assert_allclose(_np(out.frames), want, atol=3e-2, rtol=2e-2)
    gx, ga = jax.grad(
        lambda x, a: jnp.sum(cif_pool(x, a, mask, num_frames=T, implementation=impl)
                             .frames.astype(jnp.float32) ** 2),
        argnums=(0, 1),
    )(xb, ab)
    assert gx.dtype == jnp.bfloat16 and ga.dtype == jnp.bfloat16
    assert np.all(np.isfinite(_np(gx))) and np.all(np.isfinite(_np(ga)))


def test_inference_tail_hand_worked():
    x = np.array([[[1.0], [2.0], [4.0]]], np.float32)
    alpha = np.array([[0.6, 0.6, 0.6]], np.float32)  # mass 1.8
    train = cif_pool(x, alpha, num_frames=3, training=True)
    np.testing.assert_array_equal(np.asarray(train.lengths), [1])
    np.testing.assert_allclose(_np(train.frames)[0, :, 0], [0.6 + 0.8, 0, 0], atol=1e-6)
    infer = cif_pool(x, alpha, num_frames=3, training=False)
    np.testing.assert_array_equal(np.asarray(infer.lengths), [2])
    # Tail: 0.2 of frame 2 and 0.6 of frame 3, renormalised by 0.8.
    np.testing.assert_allclose(
        _np(infer.frames)[0, :, 0], [1.4, (0.2 * 2 + 0.6 * 4) / 0.8, 0], atol=1e-6
    )
    # A tail below the threshold is dropped at inference too.
    low = cif_pool(x, np.array([[0.6, 0.6, 0.1]], np.float32), num_frames=3, training=False)
    np.testing.assert_array_equal(np.asarray(low.lengths), [1])
    high_thr = cif_pool(x, alpha, num_frames=3, training=False, tail_threshold=0.9)
    np.testing.assert_array_equal(np.asarray(high_thr.lengths), [1])


def test_min_frames_guard():
    x = np.arange(12, dtype=np.float32).reshape(2, 6, 1)
    alpha = np.array([[0.2, 0.3, 0.1, 0.4, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    out = cif_pool(x, alpha, num_frames=6, min_frames=2)
    # Row 0: mass 1.0 is scaled to 2 + 1e-4, giving two outputs. Row 1 has one
    # frame with weight, which cannot exceed beta: it yields one output.
    np.testing.assert_array_equal(np.asarray(out.lengths), [2, 1])
    want, lengths = pad_rows(cif_loop(x, alpha, min_frames=2), 6)
    np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
    np.testing.assert_allclose(_np(out.frames), want, atol=1e-5)
    plain = cif_pool(x, alpha, num_frames=6)
    np.testing.assert_array_equal(np.asarray(plain.lengths), [1, 0])


def test_beta_threshold():
    x, alpha, mask = _case(6)
    beta = 2.0
    out = cif_pool(x, 2.0 * alpha, mask, num_frames=T, beta=beta, implementation="xla")
    want, lengths = pad_rows(cif_loop(x, 2.0 * alpha, mask, beta=beta), T)
    np.testing.assert_array_equal(np.asarray(out.lengths), lengths)
    np.testing.assert_allclose(_np(out.frames), want, atol=5e-5)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


def _loss(x, alpha, lam, mask, readout, impl):
    out = cif_pool(x, mix_alpha(alpha, lam), mask, num_frames=T, implementation=impl)
    return jnp.sum(out.frames * readout) + 0.1 * jnp.sum(out.frames**2)


@functools.cache
def _dense_grads():
    x, alpha, mask = _case(7)
    readout = np.random.default_rng(8).normal(size=(B, T, D)).astype(np.float32)
    args = (x, alpha, jnp.float32(0.7), mask, readout)
    return args, jax.grad(_loss, argnums=(0, 1, 2))(*args, "dense")


@pytest.mark.parametrize("impl", [*FAST_IMPLS, "xla_autodiff"])
def test_gradients_match_dense_autodiff(impl):
    args, want = _dense_grads()
    got = jax.jit(jax.grad(_loss, argnums=(0, 1, 2)), static_argnums=5)(*args, impl)
    for name, g, w in zip(["x", "alpha", "lambda"], got, want):
        np.testing.assert_allclose(_np(g), _np(w), atol=2e-5, rtol=2e-5, err_msg=name)
    assert np.abs(_np(got[2])) > 0  # the mixing coefficient gets a gradient


def test_alpha_gradient_matches_finite_differences_of_loop():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(1, 12, 3))
    alpha = rng.uniform(0.1, 0.9, size=(1, 12))
    readout = rng.normal(size=(12, 3))

    def loop_loss(a):
        (rows,) = cif_loop(x, a, fire_tol=1e-12)
        return float(np.sum(rows * readout[: len(rows)]))

    h = 1e-6
    fd = np.zeros(12)
    for s in range(12):
        e = np.zeros((1, 12))
        e[0, s] = h
        fd[s] = (loop_loss(alpha + e) - loop_loss(alpha - e)) / (2 * h)
    for impl in ["dense", "xla"]:
        g = jax.grad(
            lambda a: jnp.sum(cif_pool(jnp.asarray(x, jnp.float32), a, num_frames=12,
                                       implementation=impl).frames * readout)
        )(jnp.asarray(alpha, jnp.float32))
        np.testing.assert_allclose(_np(g)[0], fd, atol=2e-4, rtol=1e-3)


# ---------------------------------------------------------------------------
# Weights, pooling targets, upsampling, mixing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_pool_like_matches_joint_pooling(impl):
    x, alpha, mask = _case(10)
    targets = np.random.default_rng(11).normal(size=(B, S, 4)).astype(np.float32)
    joint = cif_pool(np.concatenate([x, targets], -1), alpha, mask, num_frames=T,
                     implementation=impl)
    out = cif_pool(x, alpha, mask, num_frames=T, implementation=impl)
    pooled = pool_like(targets, out.weights, implementation=impl)
    np.testing.assert_allclose(_np(pooled), _np(joint.frames)[..., D:], atol=1e-5)
    pooled_1d = pool_like(targets[..., 0], out.weights, implementation=impl)
    np.testing.assert_allclose(_np(pooled_1d), _np(joint.frames)[..., D], atol=1e-5)


def test_pool_like_with_weights_only():
    x, alpha, mask = _case(12)
    weights, lengths = cif_weights(alpha, mask, num_frames=T, training=False)
    out = cif_pool(x, alpha, mask, num_frames=T, training=False)
    np.testing.assert_array_equal(np.asarray(lengths), np.asarray(out.lengths))
    np.testing.assert_allclose(_np(pool_like(x, weights)), _np(out.frames), atol=1e-6)


def test_upsample():
    x, _, _ = _case(13)
    # alpha = 1/3: every frame of a window gets the window average back.
    out = cif_pool(x, np.full((B, S), 1 / 3, np.float32), num_frames=T)
    up = upsample(out.frames, out.weights)
    avg = x.astype(np.float64).reshape(B, S // 3, 3, D).mean(2)
    # (1/3 is not exact in float32, so boundaries drift by ~1e-5 frames at the end.)
    np.testing.assert_allclose(_np(up), np.repeat(avg, 3, axis=1), atol=5e-5)
    # alpha = 1: upsampling the identity gives the input back.
    ident = cif_pool(x[:, :T], np.ones((B, T), np.float32))
    np.testing.assert_allclose(_np(upsample(ident.frames, ident.weights)), x[:, :T], atol=1e-6)
    # Constant pooled frames upsample to that constant on every frame that fed a
    # kept output, and to zero on padding and on the dropped tail.
    _, alpha, mask = _case(14)
    out = cif_pool(x, alpha, mask, num_frames=T)
    ones = upsample(out.mask.astype(jnp.float32), out.weights)
    w = out.weights
    fed_kept = mask & (np.asarray(w.index) < np.asarray(out.lengths)[:, None])
    np.testing.assert_allclose(_np(ones)[fed_kept], 1.0, atol=1e-6)
    assert not np.any(_np(ones)[~mask])


def test_mix_alpha():
    alpha = np.random.default_rng(15).uniform(size=(B, S)).astype(np.float32)
    np.testing.assert_allclose(_np(mix_alpha(alpha, 0.0)), 1.0)
    np.testing.assert_allclose(_np(mix_alpha(alpha, 1.0)), alpha, atol=1e-7)
    np.testing.assert_allclose(_np(mix_alpha(alpha, 0.25)), 0.75 + 0.25 * alpha, atol=1e-7)
    np.testing.assert_allclose(_np(mix_alpha(alpha, 1.5)), 0.5 * alpha, atol=1e-7)
    np.testing.assert_allclose(
        _np(mix_alpha(alpha, 1.0 - 1e-4)), _np(mix_alpha(alpha, 1.0 + 1e-4)), atol=1e-3
    )
    per_row = _np(mix_alpha(alpha, jnp.array([0.0, 1.0, 0.5])))
    np.testing.assert_allclose(per_row[0], 1.0)
    np.testing.assert_allclose(per_row[2], 0.5 + 0.5 * alpha[2], atol=1e-7)


def test_traced_once_for_varying_lambda_and_lengths():
    traces = []
    x, alpha, _ = _case(16)

    @jax.jit
    def f(x, alpha, lam, n_valid):
        traces.append(1)
        mask = jnp.arange(S)[None, :] < n_valid[:, None]
        return cif_pool(x, mix_alpha(alpha, lam), mask, num_frames=T, implementation="xla").frames

    for lam, n in [(0.1, [150, 20, 3]), (0.9, [5, 150, 77]), (0.5, [1, 1, 1])]:
        f(x, alpha, jnp.float32(lam), jnp.array(n))
    assert len(traces) == 1


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(x=np.zeros((3, 4))), r"x must have shape \[batch, frames, features\]"),
        (dict(x=np.zeros((2, 4, 3), np.int32)), r"x must be a floating-point"),
        (dict(alpha=np.zeros((2, 5))), r"alpha must have shape .*\(2, 4\)"),
        (dict(mask=np.ones((2, 3), bool)), r"mask must have shape .*\(2, 4\)"),
        (dict(alpha=np.array([[0.5, -0.1, 0.2, 0.3]] * 2)),
         r"alpha must be non-negative.*\[0, beta"),
        (dict(alpha=np.full((2, 4), 1.5)), r"alpha must be at most beta=1\.0"),
        (dict(implementation="cuda"),
         r"implementation must be one of 'auto', 'dense', 'xla', 'pallas'"),
        (dict(num_frames=0), r"num_frames must be a positive integer"),
        (dict(beta=0.0), r"beta must be a positive number"),
        (dict(tail_threshold=1.5), r"tail_threshold must be in \(0, 1\]"),
        (dict(min_frames=-1), r"min_frames must be a non-negative integer"),
    ],
)
def test_bad_input_raises(kwargs, pattern):
    args = dict(x=np.zeros((2, 4, 3), np.float32), alpha=np.full((2, 4), 0.5, np.float32),
                mask=None)
    args.update(kwargs)
    x, alpha, mask = args.pop("x"), args.pop("alpha"), args.pop("mask")
    with pytest.raises(ValueError, match=pattern):
        cif_pool(x, alpha, mask, **args)


def test_negative_alpha_on_padding_is_ignored():
    alpha = np.array([[0.5, 0.5, -1.0]], np.float32)
    out = cif_pool(np.ones((1, 3, 2), np.float32), alpha, np.array([[True, True, False]]))
    np.testing.assert_array_equal(np.asarray(out.lengths), [1])


def test_helpers_reject_bad_shapes():
    out = cif_pool(np.ones((2, 4, 3), np.float32), np.full((2, 4), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"values must have shape"):
        pool_like(np.ones((2, 5, 3), np.float32), out.weights)
    with pytest.raises(ValueError, match=r"implementation must be one of"):
        pool_like(np.ones((2, 4, 3), np.float32), out.weights, implementation="fast")
    with pytest.raises(ValueError, match=r"frames must have shape"):
        upsample(np.ones((2, 3, 3), np.float32), out.weights)
    with pytest.raises(ValueError, match=r"lam must be a scalar or have shape \[batch\]"):
        mix_alpha(np.ones((2, 4), np.float32), np.ones((2, 2)))
