"""A small FastSpeech-style acoustic model and a small CTC recogniser of log-mels.

Acoustic model (:class:`FastSpeech`): phone input -> encoder -> duration
predictor (trained on the synthesiser's durations) -> length regulator -> decoder
-> mel. The input layer is an embedding table of phone ids (``input_kind="ids"``)
or ``Dense`` on phonological feature vectors (``input_kind="features"``), the
paper's two input schemes. Encoder and decoder are the project's post-LN
transformer stacks (a dense feed-forward sublayer instead of FastSpeech's 1-D
convolution; a convolutional post-net restores local context on the mel side).
Pitch and energy predictors are left out (one eSpeak NG voice).

Length regulator with static shapes: ``frame_to_phone = searchsorted(cumsum(durations),
arange(T), side="right")``, then a gather; frames past ``sum(durations)`` are masked.

Shapes: ``inputs [B, P]`` int ids or ``[B, P, F]`` float features, ``phone_mask [B, P]``,
``durations [B, P]`` int frames, ``num_frames`` T (static) -> ``mel [B, T, M]``,
``log_duration [B, P]``, ``frame_mask [B, T]``.

References: Ren et al., "FastSpeech 2: Fast and High-Quality End-to-End Text to
Speech", ICLR 2021; Do et al., SSW 2023 (arXiv 2306.12040) (feature input:
``Linear(F -> d)`` replacing the embedding table); Graves et al., ICML 2006 (CTC).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.transformer import StackSpec, layer_stack

INPUT_KINDS = ("ids", "features")
#: Fixed rescaling of natural-log mel power (floor 1e-5) to roughly zero mean, unit scale.
MEL_SHIFT, MEL_SCALE = 5.0, 4.0


@dataclasses.dataclass
class FastSpeechConfig:
    """Sizes of the acoustic model."""

    input_kind: str = option("ids", help="phone ids through an embedding table, or feature vectors through Dense",
                             choices=INPUT_KINDS)
    num_symbols: int = option(64, help="rows of the phone embedding table (ids input)", min=1)
    hidden_size: int = option(96, help="encoder/decoder width", min=1)
    num_heads: int = option(2, help="attention heads", min=1)
    intermediate_size: int = option(192, help="feed-forward width", min=1)
    encoder_layers: int = option(2, help="encoder layers", min=1)
    decoder_layers: int = option(2, help="decoder layers", min=1)
    dropout: float = option(0.1, help="dropout", min=0.0, max=0.9)
    num_mels: int = option(80, help="mel bins", min=1)
    postnet_kernel: int = option(5, help="kernel of the residual conv post-net (frames)", min=1)

    def validate(self, prefix: str) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"config key '{prefix}num_heads' must divide {prefix}hidden_size="
                              f"{self.hidden_size}, got {self.num_heads}")

    def stack(self, layers: int) -> StackSpec:
        return StackSpec(hidden_size=self.hidden_size, num_heads=self.num_heads,
                         intermediate_size=self.intermediate_size, num_layers=layers, dropout=self.dropout,
                         layer_norm_eps=1e-5)


def sinusoid_positions(length: int, width: int) -> np.ndarray:
    """float32 [length, width] sinusoidal position encodings (Vaswani et al., 2017)."""
    position = np.arange(length)[:, None]
    rate = np.exp(-math.log(10000.0) * (np.arange(0, width, 2) / width))
    out = np.zeros((length, width), np.float32)
    out[:, 0::2] = np.sin(position * rate)
    out[:, 1::2] = np.cos(position * rate)[:, :width // 2]
    return out


def length_regulate(hidden: jax.Array, durations: jax.Array, num_frames: int) -> tuple[jax.Array, jax.Array]:
    """Repeats phone states by their durations onto ``num_frames`` frames.

    Args:
        hidden: [B, P, H]; durations: [B, P] int (>= 0, zero on padding).

    Returns:
        ``(frames [B, T, H], frame_mask [B, T])``.
    """
    ends = jnp.cumsum(durations, axis=-1)
    t = jnp.arange(num_frames)
    index = jax.vmap(lambda e: jnp.searchsorted(e, t, side="right"))(ends)
    mask = t[None, :] < ends[:, -1:]
    index = jnp.minimum(index, hidden.shape[1] - 1)
    frames = jnp.take_along_axis(hidden, index[..., None], axis=1)
    return jnp.where(mask[..., None], frames, 0.0), mask


class FastSpeechOutput(NamedTuple):
    mel: jax.Array  # [B, T, M] natural-log mel power
    log_duration: jax.Array  # [B, P] predicted log(1 + frames)
    frame_mask: jax.Array  # [B, T]


class FastSpeech(nn.Module):
    """The acoustic model (see the module docstring)."""

    config: FastSpeechConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, inputs: jax.Array, phone_mask: jax.Array, durations: jax.Array, num_frames: int
                 ) -> FastSpeechOutput:
        cfg = self.config
        if cfg.input_kind == "ids":
            x = nn.Embed(cfg.num_symbols, cfg.hidden_size, name="phone_embedding")(jnp.maximum(inputs, 0))
        else:
            x = nn.Dense(cfg.hidden_size, name="feature_input")(inputs)
        x = x + sinusoid_positions(x.shape[1], cfg.hidden_size)[None]
        x = jnp.where(phone_mask[..., None], x, 0.0)
        x = layer_stack(cfg.stack(cfg.encoder_layers), self.deterministic, name="encoder")(x, phone_mask)
        x = jnp.where(phone_mask[..., None], x, 0.0)
        h = nn.relu(nn.Conv(cfg.hidden_size, (3,), name="duration_conv1")(jax.lax.stop_gradient(x)))
        h = nn.LayerNorm(name="duration_norm1")(h)
        h = nn.relu(nn.Conv(cfg.hidden_size, (3,), name="duration_conv2")(h))
        h = nn.LayerNorm(name="duration_norm2")(h)
        log_duration = jnp.where(phone_mask, nn.Dense(1, name="duration_out")(h)[..., 0], 0.0)
        durations = jnp.where(phone_mask, durations, 0)
        frames, frame_mask = length_regulate(x, durations, num_frames)
        frames = frames + sinusoid_positions(num_frames, cfg.hidden_size)[None]
        frames = layer_stack(cfg.stack(cfg.decoder_layers), self.deterministic, name="decoder")(frames, frame_mask)
        coarse = nn.Dense(cfg.num_mels, name="mel_out")(frames)
        post = nn.tanh(nn.Conv(cfg.hidden_size, (cfg.postnet_kernel,), name="postnet_conv1")(coarse))
        post = nn.Conv(cfg.num_mels, (cfg.postnet_kernel,), name="postnet_conv2")(post)
        mel = (coarse + post) * MEL_SCALE - MEL_SHIFT
        return FastSpeechOutput(jnp.where(frame_mask[..., None], mel, 0.0), log_duration, frame_mask)


def expected_durations(log_duration: jax.Array, phone_mask: jax.Array) -> jax.Array:
    """Integer frames from predicted ``log(1 + frames)``: ``round(exp(.) - 1)``, >= 0, zero on padding."""
    return jnp.where(phone_mask, jnp.maximum(jnp.round(jnp.exp(log_duration) - 1.0), 0), 0).astype(jnp.int32)


@dataclasses.dataclass
class RecognizerConfig:
    """Sizes of the CTC recogniser of log-mels."""

    num_labels: int = option(64, help="output labels (characters), blank excluded", min=1)
    hidden_size: int = option(128, help="channels", min=1)
    num_layers: int = option(3, help="convolution layers", min=1)
    kernel: int = option(5, help="convolution kernel (frames)", min=1)
    num_mels: int = option(80, help="mel bins of the input", min=1)


class MelRecognizer(nn.Module):
    """Conv stack + bidirectional GRU + linear CTC output over log-mels.

    Shapes: ``mel [B, T, M]``, ``mask [B, T]`` -> logits ``[B, T, V + 1]`` (blank at 0).

    References: Graves et al., ICML 2006 (CTC).
    """

    config: RecognizerConfig

    @nn.compact
    def __call__(self, mel: jax.Array, mask: jax.Array) -> jax.Array:
        cfg = self.config
        x = (mel + MEL_SHIFT) / MEL_SCALE
        x = jnp.where(mask[..., None], x, 0.0)
        for i in range(cfg.num_layers):
            x = nn.relu(nn.Conv(cfg.hidden_size, (cfg.kernel,), name=f"conv{i}")(x))
            x = nn.LayerNorm(name=f"norm{i}")(x)
            x = jnp.where(mask[..., None], x, 0.0)
        lengths = mask.sum(-1).astype(jnp.int32)
        x = nn.Bidirectional(nn.RNN(nn.GRUCell(cfg.hidden_size // 2)), nn.RNN(nn.GRUCell(cfg.hidden_size // 2)),
                             name="gru")(x, seq_lengths=lengths)
        return nn.Dense(cfg.num_labels + 1, name="out")(x)
