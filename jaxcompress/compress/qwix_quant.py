"""Quantization through qwix (Google's JAX quantization library) on Flax Linen models.

* :func:`ptq_model` — post-training quantization: int8 / int4 weights per
  output channel (and, with ``act_bits``, dynamic-range activation
  quantization so the matmuls run as int8 x int8 -> int32). Returns the
  qwix-rewritten model and its quantised params (``QArray`` leaves).
* :func:`qat_model` — quantization-aware training: qwix's ``QtProvider``
  fake-quantises weights (and activations) in the forward pass with
  straight-through gradients; the params stay float, so the core loop trains
  it like any model.
* :func:`qwix_codes` — qwix's quantizer on one array, for the compact
  ``quantize`` step's codes and scales.

What qwix 0.1.8 does and does not do here (flax 0.12.8, jax 0.10.2, Linen):
PTQ and QAT of Dense layers work for int8 and int4, with or without
activation quantization. PTQ of a **conv** needs ``act_bits == weight_bits``
(qwix raises otherwise: its conv path quantises both operands), so weight-only
conv PTQ is refused with a ConfigError here; QAT of convs works weight-only.
int4 x int4 convs fail to compile on the XLA **CPU** backend ("does not
support custom element sizes on non-sub-byte types").

Module selection: ``module_path`` is a regex searched in qwix's module paths
(``conv_0``, ``encoder/layer_0/attention``), not in parameter paths.

References:
  google/qwix (quantization providers, QArray); Jacob et al., "Quantization
  and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import qwix

from jaxcompress.errors import ConfigError

QWIX_BITS = (2, 3, 4, 8)


def qtype(bits: int, field: str = "bits") -> Any:
    """qwix's quantized type for a bit width."""
    types = {8: jnp.int8, 4: jnp.int4, 3: "int3", 2: "int2"}
    if bits not in types:
        raise ConfigError(f"{field} must be one of {', '.join(map(str, QWIX_BITS))} for qwix; got {bits!r}")
    return types[bits]


def _search(pattern: str) -> str:
    # qwix full-matches its module_path regex; we search, like parameter rules do.
    return pattern if pattern in (".*", "") else f".*(?:{pattern}).*"


def rules(weight_bits: int, act_bits: int | None = None, module_path: str = ".*",
          rule_class: type = qwix.QuantizationRule, **extra: Any) -> list[Any]:
    """One qwix rule quantising weights (and activations) of the matching modules."""
    return [rule_class(module_path=_search(module_path), weight_qtype=qtype(weight_bits, "weight_bits"),
                       act_qtype=None if not act_bits else qtype(act_bits, "act_bits"), **extra)]


def ptq_model(model: Any, params: Any, *example_args: Any, weight_bits: int = 8, act_bits: int | None = None,
              module_path: str = ".*", **example_kwargs: Any) -> tuple[Any, Any]:
    """Post-training quantization of a Linen model with qwix.

    Args:
      model: a Flax Linen module.
      params: its float params (unboxed).
      example_args, example_kwargs: inputs for tracing the model's shapes.
      weight_bits: 8 or 4 (2, 3 also accepted by qwix).
      act_bits: None for weight-only; else dynamic-range activation bits.
      module_path: regex searched in module paths.

    Returns:
      ``(quantized_model, quantized_params)``: call
      ``quantized_model.apply({"params": quantized_params}, x)``.

    Raises:
      ConfigError: for unsupported bit widths and for weight-only PTQ of a conv.
    """
    quantized = qwix.quantize_model(model, qwix.PtqProvider(rules(weight_bits, act_bits, module_path)))
    try:
        abstract = jax.eval_shape(lambda: quantized.init(jax.random.key(0), *example_args, **example_kwargs))
    except ValueError as exc:
        if "conv_general_dilated requires same act_qtype and weight_qtype" in str(exc):
            raise ConfigError("qwix PTQ of a conv layer needs act_bits equal to weight_bits (qwix quantises "
                              "both conv operands); set act_bits, or exclude the convs with module_path"
                              ) from None
        raise
    qparams = qwix.quantize_params(params, abstract["params"])
    return quantized, qparams


def qat_model(model: Any, weight_bits: int = 8, act_bits: int | None = None, module_path: str = ".*") -> Any:
    """A qwix quantization-aware-training view of ``model`` (same params, STE gradients).

    References: Jacob et al., CVPR 2018; qwix ``QtProvider`` with ``bwd_qtype=None``.
    """
    provider = qwix.QtProvider(rules(weight_bits, act_bits, module_path, rule_class=qwix.QtRule))
    return qwix.quantize_model(model, provider)


@functools.partial(jax.jit, static_argnames=("bits", "per_channel", "symmetric"))
def _qwix_quantize(array: jax.Array, bits: int, per_channel: bool, symmetric: bool) -> tuple:
    # One compiled program per leaf shape instead of a dispatch per primitive.
    axes = (array.ndim - 1,) if per_channel and array.ndim else ()
    qarray = qwix.quantize(array, qtype(bits), channelwise_axes=axes,
                           calibration_method="absmax" if symmetric else "minmax")
    zero_point = None if qarray.zero_point is None else qarray.zero_point.astype(jnp.int8)
    return qarray.qvalue.astype(jnp.int8), qarray.scale, zero_point


def qwix_codes(w: np.ndarray, bits: int, *, per_channel: bool = True,
               symmetric: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """qwix's quantization of one array: ``(codes, scale, zero_point or None, qmin)``.

    ``codes`` are signed integers in ``[-2^(b-1), 2^(b-1) - 1]`` and
    ``w ≈ (codes - zero_point) * scale`` with ``scale`` broadcastable to ``w``.
    """
    qtype(bits)  # validates before tracing
    codes, scale, zero_point = _qwix_quantize(jnp.asarray(w, jnp.float32), bits, per_channel, symmetric)
    zero_point = None if zero_point is None else np.asarray(zero_point).astype(np.int32)
    return np.asarray(codes).astype(np.int64), np.asarray(scale, np.float32), zero_point, -(2 ** (bits - 1))


def dequantize_tree(qparams: Any) -> Any:
    """Float params from a qwix PTQ param tree (``QArray`` leaves dequantised)."""
    from qwix._src.providers.ptq import WithAux

    def leaf(x: Any) -> Any:
        if isinstance(x, WithAux):
            x = x.array
        return qwix.dequantize(x) if isinstance(x, qwix.QArray) else x

    return jax.tree.map(leaf, qparams, is_leaf=lambda x: isinstance(x, (WithAux, qwix.QArray)))


def qparams_nbytes(qparams: Any) -> int:
    """Bytes of a qwix param tree as held in memory (int4 counted at half a byte)."""
    total = 0.0
    for leaf in jax.tree.leaves(qparams):
        bits = jnp.iinfo(leaf.dtype).bits if jnp.issubdtype(leaf.dtype, jnp.integer) else leaf.dtype.itemsize * 8
        total += leaf.size * bits / 8
    return int(np.ceil(total))
