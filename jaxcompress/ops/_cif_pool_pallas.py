"""Pallas kernels for the two-bin CIF pooling core (TPU Mosaic, GPU Triton).

The op being computed (see ``_cif_pool.py`` for the full semantics) is, for
every batch row ``b``,

    y[b, t, :] = sum_s lo[b, s] * [index[b, s] == t]     * x[b, s, :]
               + sum_s hi[b, s] * [index[b, s] + 1 == t] * x[b, s, :]

with ``index`` non-decreasing along ``s`` up to rounding. Both kernels turn the
scatter into small dense matmuls against one-hot blocks, which is what the MXU
(TPU) and tensor cores (GPU) are good at, and skip every block pair whose bins
cannot meet:

* forward (output-stationary): the program for output block ``j`` (``bt``
  bins) loops over the contiguous run of input chunks (``bs`` frames each)
  whose bins can reach block ``j``; the run is computed in the wrapper, so a
  tiny ``alpha`` (many frames per bin) only lengthens the loop, it never drops
  frames. Each output block is written exactly once, so the grid is fully
  parallel and needs no atomics.
* backward (input-stationary): the program for input chunk ``i`` loops over
  the output blocks its bins fall into (usually one or two) and gathers the
  cotangent rows with a one-hot matmul, giving ``dx`` and the two per-frame
  weight gradients in one pass.

Block-shape rules. TPU: the last two dims of every block are multiples of
(8, 128) or span the whole array, so the wrapper pads ``S`` and ``T`` to
multiples of 128 and ``D`` to a multiple of 128, keeps per-frame vectors as
``[B, 1, S]`` rows (forward) or ``[B, S, 1]`` columns (backward) and passes the
loop bounds as scalar-prefetch operands (they live in SMEM, where dynamic loop
bounds must come from). GPU (Triton): every loaded block has a power-of-two
size, so the block sizes are powers of two and the loop bounds are ordinary
``(1, 1)`` blocks. (Triton rather than Mosaic GPU: the kernel needs loops with
data-dependent bounds and dynamic ref slices, which the Triton lowering
supports today; Triton is deprecated from JAX 0.11, so a Mosaic GPU port is the
follow-up.)

What the test suite checks without accelerators: both kernel flavours in the
Pallas interpreter against an independent loop, and that both lower with
``jax.export`` (TPU: ``tpu_custom_call``; CUDA: the Triton custom call). The
Mosaic and Triton compilers themselves only run on the hardware.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

Target = Literal["tpu", "gpu"]

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Block sizes of the kernels.

    Attributes:
        bt: output bins per block (forward) and per gathered chunk (backward).
        bs: input frames per chunk.
        bd: feature columns per block.
        d_align: ``D`` is padded to a multiple of this.
    """

    bt: int
    bs: int
    bd: int
    d_align: int


# TPU: 128 is the lane width and keeps every dynamic slice tile-aligned.
TPU_BLOCKS = BlockConfig(bt=128, bs=128, bd=128, d_align=128)
# GPU/Triton: powers of two, 64x64 one-hot tiles keep register use moderate.
GPU_BLOCKS = BlockConfig(bt=64, bs=64, bd=64, d_align=64)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _scalar(ref, prefetch: bool, row: jax.Array, col: jax.Array) -> jax.Array:
    """Reads one loop bound: from the whole SMEM array (TPU) or a (1, 1) block."""
    if prefetch:
        return ref[row, col]
    return ref[0, 0]


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


