"""Running factored layers without per-model code: a Flax method interceptor.

Low-rank factorisation and compact filters replace a layer's ``kernel`` by
factors in the param tree. Inside :func:`factored_layers`, every ``nn.Dense``
and ``nn.Conv`` whose params hold factors instead of a kernel computes with
the factors; all other layers run unchanged, so the same model class, config
and ``apply`` call serve the dense and the factored model::

    with factored_layers():
        logits = model.apply({"params": factored_params}, x)

Recognised param sets (plus the layer's own ``bias``):

* Dense ``U [in, r]``, ``V [r, out]``: ``y = (x @ U) @ V`` (truncated SVD).
* Conv ``first [C_in, r_in]``, ``core [kh, kw, r_in, r_out]``, ``last [r_out, C_out]``:
  1x1 conv, kh x kw conv (the layer's strides, padding and dilation), 1x1 conv
  (Tucker-2).
* Conv ``depthwise [kh, kw, 1, C_in]``, ``pointwise [C_in, C_out]``: a
  depthwise conv then a 1x1 conv (depthwise-separable).
* 2-D conv ``vertical [kh, 1, C_in, r]``, ``horizontal [1, kw, r, C_out]``: a
  kh x 1 conv then a 1 x kw conv (spatially separable, Jaderberg's scheme 2);
  the layer's strides and padding are split between the two axes.

The 1x1 stages commute with zero padding (they are linear, without bias),
so the chains equal the convolution with the reconstructed kernel.

References:
  Denton et al., "Exploiting Linear Structure Within Convolutional Networks
  for Efficient Evaluation", NeurIPS 2014; Kim et al., "Compression of Deep
  Convolutional Neural Networks for Fast and Low Power Mobile Applications",
  ICLR 2016 (Tucker-2); Howard et al., "MobileNets", arXiv 1704.04861.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.errors import ConfigError

DENSE_FACTORS = ("U", "V")
TUCKER_FACTORS = ("first", "core", "last")
SEPARABLE_FACTORS = ("depthwise", "pointwise")
SPATIAL_FACTORS = ("vertical", "horizontal")
ALL_FACTORS = DENSE_FACTORS + TUCKER_FACTORS + SEPARABLE_FACTORS + SPATIAL_FACTORS


def _has(module: nn.Module, names: tuple[str, ...]) -> bool:
    return all(module.has_variable("params", n) for n in names) and not module.has_variable("params", "kernel")


def _get(module: nn.Module, name: str) -> jax.Array:
    return module.get_variable("params", name)


def _bias(module: nn.Module, y: jax.Array) -> jax.Array:
    if module.use_bias and module.has_variable("params", "bias"):
        y = y + _get(module, "bias")
    return y


def _conv_padding(module: nn.Conv) -> Any:
    padding = module.padding
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ConfigError(f"factored conv {'/'.join(module.path)} has padding {padding!r}; "
                              f"only SAME, VALID and explicit pads are supported")
        return padding.upper()
    if isinstance(padding, int):
        return [(padding, padding)] * len(module.kernel_size)
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    if value is None:
        return (1,) * n
    if isinstance(value, int):
        return (value,) * n
    return tuple(value)


def _channels_last(ndim: int) -> jax.lax.ConvDimensionNumbers:
    """Flax's layout: inputs ``[N, *spatial, C]``, kernels ``[*spatial, C_in, C_out]``."""
    spatial = tuple(range(1, ndim - 1))
    return jax.lax.ConvDimensionNumbers((0, ndim - 1) + spatial, (ndim - 1, ndim - 2) + tuple(range(ndim - 2)),
                                        (0, ndim - 1) + spatial)


def _spatial_conv(module: nn.Conv, x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
    n = len(module.kernel_size)
    if x.ndim != n + 2:
        raise ConfigError(f"factored conv {'/'.join(module.path)} expects inputs [batch, *spatial, channels]")
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=_tuple(module.strides, n), padding=_conv_padding(module),
        lhs_dilation=_tuple(module.input_dilation, n), rhs_dilation=_tuple(module.kernel_dilation, n),
        dimension_numbers=_channels_last(x.ndim), feature_group_count=groups,
        precision=module.precision)


def _split_padding(module: nn.Conv, axis: int) -> Any:
    padding = _conv_padding(module)
    if isinstance(padding, str):
        return padding  # SAME / VALID pad each axis on its own, so they split exactly
    return [pad if i == axis else (0, 0) for i, pad in enumerate(padding)]


def _interceptor(next_fun: Any, args: tuple, kwargs: dict, context: Any) -> Any:
    module = context.module
    if context.method_name != "__call__" or module.scope is None or not isinstance(module, (nn.Dense, nn.Conv)):
        return next_fun(*args, **kwargs)
    x = args[0] if args else kwargs["inputs"]
    if isinstance(module, nn.Dense) and _has(module, DENSE_FACTORS):
        x = jnp.asarray(x, module.dtype or jnp.result_type(x, _get(module, "U")))
        return _bias(module, jnp.dot(jnp.dot(x, _get(module, "U"), precision=module.precision),
                                     _get(module, "V"), precision=module.precision))
    if isinstance(module, nn.Conv) and _has(module, TUCKER_FACTORS):
        if module.feature_group_count != 1:
            raise ConfigError(f"Tucker-2 factors on grouped conv {'/'.join(module.path)} are not supported")
        h = jnp.dot(x, _get(module, "first"), precision=module.precision)
        h = _spatial_conv(module, h, _get(module, "core"), 1)
        return _bias(module, jnp.dot(h, _get(module, "last"), precision=module.precision))
    if isinstance(module, nn.Conv) and _has(module, SEPARABLE_FACTORS):
        h = _spatial_conv(module, x, _get(module, "depthwise"), x.shape[-1])
        return _bias(module, jnp.dot(h, _get(module, "pointwise"), precision=module.precision))
    if isinstance(module, nn.Conv) and _has(module, SPATIAL_FACTORS):
        if module.feature_group_count != 1 or len(module.kernel_size) != 2:
            raise ConfigError(f"spatially separable factors need a plain 2-D conv ({'/'.join(module.path)})")
        strides = _tuple(module.strides, 2)
        dims = _channels_last(x.ndim)
        h = jax.lax.conv_general_dilated(
            x, _get(module, "vertical"), (strides[0], 1), _split_padding(module, 0),
            lhs_dilation=_tuple(module.input_dilation, 2), rhs_dilation=_tuple(module.kernel_dilation, 2),
            dimension_numbers=dims, precision=module.precision)
        h = jax.lax.conv_general_dilated(
            h, _get(module, "horizontal"), (1, strides[1]), _split_padding(module, 1),
            rhs_dilation=_tuple(module.kernel_dilation, 2), dimension_numbers=dims, precision=module.precision)
        return _bias(module, h)
    return next_fun(*args, **kwargs)


@contextlib.contextmanager
def factored_layers() -> Iterator[None]:
    """Within this context, Dense/Conv layers with factor params compute with their factors.

    A no-op for layers that hold a ``kernel``, so it is safe around any model.
    """
    with nn.intercept_methods(_interceptor):
        yield


def is_factored(params: Any) -> bool:
    """True if any leaf of ``params`` is named like a factor."""
    from jaxcompress.compress.paths import leaf_paths

    return any(path.rsplit("/", 1)[-1] in ALL_FACTORS for path in leaf_paths(params))
