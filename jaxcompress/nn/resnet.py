"""ResNet-18 / ResNet-50 classifiers (standard stage layout) with logical axis names.

The layout is He et al.'s: a stem (7x7 stride-2 conv and 3x3 stride-2 max
pool, or a 3x3 stride-1 conv without pooling for small images), four stages
of basic blocks (ResNet-18: 2-2-2-2) or bottleneck blocks (ResNet-50:
3-4-6-3) whose widths double from ``width`` while the resolution halves,
global average pooling and a linear classifier. Normalisation is GroupNorm,
not BatchNorm: the training loop carries parameters only (no running
statistics), and GroupNorm behaves the same in training and inference, so
the inference function is a pure function of the parameters.

Layer names are stable (``stem``, ``stage{s}_block{b}``, ``logits``).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.cnn import CONV_AXES

#: Blocks per stage and block kind of each supported depth.
LAYOUTS: dict[int, tuple[tuple[int, ...], str]] = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
}


@dataclasses.dataclass
class ResNetConfig:
    """A ResNet classifier: depth, base width, stem and GroupNorm groups."""

    depth: int = option(18, help="ResNet depth", choices=tuple(LAYOUTS))
    width: int = option(64, help="channels of the first stage (doubled at every stage)", min=1)
    small_input: bool = option(False, help="3x3 stride-1 stem without max pooling (images under ~64 px)")
    groups: int = option(8, help="GroupNorm groups (must divide every stage's width)", min=1)

    def validate(self, prefix: str) -> None:
        expansion = 4 if LAYOUTS[self.depth][1] == "bottleneck" else 1
        for stage in range(4):
            for channels in (self.width * 2 ** stage, self.width * 2 ** stage * expansion):
                if channels % self.groups:
                    raise ConfigError(f"config key '{prefix}groups' = {self.groups} must divide every stage "
                                      f"width ({channels} with width {self.width})")


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME", use_bias=False,
                   kernel_init=nn.with_logical_partitioning(nn.initializers.he_normal(), CONV_AXES), name=name)


def _norm(groups: int, name: str, zero: bool = False) -> nn.GroupNorm:
    # The last norm of each residual branch starts at zero, so every block starts as the identity.
    scale = nn.initializers.zeros_init() if zero else nn.initializers.ones_init()
    return nn.GroupNorm(num_groups=groups, scale_init=nn.with_logical_partitioning(scale, ("conv_out",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
                        name=name)


class ResidualBlock(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) residual block with a projection shortcut.

    Shapes: [B, H, W, C_in] -> [B, H / stride, W / stride, width * expansion].

    References:
      He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    width: int
    stride: int
    kind: str
    groups: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_channels = self.width * (4 if self.kind == "bottleneck" else 1)
        if self.kind == "basic":
            y = nn.relu(_norm(self.groups, "norm_0")(_conv(self.width, 3, self.stride, "conv_0")(x)))
            y = _norm(self.groups, "norm_1", zero=True)(_conv(self.width, 3, 1, "conv_1")(y))
        else:
            y = nn.relu(_norm(self.groups, "norm_0")(_conv(self.width, 1, 1, "conv_0")(x)))
            y = nn.relu(_norm(self.groups, "norm_1")(_conv(self.width, 3, self.stride, "conv_1")(y)))
            y = _norm(self.groups, "norm_2", zero=True)(_conv(out_channels, 1, 1, "conv_2")(y))
        if x.shape[-1] != out_channels or self.stride != 1:
            x = _norm(self.groups, "shortcut_norm")(_conv(out_channels, 1, self.stride, "shortcut")(x))
        return nn.relu(x + y)


class ResNetClassifier(nn.Module):
    """ResNet backbone, global average pooling and logits.

    Attributes:
      depth: 18, 34 or 50 (see :data:`LAYOUTS`).
      num_classes: number of logits.
      width: channels of the first stage.
      small_input: 3x3 stride-1 stem, no max pool (keeps small images' resolution).
      groups: GroupNorm groups.

    Shapes:
      inputs [B, H, W] or [B, H, W, C] -> logits [B, num_classes]; with
      ``return_features``, ``(logits, last stage map [B, H/s, W/s, C_last])``
      with s = 32 (8 with ``small_input``).

    References:
      He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
      CVPR 2016; Wu & He, "Group Normalization", ECCV 2018.
    """

    depth: int
    num_classes: int
    width: int = 64
    small_input: bool = False
    groups: int = 8

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False,
                 return_features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        del train  # GroupNorm and no dropout: training and inference compute the same function.
        blocks, kind = LAYOUTS[self.depth]
        x = inputs.astype(jnp.float32)
        if x.ndim == 3:
            x = x[..., None]
        if self.small_input:
            x = nn.relu(_norm(self.groups, "stem_norm")(_conv(self.width, 3, 1, "stem")(x)))
        else:
            x = nn.relu(_norm(self.groups, "stem_norm")(_conv(self.width, 7, 2, "stem")(x)))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for stage, count in enumerate(blocks):
            for block in range(count):
                stride = 2 if (block == 0 and stage > 0) else 1
                x = ResidualBlock(self.width * 2 ** stage, stride, kind, self.groups,
                                  name=f"stage{stage}_block{block}")(x)
                x = nn.with_logical_constraint(x, ("batch", None, None, "conv_out"))
        features = x
        pooled = x.mean(axis=(1, 2))
        logits = nn.Dense(self.num_classes,
                          kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                   ("embed", "classes")),
                          bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("classes",)),
                          name="logits")(pooled)
        return (logits, features) if return_features else logits