def _fwd_kernel(*refs, blocks: BlockConfig, prefetch: bool):
    """y[t-block] = sum over its input chunks of onehot_weights @ x_chunk."""
    k0_ref, k1_ref, idx_ref, lo_ref, hi_ref, x_ref, y_ref = refs
    bt, bs = blocks.bt, blocks.bs
    b, j = pl.program_id(0), pl.program_id(2)
    k0 = _scalar(k0_ref, prefetch, b, j)
    k1 = _scalar(k1_ref, prefetch, b, j)
    # Bin id of every row of the [bt, bs] one-hot tile.
    bins = j * bt + jax.lax.broadcasted_iota(jnp.int32, (bt, bs), 0)

    def body(k, acc):
        s0 = pl.multiple_of(k * bs, bs)
        idx = idx_ref[0, :, pl.ds(s0, bs)]  # [1, bs]
        w_lo = lo_ref[0, :, pl.ds(s0, bs)]
        w_hi = hi_ref[0, :, pl.ds(s0, bs)]
        w = jnp.where(bins == idx, w_lo, 0.0) + jnp.where(bins == idx + 1, w_hi, 0.0)
        xs = x_ref[0, pl.ds(s0, bs), :].astype(jnp.float32)  # [bs, bd]
        return acc + jnp.dot(w, xs, precision=_HIGHEST, preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(k0, k1, body, jnp.zeros(y_ref.shape[1:], jnp.float32))
    y_ref[0] = acc.astype(y_ref.dtype)


def _forward_ranges(
    index: jax.Array, active: jax.Array, n_chunks: int, n_out_blocks: int, blocks: BlockConfig
) -> tuple[jax.Array, jax.Array]:
    """For every output block, the contiguous run [k0, k1) of input chunks to visit.

    ``index``, ``active``: [B, S_pad]. A chunk touches bins ``[mn, mx]`` (over its
    frames with non-zero weight). Envelopes (running max of ``mx``, suffix min of
    ``mn``) make the run contiguous and conservative even if rounding made
    ``index`` locally non-monotone.
    """
    big = jnp.int32(2**30)
    idx = index.reshape(index.shape[0], n_chunks, blocks.bs)
    act = active.reshape(idx.shape)
    mn = jnp.min(jnp.where(act, idx, big), axis=-1)  # [B, nS]
    mx = jnp.max(jnp.where(act, idx + 1, -1), axis=-1)
    run_max = jax.lax.cummax(mx, axis=1)
    suffix_min = jax.lax.cummin(mn, axis=1, reverse=True)
    starts = jnp.arange(n_out_blocks, dtype=jnp.int32) * blocks.bt  # [nT]
    # Both envelopes are sorted, so a count is a searchsorted.
    k0 = jnp.sum(run_max[:, :, None] < starts[None, None, :], axis=1)
    k1 = jnp.sum(suffix_min[:, :, None] < (starts + blocks.bt)[None, None, :], axis=1)
    return k0.astype(jnp.int32), k1.astype(jnp.int32)


def pool_forward(
    x: jax.Array,
    index: jax.Array,
    lo: jax.Array,
    hi: jax.Array,
    num_frames: int,
    *,
    target: Target,
    interpret: bool,
    blocks: BlockConfig | None = None,
) -> jax.Array:
    """Two-bin pooling ``[B, S, D] -> [B, num_frames, D]`` (float32) with a Pallas kernel.

    Args:
        x: [B, S, D] frames, any float dtype (accumulated in float32).
        index: [B, S] int32 first bin of every frame.
        lo, hi: [B, S] float32 weights into bins ``index`` and ``index + 1``.
        num_frames: static number of output bins T.
        target: ``"tpu"`` (Mosaic, scalar prefetch) or ``"gpu"`` (Triton).
        interpret: run the kernel body in the Pallas interpreter (CPU).
        blocks: block sizes; defaults per target.

    Returns:
        [B, T, D] float32.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332); Dong & Xu, ICASSP 2020.
    """
    blocks = blocks or (TPU_BLOCKS if target == "tpu" else GPU_BLOCKS)
    bsz, s, d = x.shape
    s_pad = _round_up(max(s, 1), blocks.bs)
    t_pad = _round_up(max(num_frames, 1), blocks.bt)
    d_pad = _round_up(max(d, 1), max(blocks.d_align, blocks.bd))
    n_s, n_t, n_d = s_pad // blocks.bs, t_pad // blocks.bt, d_pad // blocks.bd

    # Frames feeding only bins >= T are dropped here, so no chunk is visited for them.
    active = ((lo != 0) | (hi != 0)) & (index < num_frames)
    pad_s = ((0, 0), (0, s_pad - s))
    index_p = jnp.pad(index, pad_s, mode="edge") if s else jnp.zeros((bsz, s_pad), jnp.int32)
    lo_p = jnp.pad(jnp.where(active, lo, 0.0), pad_s)
    hi_p = jnp.pad(jnp.where(active, hi, 0.0), pad_s)
    active_p = jnp.pad(active, pad_s)
    x_p = jnp.pad(x, ((0, 0), (0, s_pad - s), (0, d_pad - d)))
    k0, k1 = _forward_ranges(index_p, active_p, n_s, n_t, blocks)

    row = lambda a: a[:, None, :]  # [B, 1, S_pad]: lane-major per-frame vectors
    kernel = functools.partial(_fwd_kernel, blocks=blocks, prefetch=target == "tpu")
    out_shape = jax.ShapeDtypeStruct((bsz, t_pad, d_pad), jnp.float32)
    if target == "tpu":
        from jax.experimental.pallas import tpu as pltpu

        grid_spec = pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=2,
            grid=(bsz, n_d, n_t),
            in_specs=[
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j, *_: (b, 0, 0)),
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j, *_: (b, 0, 0)),
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j, *_: (b, 0, 0)),
                # The whole sequence of one column block stays resident while the
                # innermost grid axis walks the output blocks.
                pl.BlockSpec((1, s_pad, blocks.bd), lambda b, dd, j, *_: (b, 0, dd)),
            ],
            out_specs=pl.BlockSpec((1, blocks.bt, blocks.bd), lambda b, dd, j, *_: (b, j, dd)),
        )
        y = pl.pallas_call(
            kernel,
            out_shape=out_shape,
            grid_spec=grid_spec,
            compiler_params=pltpu.CompilerParams(
                dimension_semantics=("parallel", "parallel", "parallel")
            ),
            interpret=interpret,
            name="cif_pool_fwd",
        )(k0, k1, row(index_p), row(lo_p), row(hi_p), x_p)
    else:
        from jax.experimental.pallas import triton as pltriton

        y = pl.pallas_call(
            kernel,
            out_shape=out_shape,
            grid=(bsz, n_d, n_t),
            in_specs=[
                pl.BlockSpec((1, 1), lambda b, dd, j: (b, j)),
                pl.BlockSpec((1, 1), lambda b, dd, j: (b, j)),
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j: (b, 0, 0)),
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j: (b, 0, 0)),
                pl.BlockSpec((1, 1, s_pad), lambda b, dd, j: (b, 0, 0)),
                pl.BlockSpec((1, s_pad, blocks.bd), lambda b, dd, j: (b, 0, dd)),
            ],
            out_specs=pl.BlockSpec((1, blocks.bt, blocks.bd), lambda b, dd, j: (b, j, dd)),
            compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=1),
            interpret=interpret,
            name="cif_pool_fwd",
        )(k0, k1, row(index_p), row(lo_p), row(hi_p), x_p)
    return y[:, :num_frames, :d]


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------


