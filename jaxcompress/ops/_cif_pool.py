"""Masked sequence pooling by continuous integrate-and-fire (CIF).

Every input frame ``x[b, s]`` carries a weight ``alpha[b, s]`` in ``[0, beta]``.
Laid end to end on a "mass" axis (in units of ``beta``), frame ``s`` occupies
``[c[s-1], c[s])`` with ``c = cumsum(alpha) / beta``. Output frame ``t`` is the
weighted sum of everything that falls into ``[t, t + 1)``:

    W[s, t] = max(0, min(c[s], t + 1) - max(c[s-1], t))
    y[t]    = beta * sum_s W[s, t] * x[s]

so a complete output is a weighted average of a contiguous, fractionally bounded
window of inputs. ``alpha == 1`` is the identity and ``alpha == 1/k`` is average
pooling over ``k`` frames. Because ``alpha <= beta``, a frame reaches at most two
consecutive bins, which gives the O(S) "two-bin" form used by the fast paths:
frame ``s`` puts ``lo[s]`` into bin ``index[s] = floor(c[s-1])`` and ``hi[s]``
into bin ``index[s] + 1``.

Three interchangeable implementations compute the pooling sum:

* ``"dense"``: builds the [B, S, T] overlap matrix and contracts it (O(S*T)).
  The readable reference; plain autodiff.
* ``"xla"``: the two-bin form as row gathers over each output bin's run of
  input frames (O(S*D); a ``segment_sum`` scatter when a run is longer than
  8 frames), and a custom VJP whose backward is two row gathers (faster than
  autodiff through a scatter; see ``benchmarks/README.md``).
* ``"pallas"``: the two-bin form as banded one-hot matmuls in a Pallas kernel
  (Mosaic on TPU, Triton on GPU, the Pallas interpreter elsewhere), with a
  Pallas backward kernel behind a custom VJP.

``"auto"`` stages the Pallas kernel for TPU and GPU and the XLA path for every
other platform; the choice is made when the computation is lowered, so it is
right for ``jax.export`` to another platform too. (Export one platform at a
time: a compiled ``pallas_call`` has no CPU lowering, so a single multi-platform
export that includes ``cpu`` fails on the Pallas paths.)

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.ops import _cif_pool_pallas

Implementation = Literal["auto", "dense", "xla", "pallas"]
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "dense", "xla", "pallas")
# Private variants used by tests and benchmarks: a fixed Pallas kernel flavour in
# interpret mode, and the XLA path without its custom VJP.
_PRIVATE_IMPLEMENTATIONS = ("pallas_interpret_tpu", "pallas_interpret_gpu", "xla_autodiff")

# The min-frames guard rescales to ``min_frames + _GUARD_EPS`` so that floor()
# lands on ``min_frames`` despite rounding.
_GUARD_EPS = 1e-4


class CifWeights(NamedTuple):
    """The pooling weights in two-bin form, enough to pool or upsample anything.

    Attributes:
        index: [B, S] int32, first output bin of every input frame.
        lo: [B, S] float32, share of the frame in bin ``index`` (in units of beta).
        hi: [B, S] float32, share of the frame in bin ``index + 1``.
        scale: [B, T] float32, multiplier of every output bin: ``beta`` for a
            complete bin, ``beta / tail_mass`` for a kept inference tail and 0 for
            bins past the output length.
    """

    index: jax.Array
    lo: jax.Array
    hi: jax.Array
    scale: jax.Array


class CifPoolOutput(NamedTuple):
    """Result of :func:`cif_pool`.

    Attributes:
        frames: [B, T, D] pooled frames in the dtype of ``x``; zero past ``lengths``.
        mask: [B, T] bool, ``t < lengths``.
        lengths: [B] int32 number of output frames per row.
        weights: :class:`CifWeights` to pool targets (:func:`pool_like`) or to map
            back to the input rate (:func:`upsample`).
    """

    frames: jax.Array
    mask: jax.Array
    lengths: jax.Array
    weights: CifWeights


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _concrete(a: Any) -> np.ndarray | None:
    """The value of ``a`` as NumPy when it is known now (not under a trace)."""
    try:
        return np.asarray(a)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None  # traced (jit, grad of a jit, shard_map): checked by clamping instead


def _check_implementation(implementation: str) -> None:
    if implementation not in IMPLEMENTATIONS + _PRIVATE_IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {', '.join(map(repr, IMPLEMENTATIONS))}; "
            f"got {implementation!r}"
        )


def _validate(
    x_shape: tuple[int, ...],
    x_dtype: Any,
    alpha: Any,
    mask: Any,
    *,
    beta: float,
    num_frames: int | None,
    tail_threshold: float,
    min_frames: int,
    implementation: str,
) -> int:
    """Raises ValueError for bad arguments; returns the static output length."""
    _check_implementation(implementation)
    if len(x_shape) != 3:
        raise ValueError(f"x must have shape [batch, frames, features]; got shape {x_shape}")
    bsz, s, _ = x_shape
    if not jnp.issubdtype(x_dtype, jnp.floating):
        raise ValueError(f"x must be a floating-point array; got dtype {x_dtype}")
    if jnp.shape(alpha) != (bsz, s):
        raise ValueError(
            f"alpha must have shape [batch, frames] = {(bsz, s)} to match x; "
            f"got shape {jnp.shape(alpha)}"
        )
    if not jnp.issubdtype(jnp.result_type(alpha), jnp.floating):
        raise ValueError(
            f"alpha must be a floating-point array; got dtype {jnp.result_type(alpha)}"
        )
    if mask is not None and jnp.shape(mask) != (bsz, s):
        raise ValueError(
            f"mask must have shape [batch, frames] = {(bsz, s)} to match x; "
            f"got shape {jnp.shape(mask)}"
        )
    if s < 1:
        raise ValueError("x must have at least one frame (frames axis of size >= 1); got 0")
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"beta must be a positive number; got {beta!r}")
    if not (isinstance(tail_threshold, (int, float)) and 0.0 < tail_threshold <= 1.0):
        raise ValueError(f"tail_threshold must be in (0, 1]; got {tail_threshold!r}")
    if not (isinstance(min_frames, (int, np.integer)) and min_frames >= 0):
        raise ValueError(f"min_frames must be a non-negative integer; got {min_frames!r}")
    if num_frames is None:
        # alpha <= beta means at most one output per input frame, so S outputs
        # always suffice (the min-frames guard never pushes alpha above beta).
        num_frames = s
    if not (isinstance(num_frames, (int, np.integer)) and num_frames >= 1):
        raise ValueError(f"num_frames must be a positive integer (static); got {num_frames!r}")
    a = _concrete(alpha)
    if a is not None:
        valid = np.ones(a.shape, bool) if mask is None else _concrete(mask)
        if valid is not None:
            vals = a[valid.astype(bool)].astype(np.float64)
            if vals.size and not np.all(np.isfinite(vals)):
                raise ValueError("alpha must be finite on valid frames; got NaN or inf")
            if vals.size and vals.min() < 0:
                raise ValueError(
                    f"alpha must be non-negative (allowed range [0, beta={beta}]); "
                    f"got minimum {vals.min():.6g}"
                )
            if vals.size and vals.max() > beta * (1 + 1e-6):
                raise ValueError(
                    f"alpha must be at most beta={beta} (allowed range [0, beta]); "
                    f"got maximum {vals.max():.6g}"
                )
    return int(num_frames)


# ---------------------------------------------------------------------------
# Positions on the mass axis
# ---------------------------------------------------------------------------


def _compensated_cumsum(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Prefix sums along the last axis as an unevaluated float32 pair (hi + lo).

    A plain float32 cumsum over thousands of frames drifts by ~1e-4 frames,
    which moves bin boundaries and can make ``floor`` lose a whole output. The
    rounding error of every step is recovered exactly, however XLA orders the
    cumsum: ``c[s] - c[s-1]`` is exact once ``c`` has grown past ``a[s]``
    (Sterbenz), so ``r[s] = a[s] - (c[s] - c[s-1])`` is the mass the step lost,
    and ``c + cumsum(r)`` is the prefix sum to ~1e-7 absolute. The correction
    carries no gradient, so gradients equal those of ``cumsum``.
    """
    c = jnp.cumsum(a, axis=-1)
    c_prev = jnp.pad(c, ((0, 0), (1, 0)))[:, :-1]
    lost = jax.lax.stop_gradient(a - (c - c_prev))
    return c, jnp.cumsum(lost, axis=-1)


