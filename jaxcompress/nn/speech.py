"""A small speech encoder that compresses its sequence with CIF before the transformer.

``log-mel (100 Hz) -> conv front end (50 Hz) -> alpha predictor -> CIF pooling
with the once-for-all mixed weight -> projection, [mask embedding], convolutional
position embedding -> post-LN transformer on the compressed sequence``.

The CIF weight is ``alpha_mix = (1 - lam) + lam * alpha`` (:func:`jaxcompress.ops.mix_alpha`):
``lam = 0`` keeps the 50 Hz rate (20 ms frames), ``lam = 1`` fires about once
per segment the alpha predictor has learned. The transformer therefore runs
on ``T = floor(sum alpha_mix)`` frames, which is where the compute goes down.

Shapes: ``logmel [B, S, M]``, ``mask [B, S]`` bool (True on real frames), ``lam``
scalar or ``[B]`` -> :class:`EncoderOutput` with ``hidden [B, T, H]`` where
``T = ceil(S / 2)`` is the static bound (``mask`` marks the real frames).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332) (AlphaModule,
CIF with lambda mixing, compressed transformer); Baevski et al., "wav2vec 2.0",
NeurIPS 2020 (front end, mask embedding, convolutional positions); Dong & Xu,
"CIF", ICASSP 2020.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.transformer import HIDDEN_AXES, StackSpec, layer_stack
from jaxcompress.ops import CifWeights, cif_pool, mix_alpha

#: A fixed rescaling of natural-log mel power of 16-bit audio to roughly zero mean, unit variance.
LOGMEL_SHIFT, LOGMEL_SCALE = 3.0, 3.5
CIF_IMPLEMENTATIONS = ("xla", "dense", "pallas", "auto")


@dataclasses.dataclass
class SpeechEncoderConfig:
    """Sizes of the CIF speech encoder (front end, alpha predictor, transformer)."""

    num_mels: int = option(40, help="log-mel bins of the input", min=1)
    frontend_size: int = option(128, help="channels of the convolutional front end (50 Hz)", min=1)
    hidden_size: int = option(128, help="transformer width", min=1)
    num_layers: int = option(2, help="transformer layers on the compressed sequence", min=1)
    num_heads: int = option(4, help="attention heads (must divide hidden_size)", min=1)
    intermediate_size: int = option(256, help="transformer feed-forward width", min=1)
    dropout: float = option(0.1, help="dropout in the transformer and on its input", min=0.0, max=0.95)
    alpha_kernel: int = option(5, help="kernel of the alpha predictor's conv (frames)", min=1)
    position_kernel: int = option(5, help="kernel of the depthwise convolutional position embedding", min=1)
    min_frames: int = option(1, help="CIF guard: rows with less mass are rescaled to this many frames", min=0)
    cif_implementation: str = option("xla", help="CIF pooling path ('pallas'/'auto' need an unsharded batch)",
                                     choices=CIF_IMPLEMENTATIONS)

    def validate(self, prefix: str) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"config key '{prefix}num_heads' must divide {prefix}hidden_size="
                              f"{self.hidden_size}, got {self.num_heads}")

    def stack_spec(self) -> StackSpec:
        return StackSpec(hidden_size=self.hidden_size, num_heads=self.num_heads,
                         intermediate_size=self.intermediate_size, num_layers=self.num_layers,
                         dropout=self.dropout, layer_norm_eps=1e-6)


class EncoderOutput(NamedTuple):
    """What :class:`SpeechEncoder` returns.

    Attributes:
        hidden: [B, T, H] transformer output on the compressed grid (zero past ``lengths``).
        mask: [B, T] bool, real compressed frames.
        lengths: [B] int32 compressed lengths.
        weights: :class:`~jaxcompress.ops.CifWeights` of the pooling (pool targets with them).
        alpha: [B, S50] the predicted (un-mixed) weights, zero on padding.
        alpha_mix: [B, S50] the weights CIF used.
        frame_mask: [B, S50] bool, real 50 Hz frames.
    """

    hidden: jax.Array
    mask: jax.Array
    lengths: jax.Array
    weights: CifWeights
    alpha: jax.Array
    alpha_mix: jax.Array
    frame_mask: jax.Array


def _conv(features: int, kernel: int, stride: int, name: str, groups: int = 1,
          names: tuple[str | None, ...] = (None, "conv_in", "conv_out")) -> nn.Conv:
    return nn.Conv(features, (kernel,), strides=(stride,), padding="SAME", feature_group_count=groups,
                   kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
                   bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[-1:]),
                   name=name)


def _dense(features: int, names: tuple[str | None, str | None], name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]), name=name)


def _norm(axis_name: str, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-6, name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), (axis_name,)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axis_name,)))


def frame_mask_50hz(mask: jax.Array) -> jax.Array:
    """[B, S] 100 Hz mask -> [B, ceil(S / 2)]: a 50 Hz frame is real if its first 100 Hz frame is."""
    return mask[:, ::2]


class AlphaPredictor(nn.Module):
    """``Conv1d(k) -> LayerNorm -> ReLU -> Dense(1) -> sigmoid``: one weight in (0, 1) per frame.

    Shapes: ``h [B, S, C]`` -> ``[B, S]``.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332) (the reference
    AlphaModule: Conv1d(k=5), LayerNorm, ReLU, Linear, sigmoid).
    """

    channels: int
    kernel: int = 5

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        h = _conv(self.channels, self.kernel, 1, "conv")(h)
        h = nn.relu(_norm("conv_out", "norm")(h))
        return jax.nn.sigmoid(_dense(1, ("conv_out", None), "out")(h)[..., 0])


class SpeechEncoder(nn.Module):
    """The CIF speech encoder (see the module docstring).

    Attributes:
        config: sizes.
        deterministic: disables dropout and keeps CIF's inference tail rule
            (a trailing partial frame with at least half a frame of mass is kept);
            training drops the partial tail, as the reference does.

    Call: ``(logmel [B, S, M], mask [B, S] bool, lam scalar | [B], span_mask
    [B, T] bool | None, num_frames: int | None)``; ``span_mask`` marks compressed
    positions whose input is replaced by a learned mask embedding (masked
    prediction); ``num_frames`` is the static bound T on the compressed length
    (default ``ceil(S / 2)``, always enough; outputs past it are dropped).

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
    """

    config: SpeechEncoderConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, logmel: jax.Array, mask: jax.Array, lam: jax.Array | float,
                 span_mask: jax.Array | None = None, num_frames: int | None = None) -> EncoderOutput:
        cfg = self.config
        mask = mask.astype(bool)
        x = (logmel.astype(jnp.float32) + LOGMEL_SHIFT) / LOGMEL_SCALE
        x = jnp.where(mask[..., None], x, 0.0)  # padding must not leak into the convs
        x = nn.with_logical_constraint(x, ("batch", "length", None))
        # Front end: 100 Hz -> 50 Hz (the stride-2 conv), as wav2vec 2.0's CNN ends at 50 Hz.
        h = nn.gelu(_conv(cfg.frontend_size, 3, 1, "frontend_0")(x))
        h = nn.gelu(_conv(cfg.frontend_size, 3, 2, "frontend_1")(h))
        h = _norm("conv_out", "frontend_norm")(h)
        frame_mask = frame_mask_50hz(mask)
        h = jnp.where(frame_mask[..., None], h, 0.0)
        h = nn.with_logical_constraint(h, ("batch", "length", "conv_out"))

        alpha = AlphaPredictor(cfg.frontend_size, cfg.alpha_kernel, name="alpha")(h)
        alpha = jnp.where(frame_mask, alpha, 0.0)
        alpha_mix = jnp.where(frame_mask, mix_alpha(alpha, lam), 0.0)
        # A smaller static bound (a bucket above the longest output) makes the
        # transformer's work follow the compressed length at inference time.
        pooled = cif_pool(h, alpha_mix, frame_mask, num_frames=num_frames or h.shape[1],
                          training=not self.deterministic,
                          min_frames=cfg.min_frames, implementation=cfg.cif_implementation)

        z = _dense(cfg.hidden_size, ("conv_in", "embed"), "project")(pooled.frames)
        # Always created, so pretraining and inference share one parameter tree.
        embedding = self.param("mask_embedding", nn.with_logical_partitioning(
            nn.initializers.uniform(1.0), ("embed",)), (cfg.hidden_size,))
        if span_mask is not None:
            z = jnp.where(span_mask[..., None] & pooled.mask[..., None], embedding, z)
        position = _conv(cfg.hidden_size, cfg.position_kernel, 1, "position", groups=cfg.hidden_size,
                         names=(None, None, "embed"))(z)
        z = _norm("embed", "input_norm")(z + nn.gelu(position))
        z = nn.Dropout(cfg.dropout)(z, deterministic=self.deterministic)
        z = jnp.where(pooled.mask[..., None], z, 0.0)
        z = nn.with_logical_constraint(z, HIDDEN_AXES)
        hidden = layer_stack(cfg.stack_spec(), self.deterministic, name="transformer")(z, pooled.mask)
        hidden = jnp.where(pooled.mask[..., None], hidden, 0.0)
        return EncoderOutput(hidden, pooled.mask, pooled.lengths, pooled.weights, alpha, alpha_mix, frame_mask)


def num_50hz_frames(num_frames: Any) -> Any:
    """Real 50 Hz frames for ``num_frames`` real 100 Hz frames: ``ceil(n / 2)``."""
    return (num_frames + 1) // 2


class MaskedPredictionModel(nn.Module):
    """:class:`SpeechEncoder` plus one linear head per codebook over its compressed frames.

    Call: as the encoder -> ``(EncoderOutput, logits [B, T, G, K])``.

    References: Chiu et al., BEST-RQ, ICML 2022 (one softmax per codebook);
    Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
    """

    config: SpeechEncoderConfig
    num_codebooks: int
    codebook_size: int
    deterministic: bool = True

    @nn.compact
    def __call__(self, logmel: jax.Array, mask: jax.Array, lam: jax.Array | float,
                 span_mask: jax.Array | None = None) -> tuple[EncoderOutput, jax.Array]:
        out = SpeechEncoder(self.config, self.deterministic, name="encoder")(logmel, mask, lam, span_mask)
        logits = _dense(self.num_codebooks * self.codebook_size, ("embed", "vocab"), "head")(out.hidden)
        return out, logits.reshape(*logits.shape[:2], self.num_codebooks, self.codebook_size)