def _bwd_kernel(*refs, blocks: BlockConfig, prefetch: bool):
    """dx, dlo, dhi of one input chunk from the cotangent rows its bins point at."""
    m0_ref, m1_ref, idx_ref, lo_ref, hi_ref, x_ref, g_ref, dx_ref, dlo_ref, dhi_ref = refs
    bt, bs = blocks.bt, blocks.bs
    b, i = pl.program_id(0), pl.program_id(2)
    m0 = _scalar(m0_ref, prefetch, b, i)
    m1 = _scalar(m1_ref, prefetch, b, i)
    idx = idx_ref[0]  # [bs, 1] column: frames on sublanes, bins on lanes below
    cols = jax.lax.broadcasted_iota(jnp.int32, (bs, bt), 1)

    def body(m, carry):
        g_lo, g_hi = carry
        t0 = pl.multiple_of(m * bt, bt)
        g = g_ref[0, pl.ds(t0, bt), :].astype(jnp.float32)  # [bt, bd]
        bins = t0 + cols
        one_lo = jnp.where(bins == idx, 1.0, 0.0)  # [bs, bt]
        one_hi = jnp.where(bins == idx + 1, 1.0, 0.0)
        g_lo = g_lo + jnp.dot(one_lo, g, precision=_HIGHEST, preferred_element_type=jnp.float32)
        g_hi = g_hi + jnp.dot(one_hi, g, precision=_HIGHEST, preferred_element_type=jnp.float32)
        return g_lo, g_hi

    zeros = jnp.zeros(dx_ref.shape[1:], jnp.float32)  # [bs, bd]
    g_lo, g_hi = jax.lax.fori_loop(m0, m1, body, (zeros, zeros))
    x = x_ref[0].astype(jnp.float32)
    dx_ref[0] = (lo_ref[0] * g_lo + hi_ref[0] * g_hi).astype(dx_ref.dtype)
    # Per column block partial sums; the wrapper adds the column blocks up.
    dlo_ref[0, 0] = jnp.sum(g_lo * x, axis=1, keepdims=True)
    dhi_ref[0, 0] = jnp.sum(g_hi * x, axis=1, keepdims=True)