class _Edges(NamedTuple):
    """Frame intervals relative to their first bin: frame s covers index + [left, right)."""

    index: jax.Array  # [B, S] int32
    left: jax.Array  # [B, S] in [0, 1)
    right: jax.Array  # [B, S] in [left, left + 1]
    total_index: jax.Array  # [B] int32, floor of the total mass
    total_frac: jax.Array  # [B] float32, total mass - total_index


def _split(hi: jax.Array, lo: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(integer part, fraction) of hi + lo, with the fraction in [0, 1)."""
    base = jnp.floor(jax.lax.stop_gradient(hi))
    frac = (hi - base) + lo  # hi - base is exact for |hi| < 2**23
    carry = jnp.floor(jax.lax.stop_gradient(frac))
    return (base + carry).astype(jnp.int32), frac - carry


def _edges(a: jax.Array) -> _Edges:
    """Positions of every frame on the mass axis, from weights ``a`` (units of beta)."""
    c_hi, c_lo = _compensated_cumsum(a)
    # The left edge of frame s is the right edge of frame s-1 (shifted, not
    # c - a), so consecutive frames tile the axis without gaps or overlaps.
    pad = ((0, 0), (1, 0))
    l_hi, l_lo = jnp.pad(c_hi, pad)[:, :-1], jnp.pad(c_lo, pad)[:, :-1]
    index, left = _split(l_hi, l_lo)
    right = (c_hi - index.astype(jnp.float32)) + c_lo
    total_index, total_frac = _split(c_hi[:, -1], c_lo[:, -1])
    return _Edges(index, left, right, total_index, total_frac)


def _prepare_alpha(
    alpha: jax.Array, mask: jax.Array | None, beta: float, min_frames: int
) -> jax.Array:
    """Masked, clamped alpha in units of beta, with the optional min-frames guard."""
    a = alpha.astype(jnp.float32) / beta
    if mask is not None:
        a = jnp.where(mask, a, 0.0)  # padded frames carry no mass
    # Values are only checked eagerly; under jit clamp so the two-bin form holds.
    # ``where`` (not clip) keeps gradient 1 at exactly alpha == beta.
    a = jnp.where(a > 1.0, 1.0, jnp.where(a < 0.0, 0.0, a))
    if min_frames:
        # Rows with less than min_frames of mass are scaled up to min_frames + eps
        # (contrastive losses need negatives). The scale is capped so no frame
        # exceeds beta; a row with fewer valid frames than min_frames then gets
        # as many outputs as it has frames. Gradients flow through the scale.
        mass = jnp.sum(a, axis=-1, keepdims=True)
        peak = jnp.max(a, axis=-1, keepdims=True)
        safe_mass = jnp.where(mass > 0, mass, 1.0)
        safe_peak = jnp.where(peak > 0, peak, 1.0)
        scale = jnp.minimum((min_frames + _GUARD_EPS) / safe_mass, 1.0 / safe_peak)
        a = jnp.where((mass > 0) & (mass < min_frames), a * scale, a)
        a = jnp.minimum(a, 1.0)
    return a


def _complete_tol(total: jax.Array) -> jax.Array:
    """Slack under which an almost-full bin counts as complete.

    Covers float32 rounding of alpha itself (alpha = 1/k summed k times may land
    a few 1e-8 below 1 per bin): 1e-5 absolute, 1e-7 relative for long inputs.
    """
    return 1e-5 + 1e-7 * total


def _lengths_and_scale(
    edges: _Edges,
    num_frames: int,
    *,
    beta: float,
    training: bool,
    tail_threshold: float,
) -> tuple[jax.Array, jax.Array]:
    """Output lengths [B] and the per-bin scale [B, T]."""
    total = edges.total_index.astype(jnp.float32) + edges.total_frac
    full_last = edges.total_frac >= 1.0 - _complete_tol(total)
    n_full = edges.total_index + full_last.astype(jnp.int32)
    tail_mass = jnp.where(full_last, 0.0, edges.total_frac)
    t = jnp.arange(num_frames, dtype=jnp.int32)[None, :]
    if training:
        lengths = n_full
        scale_tail = jnp.zeros_like(tail_mass)
        keep = jnp.zeros_like(full_last)
    else:
        # Inference keeps the trailing partial bin when it holds enough mass and
        # renormalises it to a weighted average (weights summing to 1).
        keep = tail_mass >= tail_threshold
        lengths = n_full + keep.astype(jnp.int32)
        scale_tail = beta / jnp.where(keep, tail_mass, 1.0)
    lengths = jnp.minimum(lengths, num_frames)
    scale = jnp.where(
        t < lengths[:, None],
        jnp.where(keep[:, None] & (t == n_full[:, None]), scale_tail[:, None], beta),
        0.0,
    )
    return lengths.astype(jnp.int32), scale.astype(jnp.float32)


def _two_bin(edges: _Edges) -> tuple[jax.Array, jax.Array]:
    """Weights of every frame in bins index and index + 1 (units of beta)."""
    lo = jnp.minimum(edges.right, 1.0) - edges.left
    hi = jnp.maximum(edges.right - 1.0, 0.0)
    return lo, hi


def cif_weights(
    alpha: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_frames: int | None = None,
    beta: float = 1.0,
    training: bool = True,
    tail_threshold: float = 0.5,
    min_frames: int = 0,
) -> tuple[CifWeights, jax.Array]:
    """The CIF pooling weights alone (no features), e.g. to pool targets.

    Args:
        alpha: [B, S] non-negative weights, at most ``beta``.
        mask: [B, S] bool, True on real frames; None means all frames are real.
        num_frames, beta, training, tail_threshold, min_frames: as in :func:`cif_pool`.

    Returns:
        ``(weights, lengths)``: :class:`CifWeights` with ``scale`` of shape
        [B, num_frames], and [B] int32 output lengths.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332); Dong & Xu, ICASSP 2020.
    """
    num_frames = _validate(
        (*jnp.shape(alpha), 1),
        jnp.float32,
        alpha,
        mask,
        beta=beta,
        num_frames=num_frames,
        tail_threshold=tail_threshold,
        min_frames=min_frames,
        implementation="auto",
    )
    return _cif_weights_impl(
        alpha,
        None if mask is None else jnp.asarray(mask, bool),
        num_frames=num_frames,
        beta=float(beta),
        training=training,
        tail_threshold=float(tail_threshold),
        min_frames=int(min_frames),
    )[:2]


@functools.partial(
    jax.jit, static_argnames=("num_frames", "beta", "training", "tail_threshold", "min_frames")
)
def _cif_weights_impl(alpha, mask, *, num_frames, beta, training, tail_threshold, min_frames):
    a = _prepare_alpha(alpha, mask, beta, min_frames)
    edges = _edges(a)
    lengths, scale = _lengths_and_scale(
        edges, num_frames, beta=beta, training=training, tail_threshold=tail_threshold
    )
    lo, hi = _two_bin(edges)
    return CifWeights(edges.index, lo, hi, scale), lengths, edges


# ---------------------------------------------------------------------------
# Pooling cores: y[b, t] = sum_s W[b, s, t] x[b, s] (float32, before the scale)
# ---------------------------------------------------------------------------


def _dense_matrix_from_edges(edges: _Edges, num_frames: int) -> jax.Array:
    """The overlap matrix W [B, S, T] of every frame interval with every unit bin."""
    # Bin t relative to the frame's first bin; integers, so exact in float32.
    t = jnp.arange(num_frames, dtype=jnp.float32)[None, None, :]
    rel = t - edges.index.astype(jnp.float32)[..., None]
    w = jnp.minimum(edges.right[..., None], rel + 1.0) - jnp.maximum(edges.left[..., None], rel)
    return jnp.maximum(w, 0.0)


def _dense_matrix_from_weights(weights: CifWeights, num_frames: int) -> jax.Array:
    """W [B, S, T] rebuilt from the two-bin form."""
    t = jnp.arange(num_frames, dtype=jnp.int32)[None, None, :]
    idx = weights.index[..., None]
    return jnp.where(t == idx, weights.lo[..., None], 0.0) + jnp.where(
        t == idx + 1, weights.hi[..., None], 0.0
    )


def _dense_pool(w: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.einsum(
        "bst,bsd->btd",
        w,
        x.astype(jnp.float32),
        precision=jax.lax.Precision.HIGHEST,
        preferred_element_type=jnp.float32,
    )


def _segment_forward(x, index, lo, hi, num_frames):
    """Two-bin scatter with segment_sum; bins >= T go to a dump row that is cut off."""
    bsz, s, d = x.shape
    offsets = (num_frames + 1) * jnp.arange(bsz, dtype=jnp.int32)[:, None]
    xf = x.astype(jnp.float32)

    def scatter(bins, w):
        ids = (jnp.minimum(bins, num_frames) + offsets).reshape(-1)
        vals = (w[..., None] * xf).reshape(-1, d)
        return jax.ops.segment_sum(vals, ids, num_segments=bsz * (num_frames + 1))

    y = scatter(index, lo) + scatter(index + 1, hi)
    return y.reshape(bsz, num_frames + 1, d)[:, :num_frames]


#: Longest run of input frames starting in one output bin that the gather
#: forward handles (mean alpha >= 1/8 locally); longer runs take the scatter.
_GATHER_RUN_CAP = 8


def _gather_forward(x, index, lo, hi, num_frames):
    """The two-bin sum as gathers over each bin's run of frames; scatter fallback.

    ``index`` is non-decreasing along a row, so the frames whose first bin is t
    form a run ``[start[t], start[t + 1])`` (found by binary search), and only
    the run's last frame can spill into bin t + 1 (a frame holds at most one
    unit of mass). Hence ``y[t] = sum_k lo*x over the run of t`` plus
    ``hi*x`` of the single frame ``start[t] - 1``: at most ``_GATHER_RUN_CAP``
    + 1 row gathers that XLA fuses into one pass writing y once, instead of a
    serial scatter-add of every frame (~4x faster forward on CPU at S = 4000,
    see ``benchmarks/cif_pool_bench.py``). Trailing frames with no mass
    (padding) are cut from the last run. When some run is longer than the
    cap the whole call takes :func:`_segment_forward` (``lax.cond``: exact
    either way).
    """
    bsz, s, _ = x.shape
    bins = jnp.arange(num_frames + 1, dtype=index.dtype)
    starts = jax.vmap(lambda row: jnp.searchsorted(row, bins))(index)  # [B, T + 1]
    carries_mass = (lo > 0) | (hi > 0)
    used = jnp.max(jnp.where(carries_mass, jnp.arange(1, s + 1), 0), axis=1, keepdims=True)  # [B, 1]
    start, end = jnp.minimum(starts[:, :-1], used), jnp.minimum(starts[:, 1:], used)
    xf = x.astype(jnp.float32)

    def rows(weights, frames):
        """weights[b, frame] * x[b, frame] for frames [B, T] (clamped in range)."""
        frames = jnp.clip(frames, 0, s - 1)
        w = jnp.take_along_axis(weights, frames, axis=1, mode="promise_in_bounds")
        return w, jnp.take_along_axis(xf, frames[..., None], axis=1, mode="promise_in_bounds")

    def gathered(_):
        y = jnp.zeros((bsz, num_frames, x.shape[-1]), jnp.float32)
        for k in range(_GATHER_RUN_CAP):
            w, r = rows(lo, start + k)
            y = y + jnp.where(start + k < end, w, 0.0)[..., None] * r
        return y

    def scattered(_):
        return _segment_forward(x, index, lo, jnp.zeros_like(hi), num_frames)  # spills are added below

    longest = jnp.max(end - start)
    y = jax.lax.cond(longest <= _GATHER_RUN_CAP, gathered, scattered, None)
    # The spill into bin t comes from the frame just before its run, if that frame starts in bin t - 1.
    spill_from = start - 1
    w_spill, r_spill = rows(hi, spill_from)
    spills = (spill_from >= 0) & (jnp.take_along_axis(index, jnp.maximum(spill_from, 0), axis=1) + 1 == bins[:-1])
    return y + jnp.where(spills, w_spill, 0.0)[..., None] * r_spill


def _segment_backward(x, index, lo, hi, g):
    """Gathers the cotangent rows each frame was scattered into."""
    num_frames = g.shape[1]
    g = g.astype(jnp.float32)
    xf = x.astype(jnp.float32)

    def take(bins, w):
        # Bins past the output have no cotangent: clamp the gather (no padded
        # copy of g) and zero the weight instead.
        inside = bins < num_frames
        rows = jnp.take_along_axis(
            g, jnp.minimum(bins, num_frames - 1)[..., None], axis=1, mode="promise_in_bounds"
        )
        return jnp.where(inside, w, 0.0), jnp.where(inside, jnp.sum(rows * xf, axis=-1), 0.0), rows

    w_lo, d_lo, g_lo = take(index, lo)
    w_hi, d_hi, g_hi = take(index + 1, hi)
    dx = (w_lo[..., None] * g_lo + w_hi[..., None] * g_hi).astype(x.dtype)
    return dx, d_lo, d_hi


def _pallas_forward(target: str, interpret: bool) -> Callable:
    def f(x, index, lo, hi, num_frames):
        return _cif_pool_pallas.pool_forward(
            x, index, lo, hi, num_frames, target=target, interpret=interpret
        )

    return f


def _pallas_backward(target: str, interpret: bool) -> Callable:
    def f(x, index, lo, hi, g):
        return _cif_pool_pallas.pool_backward(
            x, index, lo, hi, g, target=target, interpret=interpret
        )

    return f


def _per_platform(table: dict[str, Callable], default: Callable) -> Callable:
    """Stages one function per platform; the lowering platform picks the branch."""

    def f(*args):
        # Static arguments (ints) cannot go through platform_dependent, so close
        # over them and pass only arrays.
        arrays = [a for a in args if not isinstance(a, int)]
        static = [a for a in args if isinstance(a, int)]

        def bind(fn):
            return lambda *arr: fn(*arr, *static)

        return jax.lax.platform_dependent(
            *arrays, default=bind(default), **{k: bind(v) for k, v in table.items()}
        )

    return f


def _kernels(kind: str) -> tuple[Callable, Callable]:
    """(forward, backward) of the two-bin core for one implementation name."""
    if kind == "xla":
        return _gather_forward, _segment_backward
    if kind == "pallas_interpret_tpu":
        return _pallas_forward("tpu", True), _pallas_backward("tpu", True)
    if kind == "pallas_interpret_gpu":
        return _pallas_forward("gpu", True), _pallas_backward("gpu", True)
    targets = {"tpu": "tpu", "cuda": "gpu", "rocm": "gpu"}  # platform -> kernel flavour
    fwd = {p: _pallas_forward(t, False) for p, t in targets.items()}
    bwd = {p: _pallas_backward(t, False) for p, t in targets.items()}
    if kind == "pallas":
        # Elsewhere (CPU) the same TPU-flavoured kernel runs in the interpreter.
        return (
            _per_platform(fwd, _pallas_forward("tpu", True)),
            _per_platform(bwd, _pallas_backward("tpu", True)),
        )
    if kind == "auto":
        return _per_platform(fwd, _gather_forward), _per_platform(bwd, _segment_backward)
    raise AssertionError(kind)


@functools.cache
def _two_bin_core(kind: str) -> Callable:
    """``core(x, index, lo, hi, num_frames) -> [B, T, D] float32`` with a custom VJP.

    The VJP is exact linear algebra: the forward is linear in x and in (lo, hi)
    and piecewise constant in the integer index. It avoids differentiating
    through scatters (XLA) and makes the Pallas kernels differentiable.
    """
    fwd_fn, bwd_fn = _kernels(kind)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
    def core(x, index, lo, hi, num_frames):
        return fwd_fn(x, index, lo, hi, num_frames)

    def core_fwd(x, index, lo, hi, num_frames):
        return fwd_fn(x, index, lo, hi, num_frames), (x, index, lo, hi)

    def core_bwd(num_frames, res, g):
        x, index, lo, hi = res
        dx, dlo, dhi = bwd_fn(x, index, lo, hi, g)
        return dx, np.zeros(index.shape, jax.dtypes.float0), dlo, dhi

    core.defvjp(core_fwd, core_bwd)
    return core


def _pool_two_bin(x: jax.Array, weights: CifWeights, implementation: str) -> jax.Array:
    """Pooled float32 frames [B, T, D] (before the per-bin scale)."""
    num_frames = weights.scale.shape[1]
    if implementation == "dense":
        return _dense_pool(_dense_matrix_from_weights(weights, num_frames), x)
    if implementation == "xla_autodiff":
        return _segment_forward(x, weights.index, weights.lo, weights.hi, num_frames)
    return _two_bin_core(implementation)(x, weights.index, weights.lo, weights.hi, num_frames)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def cif_pool(
    x: jax.Array,
    alpha: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_frames: int | None = None,
    beta: float = 1.0,
    training: bool = True,
    tail_threshold: float = 0.5,
    min_frames: int = 0,
    implementation: Implementation = "auto",
) -> CifPoolOutput:
    """Pools a padded batch of sequences by continuous integrate-and-fire.

    Frames are integrated in order, weighted by ``alpha``; an output frame fires
    each time the integrated weight reaches ``beta``, and a frame that crosses
    the threshold is split between the two outputs (see the module docstring
    for the exact overlap definition).

    Args:
        x: [B, S, D] input frames (any float dtype; accumulation is float32 and
            the result has the dtype of ``x``).
        alpha: [B, S] weights in ``[0, beta]``; values on padded frames are
            ignored. Checked when concrete, clamped under ``jit``.
        mask: [B, S] bool, True on real frames (None: all real). Padded frames get
            alpha 0, so they neither contribute nor advance the output.
        num_frames: static output length T (default S, which is always enough
            because alpha <= beta). Outputs past T are dropped; lengths are capped
            at T. Keep it fixed so the op is traced once.
        beta: firing threshold.
        training: True drops the trailing partial output (lengths =
            floor(sum(alpha) / beta)); False keeps it when its mass is at least
            ``tail_threshold`` (in units of beta), rescaled to a weighted average.
        tail_threshold: see ``training``; in (0, 1].
        min_frames: if > 0, rows whose total mass is below ``min_frames`` are
            rescaled to ``min_frames + 1e-4`` (as the OFA reference does with 2,
            to keep contrastive negatives); the scale is capped so no frame
            exceeds beta.
        implementation: ``"dense"``, ``"xla"``, ``"pallas"`` or ``"auto"`` (Pallas
            on TPU/GPU, XLA elsewhere, picked at lowering time).

    Returns:
        :class:`CifPoolOutput` ``(frames [B, T, D], mask [B, T], lengths [B],
        weights)``. Gradients flow to ``x`` and ``alpha`` (and through alpha to
        anything upstream, e.g. the lambda of :func:`mix_alpha`); lengths and bin
        indices are piecewise constant.

    Raises:
        ValueError: on mismatched shapes, alpha outside ``[0, beta]`` (when
            concrete), bad options or an unknown implementation.

    Example:
        >>> x = jnp.arange(8.0).reshape(1, 4, 2)
        >>> out = cif_pool(x, jnp.full((1, 4), 0.5), num_frames=2)
        >>> out.frames.tolist(), out.lengths.tolist()
        ([[[1.0, 2.0], [5.0, 6.0]]], [2])

    References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
    Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
    "CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
    ICASSP 2020.
    """
    num_frames = _validate(
        jnp.shape(x),
        jnp.result_type(x),
        alpha,
        mask,
        beta=beta,
        num_frames=num_frames,
        tail_threshold=tail_threshold,
        min_frames=min_frames,
        implementation=implementation,
    )
    return _cif_pool_impl(
        x,
        alpha,
        None if mask is None else jnp.asarray(mask, bool),
        num_frames=num_frames,
        beta=float(beta),
        training=bool(training),
        tail_threshold=float(tail_threshold),
        min_frames=int(min_frames),
        implementation=implementation,
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_frames",
        "beta",
        "training",
        "tail_threshold",
        "min_frames",
        "implementation",
    ),
)
def _cif_pool_impl(
    x, alpha, mask, *, num_frames, beta, training, tail_threshold, min_frames, implementation
):
    weights, lengths, edges = _cif_weights_impl(
        alpha,
        mask,
        num_frames=num_frames,
        beta=beta,
        training=training,
        tail_threshold=tail_threshold,
        min_frames=min_frames,
    )
    if implementation == "dense":
        # The reference: the overlap of every frame interval with every bin.
        raw = _dense_pool(_dense_matrix_from_edges(edges, num_frames), x)
    else:
        raw = _pool_two_bin(x, weights, implementation)
    frames = (raw * weights.scale[..., None]).astype(x.dtype)
    mask_out = jnp.arange(num_frames)[None, :] < lengths[:, None]
    return CifPoolOutput(frames, mask_out, lengths, weights)


def pool_like(
    values: jax.Array, weights: CifWeights, *, implementation: Implementation = "auto"
) -> jax.Array:
    """Pools other per-frame values (targets, teacher states) with the same weights.

    Args:
        values: [B, S, D] or [B, S] float values on the input time grid.
        weights: :class:`CifWeights` from :func:`cif_pool` or :func:`cif_weights`.
        implementation: as in :func:`cif_pool`.

    Returns:
        [B, T, D] (or [B, T]) in the dtype of ``values``, equal to what
        :func:`cif_pool` would give for ``values`` with the same alpha and mask.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332), section on
    pooling the training targets with the student's weights.
    """
    _check_implementation(implementation)
    squeeze = jnp.ndim(values) == 2
    if jnp.ndim(values) not in (2, 3) or jnp.shape(values)[:2] != jnp.shape(weights.index):
        raise ValueError(
            f"values must have shape [batch, frames(, features)] with [batch, frames] = "
            f"{jnp.shape(weights.index)} from the weights; got shape {jnp.shape(values)}"
        )
    if not jnp.issubdtype(jnp.result_type(values), jnp.floating):
        raise ValueError(
            f"values must be a floating-point array; got dtype {jnp.result_type(values)}"
        )
    out = _pool_like_impl(values[..., None] if squeeze else values, weights, implementation)
    return out[..., 0] if squeeze else out


@functools.partial(jax.jit, static_argnames=("implementation",))
def _pool_like_impl(values, weights, implementation):
    raw = _pool_two_bin(values, weights, implementation)
    return (raw * weights.scale[..., None]).astype(values.dtype)


def upsample(frames: jax.Array, weights: CifWeights) -> jax.Array:
    """Maps pooled frames back to the input rate.

    Every input frame becomes the mixture of the output frames it fed,
    ``(lo * y[index] + hi * y[index + 1]) / (lo + hi)``, counting only outputs
    that exist (inside ``lengths``). Frames that fed only dropped outputs, and
    padded frames, map to zero.

    Args:
        frames: [B, T, D] (or [B, T]) pooled frames, e.g. ``cif_pool(...).frames``.
        weights: :class:`CifWeights` of the same call.

    Returns:
        [B, S, D] (or [B, S]) in the dtype of ``frames``.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332) (the reverse
    mapping the reference code prepares as ``get_reverse_alpha``).
    """
    squeeze = jnp.ndim(frames) == 2
    if jnp.ndim(frames) not in (2, 3) or jnp.shape(frames)[:2] != jnp.shape(weights.scale):
        raise ValueError(
            f"frames must have shape [batch, num_frames(, features)] with [batch, num_frames] = "
            f"{jnp.shape(weights.scale)} from the weights; got shape {jnp.shape(frames)}"
        )
    y = frames[..., None] if squeeze else frames
    out = _upsample_impl(y, weights)
    return out[..., 0] if squeeze else out


@jax.jit
def _upsample_impl(y, weights):
    num_frames = y.shape[1]
    y_p = jnp.pad(y.astype(jnp.float32), ((0, 0), (0, 1), (0, 0)))
    kept = jnp.pad(weights.scale > 0, ((0, 0), (0, 1)))

    def take(bins):
        b = jnp.minimum(bins, num_frames)
        return jnp.take_along_axis(y_p, b[..., None], axis=1), jnp.take_along_axis(kept, b, axis=1)

    (y_lo, k_lo), (y_hi, k_hi) = take(weights.index), take(weights.index + 1)
    w_lo = jnp.where(k_lo, weights.lo, 0.0)
    w_hi = jnp.where(k_hi, weights.hi, 0.0)
    den = w_lo + w_hi
    num = w_lo[..., None] * y_lo + w_hi[..., None] * y_hi
    out = num / jnp.where(den > 0, den, 1.0)[..., None]
    return out.astype(y.dtype)


def mix_alpha(alpha: jax.Array, lam: jax.Array | float) -> jax.Array:
    """Once-for-all interpolation between no compression and the learned alpha.

    ``relu(1 - lam) + (relu(lam) - 2 relu(lam - 1)) * alpha``: ``(1 - lam) + lam *
    alpha`` for lam in [0, 1] (lam = 0 is the identity rate, lam = 1 the learned
    segment rate) and ``(2 - lam) * alpha`` for lam in [1, 2] (beyond the segment
    rate). Differentiable in both arguments.

    Args:
        alpha: [B, S] learned weights in [0, 1].
        lam: scalar or [B] mixing coefficient in [0, 2].

    Returns:
        [B, S] mixed weights, in the dtype of ``alpha``.

    References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
    Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332).
    """
    lam = jnp.asarray(lam, jnp.result_type(alpha))
    if lam.ndim == 1:
        lam = lam[:, None]  # one lambda per utterance
    elif lam.ndim != 0:
        raise ValueError(f"lam must be a scalar or have shape [batch]; got shape {lam.shape}")
    relu = jax.nn.relu
    return relu(1.0 - lam) + (relu(lam) - 2.0 * relu(lam - 1.0)) * alpha


def shard_over_batch(
    fn: Callable[..., Any],
    mesh: jax.sharding.Mesh,
    batch_axes: str | Sequence[str] = "data",
) -> Callable[..., Any]:
    """Runs ``fn`` per device shard of the batch with ``jax.shard_map``.

    Compiled Pallas kernels are opaque to the partitioner, and under a mesh with
    Explicit axes a bare ``pallas_call`` refuses to trace, so the op is mapped
    over the batch axis: every device pools its own rows. Every array argument
    and every output leaf must have the batch as its leading axis.

    Args:
        fn: e.g. ``functools.partial(cif_pool, num_frames=64)``; array arguments
            only (bind options with ``functools.partial``).
        mesh: the device mesh.
        batch_axes: mesh axis name(s) that split the batch.

    Returns:
        A function with the signature of ``fn`` (positional arrays).

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
    """
    axes = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes)
    unknown = [a for a in axes if a not in mesh.axis_names]
    if not axes or unknown:
        raise ValueError(
            f"batch_axes must name axes of the mesh {tuple(mesh.axis_names)}; got {batch_axes!r}"
        )
    n_shards = int(np.prod([mesh.shape[a] for a in axes]))
    spec = jax.sharding.PartitionSpec(axes)

    def wrapped(*args):
        for i, a in enumerate(args):
            if a is not None and jnp.shape(a)[0] % n_shards:
                raise ValueError(
                    f"argument {i} has batch {jnp.shape(a)[0]}, which the mesh axes {axes} "
                    f"({n_shards} shards) do not divide; use a multiple of {n_shards}"
                )
        # check_vma=False: the kernel body mixes per-device values with constants,
        # which the varying-axes check rejects although it is correct here.
        return jax.shard_map(
            fn, mesh=mesh, in_specs=tuple(spec if a is not None else None for a in args),
            out_specs=spec, check_vma=False,
        )(*args)

    return wrapped


def cif_pool_sharded(
    x: jax.Array,
    alpha: jax.Array,
    mask: jax.Array | None = None,
    *,
    mesh: jax.sharding.Mesh,
    batch_axes: str | Sequence[str] = "data",
    **kwargs: Any,
) -> CifPoolOutput:
    """:func:`cif_pool` mapped over the batch axes of ``mesh`` (see :func:`shard_over_batch`).

    Args:
        x, alpha, mask: as in :func:`cif_pool`; the batch must divide evenly.
        mesh: the device mesh.
        batch_axes: mesh axis name(s) that split the batch.
        **kwargs: options of :func:`cif_pool`.

    Returns:
        :class:`CifPoolOutput`, sharded along the batch like the inputs.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
    """
    if mask is None:
        mask = jnp.ones(jnp.shape(alpha), bool)
    # Validate on the whole batch so errors name the user's shapes, not a shard's.
    kwargs["num_frames"] = _validate(
        jnp.shape(x),
        jnp.result_type(x),
        alpha,
        mask,
        beta=kwargs.get("beta", 1.0),
        num_frames=kwargs.get("num_frames"),
        tail_threshold=kwargs.get("tail_threshold", 0.5),
        min_frames=kwargs.get("min_frames", 0),
        implementation=kwargs.get("implementation", "auto"),
    )
    fn = functools.partial(cif_pool, **kwargs)
    return shard_over_batch(fn, mesh, batch_axes)(x, alpha, mask)
