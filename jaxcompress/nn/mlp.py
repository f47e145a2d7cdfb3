"""A small multi-layer perceptron classifier with logical axis names.

It is the tiny model the core runtime trains in tests and in the default
demo; its kernels alternate ``(embed, mlp)`` and ``(mlp, embed)`` like a
Megatron feed-forward block, so both the ``fsdp`` and the ``tensor`` mesh axes
shard it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError


@dataclasses.dataclass
class MLPConfig:
    """A multi-layer perceptron classifier (the tiny model of the core runtime)."""

    hidden_sizes: tuple[int, ...] = option((128, 128), help="widths of the hidden layers")
    dropout: float = option(0.1, help="dropout rate after each hidden layer", min=0.0, max=0.95)

    def validate(self, prefix: str) -> None:
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(
                f"config key '{prefix}hidden_sizes' must be a non-empty list of positive widths, "
                f"got {self.hidden_sizes!r}")


def _dense(features: int, names: tuple[str, str], name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]),
        name=name,
    )


class MLPClassifier(nn.Module):
    """Flattens its input and maps it through ReLU layers to class logits.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      num_classes: number of output logits.
      dropout: dropout rate after each hidden layer (training only).

    Shapes:
      inputs [B, ...] -> logits [B, num_classes].

    References:
      Rumelhart, Hinton & Williams, "Learning representations by
      back-propagating errors", Nature 1986.
    """

    hidden_sizes: Sequence[int]
    num_classes: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False) -> jax.Array:
        x = inputs.reshape(inputs.shape[0], -1).astype(jnp.float32)
        x = nn.with_logical_constraint(x, ("batch", "embed"))
        axes = [("embed", "mlp"), ("mlp", "embed")]
        for i, width in enumerate(self.hidden_sizes):
            names = axes[i % 2]
            x = nn.relu(_dense(width, names, f"hidden_{i}")(x))
            x = nn.with_logical_constraint(x, ("batch", names[1]))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        last = axes[(len(self.hidden_sizes) - 1) % 2][1]
        return _dense(self.num_classes, (last, "classes"), "logits")(x)