def pool_backward(
    x: jax.Array,
    index: jax.Array,
    lo: jax.Array,
    hi: jax.Array,
    g: jax.Array,
    *,
    target: Target,
    interpret: bool,
    blocks: BlockConfig | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cotangents of :func:`pool_forward` with respect to ``x``, ``lo`` and ``hi``.

    Args:
        x: [B, S, D] forward input.
        index, lo, hi: [B, S] two-bin form (as in :func:`pool_forward`).
        g: [B, T, D] cotangent of the float32 output.
        target, interpret, blocks: as in :func:`pool_forward`.

    Returns:
        ``(dx [B, S, D] in x.dtype, dlo [B, S] f32, dhi [B, S] f32)``.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332); Dong & Xu, ICASSP 2020.
    """
    blocks = blocks or (TPU_BLOCKS if target == "tpu" else GPU_BLOCKS)
    bsz, s, d = x.shape
    num_frames = g.shape[1]
    s_pad = _round_up(max(s, 1), blocks.bs)
    t_pad = _round_up(max(num_frames, 1), blocks.bt)
    d_pad = _round_up(max(d, 1), max(blocks.d_align, blocks.bd))
    n_s, n_t, n_d = s_pad // blocks.bs, t_pad // blocks.bt, d_pad // blocks.bd

    pad_s = ((0, 0), (0, s_pad - s))
    index_p = jnp.pad(index, pad_s, mode="edge") if s else jnp.zeros((bsz, s_pad), jnp.int32)
    lo_p = jnp.pad(lo, pad_s)
    hi_p = jnp.pad(hi, pad_s)
    x_p = jnp.pad(x, ((0, 0), (0, s_pad - s), (0, d_pad - d)))
    # Rows >= T of the cotangent are zero: bins past the output do not exist.
    g_p = jnp.pad(g.astype(jnp.float32), ((0, 0), (0, t_pad - num_frames), (0, d_pad - d)))

    chunks = index_p.reshape(bsz, n_s, blocks.bs)
    m0 = jnp.clip(jnp.min(chunks, axis=-1) // blocks.bt, 0, n_t).astype(jnp.int32)
    m1 = jnp.clip((jnp.max(chunks, axis=-1) + 1) // blocks.bt + 1, 0, n_t).astype(jnp.int32)

    col = lambda a: a[:, :, None]  # [B, S_pad, 1]: per-frame vectors along sublanes
    kernel = functools.partial(_bwd_kernel, blocks=blocks, prefetch=target == "tpu")
    out_shape = (
        jax.ShapeDtypeStruct((bsz, s_pad, d_pad), x.dtype),
        jax.ShapeDtypeStruct((bsz, n_d, s_pad, 1), jnp.float32),
        jax.ShapeDtypeStruct((bsz, n_d, s_pad, 1), jnp.float32),
    )
    bs, bd = blocks.bs, blocks.bd
    args = (m0, m1, col(index_p), col(lo_p), col(hi_p), x_p, g_p)
    if target == "tpu":
        from jax.experimental.pallas import tpu as pltpu

        grid_spec = pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=2,
            grid=(bsz, n_d, n_s),
            in_specs=[
                pl.BlockSpec((1, bs, 1), lambda b, dd, i, *_: (b, i, 0)),
                pl.BlockSpec((1, bs, 1), lambda b, dd, i, *_: (b, i, 0)),
                pl.BlockSpec((1, bs, 1), lambda b, dd, i, *_: (b, i, 0)),
                pl.BlockSpec((1, bs, bd), lambda b, dd, i, *_: (b, i, dd)),
                # The cotangent of one column block stays resident across chunks.
                pl.BlockSpec((1, t_pad, bd), lambda b, dd, i, *_: (b, 0, dd)),
            ],
            out_specs=[
                pl.BlockSpec((1, bs, bd), lambda b, dd, i, *_: (b, i, dd)),
                pl.BlockSpec((1, 1, bs, 1), lambda b, dd, i, *_: (b, dd, i, 0)),
                pl.BlockSpec((1, 1, bs, 1), lambda b, dd, i, *_: (b, dd, i, 0)),
            ],
        )
        dx, dlo, dhi = pl.pallas_call(
            kernel,
            out_shape=out_shape,
            grid_spec=grid_spec,
            compiler_params=pltpu.CompilerParams(
                dimension_semantics=("parallel", "parallel", "parallel")
            ),
            interpret=interpret,
            name="cif_pool_bwd",
        )(*args)
    else:
        from jax.experimental.pallas import triton as pltriton

        dx, dlo, dhi = pl.pallas_call(
            kernel,
            out_shape=out_shape,
            grid=(bsz, n_d, n_s),
            in_specs=[
                pl.BlockSpec((1, 1), lambda b, dd, i: (b, i)),
                pl.BlockSpec((1, 1), lambda b, dd, i: (b, i)),
                pl.BlockSpec((1, bs, 1), lambda b, dd, i: (b, i, 0)),
                pl.BlockSpec((1, bs, 1), lambda b, dd, i: (b, i, 0)),
                pl.BlockSpec((1, bs, 1), lambda b, dd, i: (b, i, 0)),
                pl.BlockSpec((1, bs, bd), lambda b, dd, i: (b, i, dd)),
                pl.BlockSpec((1, t_pad, bd), lambda b, dd, i: (b, 0, dd)),
            ],
            out_specs=[
                pl.BlockSpec((1, bs, bd), lambda b, dd, i: (b, i, dd)),
                pl.BlockSpec((1, 1, bs, 1), lambda b, dd, i: (b, dd, i, 0)),
                pl.BlockSpec((1, 1, bs, 1), lambda b, dd, i: (b, dd, i, 0)),
            ],
            compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=1),
            interpret=interpret,
            name="cif_pool_bwd",
        )(*args)
    dlo = jnp.sum(dlo[..., 0], axis=1)[:, :s]
    dhi = jnp.sum(dhi[..., 0], axis=1)[:, :s]
    return dx[:, :s, :d], dlo, dhi
