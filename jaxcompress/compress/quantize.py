"""Weight quantization: a fake-quant reference, binary and ternary weights, compact int storage.

Three layers, each usable on its own:

* **Numerics (jittable, differentiable).** :func:`fake_quant` rounds onto a
  uniform ``bits``-bit grid (per tensor or per channel, symmetric or
  asymmetric, nearest or stochastic rounding) and passes gradients straight
  through inside the clip range (STE). :func:`binarize` (BinaryConnect sign,
  XNOR-Net scale ``alpha = mean|W|`` per output channel) and :func:`ternarize`
  (TWN threshold ``0.7 * mean|W|``) with their STE variants. This is our own
  reference: used for 2-3 bit grids, for QAT without interception, and as the
  independent check of qwix (:mod:`jaxcompress.compress.qwix_quant`).
* **Training.** :class:`FakeQuantModel` wraps any Linen model so that its
  selected kernels are fake-quantised on the way in (quantization-aware
  training through the ordinary loop; the optimiser keeps float weights).
* **Compact steps** ``Compressed -> Compressed`` (``quantize``, ``binarize``,
  ``ternarize``) that store integer codes really packed (two int4 per byte)
  with per-channel scales, and, for a pruned leaf, only the non-zero codes
  plus a bitmask when that is smaller.

Per-channel means one scale per entry of the **last** axis (output features
of a Dense kernel ``[in, out]`` and of a conv kernel ``[kh, kw, in, out]``).

References:
  Jacob et al., "Quantization and Training of Neural Networks for Efficient
  Integer-Arithmetic-Only Inference", CVPR 2018 (affine grid, QAT);
  Gupta et al., "Deep Learning with Limited Numerical Precision", ICML 2015
  (stochastic rounding); Bengio, Leonard & Courville, arXiv 1308.3432 (STE);
  Courbariaux, Bengio & David, "BinaryConnect", NeurIPS 2015; Rastegari et
  al., "XNOR-Net", ECCV 2016; Li, Zhang & Liu, "Ternary Weight Networks",
  arXiv 1605.04711.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.compress import options as opt
from jaxcompress.compress.artifact import Compressed, register_decoder
from jaxcompress.compress.methods import register_method
from jaxcompress.compress.packing import pack_bits, pack_mask, packed_nbytes, unpack_bits, unpack_mask
from jaxcompress.compress.paths import map_with_path, select
from jaxcompress.compress.storage import LeafStorage
from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError

ROUNDINGS = ("nearest", "stochastic")
#: Bit widths the compact ``quantize`` step stores (the storage formats int8 / int4 / 2-bit).
STEP_BITS = (2, 4, 8)
#: Codecs written by the lossy steps of this family; later steps do not re-quantise them.
LOSSY_CODECS = ("quant", "binary", "ternary", "codebook", "hashed")

# ----------------------------------------------------------------------------
# Reference numerics


@dataclasses.dataclass
class QuantConfig:
    """Quantization-aware training: the forward pass sees quantised weights (straight-through gradients)."""

    qat: str = option("none", help="qwix (QtProvider), fake_quant (our reference), binary (XNOR), ternary (TWN)",
                      choices=("none", "qwix", "fake_quant", "binary", "ternary"))
    weight_bits: int = option(8, help="weight bits for qwix / fake_quant", min=2, max=8)
    act_bits: int = option(0, help="activation bits, qwix only (0: float activations)", min=0, max=8)
    per_channel: bool = option(True, help="one scale per output channel (else per tensor)")
    symmetric: bool = option(True, help="symmetric grid (else affine with a zero point), fake_quant")
    rounding: str = option("nearest", help="fake_quant rounding in training", choices=("nearest", "stochastic"))
    include: str = option(".*", help="regex: parameter paths (fake_quant/binary/ternary) or module paths (qwix)")
    exclude: str = option("", help="regex over parameter paths never to quantise (not qwix)")

    def validate(self, prefix: str) -> None:
        if self.act_bits and self.qat != "qwix":
            raise ConfigError(f"config key '{prefix}act_bits' needs '{prefix}qat=qwix' (activation "
                              f"quantization goes through qwix); got qat={self.qat!r}")
        if self.qat == "qwix" and self.weight_bits not in (2, 3, 4, 8):
            raise ConfigError(f"config key '{prefix}weight_bits' must be 2, 3, 4 or 8 with qwix; "
                              f"got {self.weight_bits}")
        if self.qat == "qwix" and self.exclude:
            raise ConfigError(f"config key '{prefix}exclude' is not supported with qwix; narrow "
                              f"'{prefix}include' instead")


def int_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer grid ``[qmin, qmax]``: ``±(2^(b-1) - 1)`` symmetric (zero exact, balanced), ``[0, 2^b - 1]`` affine."""
    if bits < 1:
        raise ConfigError(f"bits must be >= 1, got {bits}")
    if symmetric:
        if bits < 2:
            raise ConfigError("a symmetric integer grid needs bits >= 2 (use binarize for 1 bit)")
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _reduce_axes(ndim: int, axis: int | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axis = axis % ndim
    return tuple(a for a in range(ndim) if a != axis)


def calibrate(x: jax.Array, bits: int, *, symmetric: bool = True,
              axis: int | None = -1) -> tuple[jax.Array, jax.Array]:
    """Min/max calibration of a grid: ``(scale, zero_point)``, broadcastable to ``x``.

    Symmetric: ``scale = max|x| / qmax``, ``zero_point = 0``. Affine: the range
    ``[min(x, 0), max(x, 0)]`` maps onto ``[0, 2^b - 1]`` with an integer zero
    point, so an exact 0 (a pruned weight) stays exactly 0.

    Args:
      x: array of any shape.
      bits: grid width.
      symmetric: symmetric or affine grid.
      axis: channel axis with its own scale; None for one scale per tensor.

    Returns:
      ``scale`` float and ``zero_point`` float (integer-valued), both with
      ``x.ndim`` dims of size 1 except ``axis``.
    """
    qmin, qmax = int_range(bits, symmetric)
    axes = _reduce_axes(x.ndim, axis)
    if symmetric:
        scale = jnp.max(jnp.abs(x), axis=axes, keepdims=True) / qmax
        zero_point = jnp.zeros_like(scale)
    else:
        low = jnp.minimum(jnp.min(x, axis=axes, keepdims=True), 0.0)
        high = jnp.maximum(jnp.max(x, axis=axes, keepdims=True), 0.0)
        scale = (high - low) / (qmax - qmin)
    # An all-zero channel keeps scale 1 so nothing divides by zero.
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    if not symmetric:
        zero_point = jnp.clip(jnp.round(qmin - low / scale), qmin, qmax)
    return scale, zero_point


def ste_round(x: jax.Array) -> jax.Array:
    """``round(x)`` forward, identity gradient (straight-through estimator)."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def stochastic_round(x: jax.Array, key: jax.Array) -> jax.Array:
    """``floor(x + u)``, ``u ~ U[0, 1)``: unbiased (``E = x``), identity gradient."""
    noise = jax.random.uniform(key, x.shape, x.dtype)
    return x + jax.lax.stop_gradient(jnp.floor(x + noise) - x)


def quantize_codes(x: jax.Array, scale: jax.Array, zero_point: jax.Array, bits: int, *, symmetric: bool = True,
                   rounding: str = "nearest", key: jax.Array | None = None) -> jax.Array:
    """Integer codes ``clip(round(x / scale) + zero_point, qmin, qmax)`` (float dtype, integer values).

    Clipping happens before rounding so the STE gradient is exactly the
    indicator of the clip range.
    """
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding must be one of {', '.join(ROUNDINGS)}; got {rounding!r}")
    qmin, qmax = int_range(bits, symmetric)
    v = x / scale + zero_point
    # Clip with gradient 1 on the closed range (jnp.clip would give 1/2 at the
    # bounds, where the calibrated extreme weights sit) and 0 outside it.
    inside = (v >= qmin) & (v <= qmax)
    v = jnp.where(inside, v, jax.lax.stop_gradient(jnp.clip(v, qmin, qmax)))
    if rounding == "stochastic":
        if key is None:
            raise ConfigError("stochastic rounding needs a random key")
        return jnp.clip(stochastic_round(v, key), qmin, qmax)
    return ste_round(v)


def dequantize(codes: jax.Array, scale: jax.Array, zero_point: jax.Array) -> jax.Array:
    return (codes - zero_point) * scale


def fake_quant(x: jax.Array, bits: int, *, symmetric: bool = True, axis: int | None = -1,
               rounding: str = "nearest", key: jax.Array | None = None,
               scale: jax.Array | None = None, zero_point: jax.Array | None = None) -> jax.Array:
    """Quantise-dequantise ``x`` on a ``bits``-bit grid, differentiable by STE.

    Args:
      x: array of any shape (a kernel: channels on ``axis``).
      bits: grid width (any >= 2 symmetric, >= 1 affine).
      symmetric: symmetric (zero point 0) or affine grid.
      axis: channel axis with its own scale, None for per-tensor.
      rounding: ``nearest`` or ``stochastic`` (needs ``key``).
      scale, zero_point: a fixed grid (e.g. a clipped calibration range);
        calibrated from ``x`` by min/max when omitted. A calibrated grid is
        treated as a constant in the backward pass.

    Returns:
      Same shape and dtype as ``x``. Gradient: 1 where ``x`` lies inside the
      grid's range, 0 where it was clipped.
    """
    if scale is None:
        scale, calibrated_zero = calibrate(jax.lax.stop_gradient(x), bits, symmetric=symmetric, axis=axis)
        zero_point = calibrated_zero if zero_point is None else zero_point
    elif zero_point is None:
        zero_point = jnp.zeros_like(scale)
    codes = quantize_codes(x, scale, zero_point, bits, symmetric=symmetric, rounding=rounding, key=key)
    return dequantize(codes, scale, zero_point).astype(x.dtype)


def xnor_scale(w: jax.Array, axis: int | None = -1) -> jax.Array:
    """XNOR-Net's ``alpha = mean|W|`` over everything but the channel axis (non-zeros only if pruned)."""
    axes = _reduce_axes(w.ndim, axis)
    nonzero = (w != 0).astype(w.dtype)
    count = jnp.sum(nonzero, axis=axes, keepdims=True)
    return jnp.sum(jnp.abs(w), axis=axes, keepdims=True) / jnp.maximum(count, 1.0)


def binarize(w: jax.Array, *, axis: int | None = -1, scaled: bool = True, keep_zeros: bool = False) -> jax.Array:
    """``alpha * sign(w)`` with ``sign(0) = +1``.

    ``scaled=False`` is BinaryConnect's plain ``sign(w)``; ``scaled=True`` is
    XNOR-Net's per-channel ``alpha = mean|W|``. ``keep_zeros=True`` leaves
    exact zeros (pruned weights) at 0, so a pruned kernel stays sparse.
    """
    sign = jnp.where(w >= 0, 1.0, -1.0).astype(w.dtype)
    if keep_zeros:
        sign = jnp.where(w == 0, 0.0, sign).astype(w.dtype)
    alpha = xnor_scale(w, axis) if scaled else jnp.ones((), w.dtype)
    return alpha * sign


def binarize_ste(w: jax.Array, *, axis: int | None = -1, scaled: bool = True) -> jax.Array:
    """:func:`binarize` forward; BinaryConnect's backward: identity where ``|w| <= 1``, else 0."""
    inside = (jnp.abs(w) <= 1.0).astype(w.dtype)
    passthrough = w * inside
    return passthrough + jax.lax.stop_gradient(binarize(w, axis=axis, scaled=scaled) - passthrough)


def ternary_threshold(w: jax.Array, axis: int | None = None, factor: float = 0.7) -> jax.Array:
    """TWN's ``delta = 0.7 * mean|W|`` (per tensor, or per channel with ``axis``)."""
    return factor * jnp.mean(jnp.abs(w), axis=_reduce_axes(w.ndim, axis), keepdims=True)


def ternarize(w: jax.Array, *, axis: int | None = None, factor: float = 0.7) -> jax.Array:
    """``alpha * sign(w) * [|w| > delta]`` with ``alpha`` the mean ``|w|`` above ``delta`` (TWN)."""
    delta = ternary_threshold(w, axis, factor)
    keep = jnp.abs(w) > delta
    axes = _reduce_axes(w.ndim, axis)
    count = jnp.sum(keep, axis=axes, keepdims=True)
    alpha = jnp.sum(jnp.where(keep, jnp.abs(w), 0.0), axis=axes, keepdims=True) / jnp.maximum(count, 1)
    return (alpha * jnp.sign(w) * keep).astype(w.dtype)


def ternarize_ste(w: jax.Array, *, axis: int | None = None, factor: float = 0.7) -> jax.Array:
    """:func:`ternarize` forward, identity gradient (as TWN trains)."""
    return w + jax.lax.stop_gradient(ternarize(w, axis=axis, factor=factor) - w)


# ----------------------------------------------------------------------------
# Quantization-aware training


def fake_quant_tree(params: Any, selection: Any, transform: Callable[[jax.Array], jax.Array]) -> Any:
    """``transform`` on the selected leaves (a boolean tree like :func:`paths.select`'s)."""
    return jax.tree.map(lambda p, s: transform(p) if s else p, params, selection)


def weight_transform(kind: str, bits: int = 8, *, per_channel: bool = True, symmetric: bool = True,
                     rounding: str = "nearest") -> Callable[..., jax.Array]:
    """The STE weight transform QAT applies: ``int`` (fake-quant), ``binary`` or ``ternary``.

    The returned ``fn(w, key=None)`` rounds stochastically only when
    ``rounding="stochastic"`` and a key is given (training steps); without a
    key (evaluation) it rounds to nearest.
    """
    axis = -1 if per_channel else None
    if kind == "int":
        int_range(bits, symmetric)  # validates bits

        def int_transform(w: jax.Array, key: jax.Array | None = None) -> jax.Array:
            mode = "stochastic" if rounding == "stochastic" and key is not None else "nearest"
            return fake_quant(w, bits, symmetric=symmetric, axis=axis, rounding=mode, key=key)

        return int_transform
    if kind == "binary":
        return lambda w, key=None: binarize_ste(w, axis=axis)
    if kind == "ternary":
        return lambda w, key=None: ternarize_ste(w, axis=axis)
    raise ConfigError(f"weight quantization kind must be int, binary or ternary; got {kind!r}")


class FakeQuantModel:
    """A Linen model whose selected kernels are fake-quantised on every ``apply``.

    It has the wrapped model's ``init`` and parameter tree, so the training
    loop, checkpoints and sharding see an ordinary model; the optimiser keeps
    and updates the float weights while the forward pass sees quantised ones
    (quantization-aware training with straight-through gradients).

    Args:
      model: any Flax Linen module.
      transform: ``w -> w_q`` (see :func:`weight_transform`).
      include, exclude: regexes over parameter paths (kernels only: ``ndim >= 2``).

    References:
      Jacob et al., CVPR 2018 (simulated quantization in training).
    """

    def __init__(self, model: Any, transform: Callable[..., jax.Array], include: Any = ".*", exclude: Any = ()):
        self.model, self.transform, self.include, self.exclude = model, transform, include, exclude

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.init(*args, **kwargs)

    def quantized_params(self, params: Any, key: jax.Array | None = None) -> Any:
        selection = select(params, self.include, self.exclude, field="quant.include")
        if key is None:
            return fake_quant_tree(params, selection, self.transform)
        leaves = jax.tree.leaves(params)
        keys = iter(jax.random.split(key, len(leaves)))
        return jax.tree.map(lambda p, s: self.transform(p, next(keys)) if s else p, params, selection)

    def apply(self, variables: dict[str, Any], *args: Any, quant_key: jax.Array | None = None,
              **kwargs: Any) -> Any:
        """The wrapped model's ``apply`` on quantised weights.

        Stochastic rounding noise comes from ``quant_key`` or, in training
        calls that pass ``rngs``, from a key folded out of the first of them.
        """
        if quant_key is None and kwargs.get("rngs"):
            quant_key = jax.random.fold_in(next(iter(kwargs["rngs"].values())), 0x51A7)
        variables = {**variables, "params": self.quantized_params(variables["params"], quant_key)}
        return self.model.apply(variables, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def params_quantizer(quant_config: Any) -> FakeQuantModel | None:
    """The straight-through weight quantizer that a ``QuantConfig`` with ``qat`` = ``fake_quant``,
    ``binary`` or ``ternary`` asks for (None for ``none``), as a :class:`FakeQuantModel` without a model:
    its ``quantized_params(params, key)`` serves any task (see ``train.qat``).

    Raises:
      ConfigError: for ``qat=qwix``, which intercepts a model's layers instead (:func:`model_for_training`).
    """
    kind = getattr(quant_config, "qat", "none")
    if kind == "none":
        return None
    if kind == "qwix":
        raise ConfigError("quant.qat=qwix quantizes a model's layers, not its parameters; use model_for_training")
    transform = weight_transform({"fake_quant": "int"}.get(kind, kind), quant_config.weight_bits,
                                 per_channel=quant_config.per_channel, symmetric=quant_config.symmetric,
                                 rounding=quant_config.rounding)
    return FakeQuantModel(None, transform, quant_config.include or ".*", quant_config.exclude or ())


def model_for_training(model: Any, quant_config: Any) -> Any:
    """The QAT view of ``model`` that a ``QuantConfig`` asks for (``model`` itself for ``qat=none``).

    ``qwix`` uses qwix's ``QtProvider`` (weights and, with ``act_bits``,
    activations); ``fake_quant``, ``binary`` and ``ternary`` use
    :class:`FakeQuantModel` with our STE transforms.
    """
    kind = getattr(quant_config, "qat", "none")
    if kind == "none":
        return model
    if kind == "qwix":
        from jaxcompress.compress.qwix_quant import qat_model

        return qat_model(model, quant_config.weight_bits, quant_config.act_bits or None, quant_config.include)
    quantizer = params_quantizer(quant_config)
    return FakeQuantModel(model, quantizer.transform, quantizer.include, quantizer.exclude)


# ----------------------------------------------------------------------------
# Compact encodings (host-side NumPy)


def _leaf_encoding_quant(codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, bits: int,
                         qmin: int, path: str, shape: tuple[int, ...],
                         sparse_allowed: bool = True) -> tuple[LeafStorage, tuple[str, dict[str, np.ndarray]]]:
    """Packed codes (dense, or non-zero codes + bitmask when smaller) and their storage record."""
    codes = codes.astype(np.int64).reshape(shape)
    zp = np.zeros_like(scale) if zero_point is None else zero_point
    is_zero = np.broadcast_to(codes == zp, shape)  # positions whose value dequantises to exactly 0
    size = int(np.prod(shape))
    nnz = int(size - np.count_nonzero(is_zero))
    num_scales = int(scale.size)
    meta = num_scales * 4 * (2 if zero_point is not None else 1)
    fmt = {8: "int8", 4: "int4", 2: "ternary", 1: "binary"}.get(bits, "int8")
    header = {"bits": np.asarray(bits, np.int8), "qmin": np.asarray(qmin, np.int16),
              "scale": scale.astype(np.float32)}
    if zero_point is not None:
        header["zero_point"] = zero_point.astype(np.int32)
    dense_bytes = packed_nbytes(size, bits)
    sparse_value, sparse_index = packed_nbytes(nnz, bits), math.ceil(size / 8)
    if sparse_allowed and nnz < size and sparse_value + sparse_index < dense_bytes:
        keep = ~is_zero.ravel()
        parts = {**header, "codes": pack_bits(codes.ravel()[keep] - qmin, bits), "mask": pack_mask(keep)}
        return LeafStorage(path, shape, fmt, sparse_value, sparse_index, meta, nnz), ("quant", parts)
    parts = {**header, "codes": pack_bits(codes.ravel() - qmin, bits)}
    return LeafStorage(path, shape, fmt, dense_bytes, 0, meta, nnz), ("quant", parts)


@register_decoder("quant")
def decode_quant(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``(code - zero_point) * scale`` from packed codes (and a bitmask for sparse leaves)."""
    bits, qmin = int(parts["bits"]), int(parts["qmin"])
    size = int(np.prod(shape))
    scale = parts["scale"].astype(np.float32)
    zero_point = parts["zero_point"].astype(np.float32) if "zero_point" in parts else np.zeros_like(scale)
    if "mask" in parts:
        keep = unpack_mask(parts["mask"], size)
        codes = np.broadcast_to(zero_point, shape).astype(np.float32).ravel().copy()
        codes[keep] = unpack_bits(parts["codes"], bits, int(keep.sum())) + qmin
    else:
        codes = (unpack_bits(parts["codes"], bits, size) + qmin).astype(np.float32)
    return ((codes.reshape(shape) - zero_point) * scale).astype(np.float32)


@register_decoder("binary")
def decode_binary(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``alpha * sign`` from one sign bit per weight (per stored weight plus a mask when pruned)."""
    size = int(np.prod(shape))
    alpha = parts["alpha"].astype(np.float32)
    if "mask" in parts:
        keep = unpack_mask(parts["mask"], size)
        signs = np.zeros(size, np.float32)
        signs[keep] = unpack_bits(parts["signs"], 1, int(keep.sum())) * 2.0 - 1.0
    else:
        signs = unpack_bits(parts["signs"], 1, size) * 2.0 - 1.0
    return (signs.reshape(shape) * alpha).astype(np.float32)


@register_decoder("ternary")
def decode_ternary(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``alpha * {-1, 0, +1}`` from a bitmask of non-zeros and one sign bit per non-zero."""
    size = int(np.prod(shape))
    keep = unpack_mask(parts["mask"], size)
    values = np.zeros(size, np.float32)
    values[keep] = unpack_bits(parts["signs"], 1, int(keep.sum())) * 2.0 - 1.0
    return (values.reshape(shape) * parts["alpha"].astype(np.float32)).astype(np.float32)


def _encode_binary(path: str, w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, tuple]:
    axis = -1 if per_channel else None
    alpha = np.asarray(xnor_scale(jnp.asarray(w), axis), np.float32)
    shape, size = w.shape, w.size
    sparse = bool(np.any(w == 0)) and w.ndim > 0
    meta = alpha.size * 4
    if sparse:  # a pruned kernel stays sparse: bitmask + one sign bit per survivor
        keep = (w != 0).ravel()
        parts = {"alpha": alpha, "mask": pack_mask(keep), "signs": pack_bits(w.ravel()[keep] > 0, 1)}
        nnz = int(keep.sum())
        storage = LeafStorage(path, shape, "binary", packed_nbytes(nnz, 1), math.ceil(size / 8), meta, nnz)
    else:
        parts = {"alpha": alpha, "signs": pack_bits(w.ravel() >= 0, 1)}
        storage = LeafStorage(path, shape, "binary", packed_nbytes(size, 1), 0, meta, size)
    return decode_binary(parts, shape).astype(w.dtype), (storage, ("binary", parts))


def _encode_ternary(path: str, w: np.ndarray, per_channel: bool, factor: float) -> tuple[np.ndarray, tuple]:
    axis = -1 if per_channel else None
    t = np.asarray(ternarize(jnp.asarray(w), axis=axis, factor=factor))
    delta_keep = t != 0
    axes = _reduce_axes(w.ndim, axis)
    count = np.maximum(delta_keep.sum(axis=axes, keepdims=True), 1)
    alpha = (np.where(delta_keep, np.abs(w), 0).sum(axis=axes, keepdims=True) / count).astype(np.float32)
    keep = delta_keep.ravel()
    parts = {"alpha": alpha, "mask": pack_mask(keep), "signs": pack_bits(w.ravel()[keep] > 0, 1)}
    nnz = int(keep.sum())
    storage = LeafStorage(path, w.shape, "ternary", packed_nbytes(nnz, 1), math.ceil(w.size / 8),
                          alpha.size * 4, nnz)
    return decode_ternary(parts, w.shape).astype(w.dtype), (storage, ("ternary", parts))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _reference_codes(x: jax.Array, key: jax.Array | None, bits: int, per_channel: bool, symmetric: bool,
                     rounding: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    scale, zero_point = calibrate(x, bits, symmetric=symmetric, axis=-1 if per_channel else None)
    return quantize_codes(x, scale, zero_point, bits, symmetric=symmetric, rounding=rounding, key=key), \
        scale, zero_point


def quantize_leaf(path: str, w: np.ndarray, bits: int, *, per_channel: bool = True, symmetric: bool = True,
                  backend: str = "qwix", rounding: str = "nearest",
                  key: jax.Array | None = None) -> tuple[np.ndarray, tuple[LeafStorage, tuple]]:
    """One leaf -> (dequantised float value, (storage, encoding)).

    ``backend="qwix"`` takes codes and scales from ``qwix.quantize`` (its grid
    uses ``[-2^(b-1), 2^(b-1) - 1]`` with ``scale = max|w| / (2^(b-1) - 0.5)``);
    ``backend="reference"`` from :func:`calibrate` / :func:`quantize_codes`.
    """
    if backend == "qwix":
        from jaxcompress.compress.qwix_quant import qwix_codes

        codes, scale, zero_point, qmin = qwix_codes(w, bits, per_channel=per_channel, symmetric=symmetric)
    else:
        codes_j, scale_j, zp_j = _reference_codes(jnp.asarray(w, jnp.float32), key, bits, per_channel, symmetric,
                                                  rounding)
        codes = np.asarray(codes_j).astype(np.int64)
        scale = np.asarray(scale_j, np.float32)
        zero_point = None if symmetric else np.asarray(zp_j).astype(np.int32)
        qmin = int_range(bits, symmetric)[0]
    storage, encoding = _leaf_encoding_quant(codes, scale, zero_point, bits, qmin, path, w.shape)
    return decode_quant(encoding[1], w.shape).astype(w.dtype), (storage, encoding)


# ----------------------------------------------------------------------------
# Packed int4 weights on the device, dequantised inside the jitted forward pass


@flax.struct.dataclass
class PackedInt4:
    """A kernel held on the device as two 4-bit codes per byte plus per-channel scales.

    Attributes:
      packed: uint8 ``[ceil(size / 2)]``, code ``2i`` in the low nibble of byte ``i``.
      scale: float ``[1, ..., C_out]`` (broadcastable to ``shape``).
      shape: the kernel's shape (static).
    """

    packed: jax.Array
    scale: jax.Array
    shape: tuple[int, ...] = flax.struct.field(pytree_node=False)

    def dequantize(self) -> jax.Array:
        """Unpacks nibbles and rescales: ``(code - 7) * scale`` (symmetric grid, codes 0..14)."""
        size = int(np.prod(self.shape))
        pairs = jnp.stack([self.packed & 0xF, self.packed >> 4], axis=-1).reshape(-1)[:size]
        return ((pairs.astype(jnp.float32) - 7.0).reshape(self.shape) * self.scale).astype(self.scale.dtype)


def pack_int4(params: Any, include: Any = ".*", exclude: Any = ()) -> Any:
    """Params with the selected kernels replaced by :class:`PackedInt4` (symmetric, per channel).

    Dequantising them (:func:`unpack_int4`) gives exactly the reference
    ``fake_quant(w, 4)`` weights.
    """
    selection = select(params, include, exclude, field="include")

    def leaf(w: Any, chosen: bool) -> Any:
        if not chosen:
            return w
        w = jnp.asarray(w)
        scale, zero = calibrate(w, 4, symmetric=True, axis=-1)
        codes = np.asarray(quantize_codes(w, scale, zero, 4)).astype(np.int64) + 7
        return PackedInt4(jnp.asarray(pack_bits(codes.ravel(), 4)), scale, tuple(w.shape))

    return jax.tree.map(leaf, params, selection)


def unpack_int4(params: Any) -> Any:
    """Float params from a tree with :class:`PackedInt4` leaves (jittable)."""
    return jax.tree.map(lambda x: x.dequantize() if isinstance(x, PackedInt4) else x, params,
                        is_leaf=lambda x: isinstance(x, PackedInt4))


# ----------------------------------------------------------------------------
# Steps: Compressed -> Compressed


def _lossy(artifact: Compressed, path: str) -> bool:
    return artifact.encodings.get(path, ("dense", {}))[0] in LOSSY_CODECS


def _apply_per_leaf(artifact: Compressed, step: dict[str, Any], include: Any, exclude: Any, field: str,
                    encode: Callable[[str, np.ndarray], tuple[np.ndarray, tuple]]) -> Compressed:
    selection = select(artifact.params, include, exclude, field=field)
    updates: dict[str, tuple] = {}
    skipped: list[str] = []

    def visit(path: str, leaf: Any, chosen: bool) -> Any:
        if not chosen:
            return leaf
        if _lossy(artifact, path):
            skipped.append(path)  # already quantised / clustered / hashed: leave its compact form alone
            return leaf
        value, update = encode(path, np.asarray(leaf))
        updates[path] = update
        return value

    params = map_with_path(visit, artifact.params, selection)
    return artifact.with_leaves({**step, "leaves": sorted(updates), "skipped": skipped}, params, updates)


def quantize_params(artifact: Compressed, *, bits: int = 8, per_channel: bool = True, symmetric: bool = True,
                    include: Any = ".*", exclude: Any = (), backend: str = "qwix", rounding: str = "nearest",
                    seed: int = 0) -> Compressed:
    """Post-training weight quantization of the selected kernels to packed ``bits``-bit codes.

    Args:
      artifact: the model so far (pruned leaves keep their zeros and are stored
        as non-zero codes + bitmask when that is smaller).
      bits: 2, 4 or 8.
      per_channel: one scale per output channel (last axis) or per tensor.
      symmetric: symmetric or affine grid (affine stores int32 zero points).
      include, exclude: regexes over parameter paths.
      backend: ``qwix`` (qwix's quantizer) or ``reference`` (ours; needed for
        stochastic rounding).
      rounding: ``nearest`` or ``stochastic`` (reference backend).
      seed: stochastic rounding seed.

    References:
      Jacob et al., CVPR 2018; Han, Mao & Dally, ICLR 2016 (sparse + quantised storage).
    """
    if bits not in STEP_BITS:
        raise ConfigError(f"quantize.bits must be one of {', '.join(map(str, STEP_BITS))}; got {bits!r}")
    if backend not in ("qwix", "reference"):
        raise ConfigError(f"quantize.backend must be qwix or reference; got {backend!r}")
    if rounding not in ROUNDINGS:
        raise ConfigError(f"quantize.rounding must be one of {', '.join(ROUNDINGS)}; got {rounding!r}")
    if rounding == "stochastic" and backend == "qwix":
        raise ConfigError("quantize.rounding=stochastic needs quantize.backend=reference")
    counter = iter(range(1 << 30))

    def encode(path: str, w: np.ndarray) -> tuple[np.ndarray, tuple]:
        key = jax.random.fold_in(jax.random.key(seed), next(counter)) if rounding == "stochastic" else None
        return quantize_leaf(path, w, bits, per_channel=per_channel, symmetric=symmetric, backend=backend,
                             rounding=rounding, key=key)

    step = {"method": "quantize", "bits": bits, "per_channel": per_channel, "symmetric": symmetric,
            "backend": backend, "rounding": rounding}
    return _apply_per_leaf(artifact, step, include, exclude, "quantize.include", encode)


def binarize_params(artifact: Compressed, *, per_channel: bool = True, include: Any = ".*",
                    exclude: Any = ()) -> Compressed:
    """XNOR-style binary weights: one sign bit per weight plus ``alpha = mean|W|`` per channel.

    References: Rastegari et al., "XNOR-Net", ECCV 2016.
    """
    step = {"method": "binarize", "per_channel": per_channel}
    return _apply_per_leaf(artifact, step, include, exclude, "binarize.include",
                           lambda path, w: _encode_binary(path, w, per_channel))


def ternarize_params(artifact: Compressed, *, per_channel: bool = False, factor: float = 0.7,
                     include: Any = ".*", exclude: Any = ()) -> Compressed:
    """TWN ternary weights stored as a bitmask of non-zeros, one sign bit each, and ``alpha``.

    References: Li, Zhang & Liu, "Ternary Weight Networks", arXiv 1605.04711.
    """
    step = {"method": "ternarize", "per_channel": per_channel, "factor": factor}
    return _apply_per_leaf(artifact, step, include, exclude, "ternarize.include",
                           lambda path, w: _encode_ternary(path, w, per_channel, factor))


@register_method("quantize")
def quantize_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: bits (2|4|8), per_channel, symmetric, include, exclude, backend (qwix|reference),
    rounding (nearest|stochastic), seed."""
    m = "quantize"
    opt.check_known(m, options, ("bits", "per_channel", "symmetric", "include", "exclude", "backend",
                                 "rounding", "seed"))
    return quantize_params(
        artifact, bits=opt.choice(m, options, "bits", 8, STEP_BITS),
        per_channel=opt.boolean(m, options, "per_channel", True),
        symmetric=opt.boolean(m, options, "symmetric", True),
        include=opt.rules(m, options, "include", ".*"), exclude=opt.rules(m, options, "exclude", ""),
        backend=opt.choice(m, options, "backend", "qwix", ("qwix", "reference")),
        rounding=opt.choice(m, options, "rounding", "nearest", ROUNDINGS),
        seed=opt.integer(m, options, "seed", 0, low=0))


@register_method("binarize")
def binarize_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: per_channel, include, exclude."""
    m = "binarize"
    opt.check_known(m, options, ("per_channel", "include", "exclude"))
    return binarize_params(artifact, per_channel=opt.boolean(m, options, "per_channel", True),
                           include=opt.rules(m, options, "include", ".*"),
                           exclude=opt.rules(m, options, "exclude", ""))


@register_method("ternarize")
def ternarize_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: per_channel, factor (threshold = factor * mean|W|), include, exclude."""
    m = "ternarize"
    opt.check_known(m, options, ("per_channel", "factor", "include", "exclude"))
    return ternarize_params(artifact, per_channel=opt.boolean(m, options, "per_channel", False),
                            factor=opt.number(m, options, "factor", 0.7, low=0.0, high=10.0, low_open=True),
                            include=opt.rules(m, options, "include", ".*"),
                            exclude=opt.rules(m, options, "exclude", ""))
