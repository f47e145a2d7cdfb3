"""A small convolutional classifier with logical axis names (digits-sized images).

Conv kernels are ``[kh, kw, C_in, C_out]`` named ``(None, None, conv_in,
conv_out)``: the output channels split over the ``tensor`` mesh axis and the
spatial taps stay whole. After the convolutions the feature map is flattened
into a small ReLU layer and the class logits, named like the MLP's
``(embed, mlp)`` / ``(mlp, classes)``.

Layer names are stable (``conv_0``, ``conv_1``, ..., ``hidden``, ``logits``)
because compression rules and distillation feature taps select them by path.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError

CONV_AXES = (None, None, "conv_in", "conv_out")


@dataclasses.dataclass
class CNNConfig:
    """A small convolutional classifier (conv/ReLU/pool blocks, a hidden layer, logits)."""

    channels: tuple[int, ...] = option((16, 32), help="output channels of each conv layer")
    kernel_size: int = option(3, help="square kernel size of every conv", min=1)
    hidden_size: int = option(64, help="width of the ReLU layer after flattening (0: none)", min=0)
    dropout: float = option(0.0, help="dropout rate before the logits", min=0.0, max=0.95)

    def validate(self, prefix: str) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(
                f"config key '{prefix}channels' must be a non-empty list of positive widths, "
                f"got {self.channels!r}")


def conv(features: int, kernel_size: int, name: str) -> nn.Conv:
    """A ``SAME``-padded conv whose kernel and bias carry logical axis names."""
    return nn.Conv(
        features, (kernel_size, kernel_size), padding="SAME",
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), CONV_AXES),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        name=name,
    )


def _dense(features: int, names: tuple[str, str], name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]),
        name=name,
    )


class CNNClassifier(nn.Module):
    """Conv -> ReLU -> 2x2 average pool blocks, then a hidden ReLU layer and logits.

    Attributes:
      channels: output channels of each conv layer (``conv_0``, ``conv_1``, ...).
      num_classes: number of output logits.
      kernel_size: square kernel size of every conv.
      hidden_size: width of the ReLU layer after flattening (0: none).
      dropout: dropout rate before the logits (training only).

    Shapes:
      inputs [B, H, W] or [B, H, W, C] -> logits [B, num_classes]. Pooling
      halves H and W after each conv while both are at least 2. With
      ``return_features`` the call returns ``(logits, feature map [B, h, w,
      channels[-1]])``, the map the flattening reads (training-only heads
      such as Look-into-Object attach there).

    References:
      LeCun et al., "Gradient-based learning applied to document
      recognition", Proc. IEEE 1998 (LeNet-style conv/pool stacks).
    """

    channels: Sequence[int]
    num_classes: int
    kernel_size: int = 3
    hidden_size: int = 64
    dropout: float = 0.0

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False,
                 return_features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        x = inputs.astype(jnp.float32)
        if x.ndim == 3:
            x = x[..., None]
        for i, width in enumerate(self.channels):
            x = nn.relu(conv(width, self.kernel_size, f"conv_{i}")(x))
            x = nn.with_logical_constraint(x, ("batch", None, None, "conv_out"))
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        features = x
        x = x.reshape(x.shape[0], -1)
        x = nn.with_logical_constraint(x, ("batch", "embed"))
        last = "embed"
        if self.hidden_size:
            x = nn.relu(_dense(self.hidden_size, ("embed", "mlp"), "hidden")(x))
            x = nn.with_logical_constraint(x, ("batch", "mlp"))
            last = "mlp"
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = _dense(self.num_classes, (last, "classes"), "logits")(x)
        return (logits, features) if return_features else logits
