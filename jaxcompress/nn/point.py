"""Point-cloud Transformer (Point-MAE): mini-PointNet patch embedding, pre-LN blocks, MAE decoder, heads.

Architecture (Point-MAE / ExpPoint-MAE, scaled by :class:`PointConfig`):

* patches ``[B, G, k, 3]`` (local coordinates around FPS centers, see
  :func:`jaxcompress.ops.group_points`) -> :class:`PatchEmbed`, a PointNet
  shared over patches: per point ``3 -> c -> 2c``, max over the patch,
  concatenated back to every point (``4c``), ``4c -> 4c -> width``, max again
  -> one token per patch;
* centers ``[B, G, 3]`` -> :class:`PositionEmbed` ``MLP(3 -> 128, GELU -> width)``;
* :class:`PointTransformer`: pre-LN blocks, the positional embedding added
  before every block (``x = block(x + pos)``), drop path rising linearly to
  ``drop_path``, final LayerNorm. Attention probabilities and per-layer
  outputs can be returned for analysis (CKA, attention distance).

Deviation from the reference code, on purpose: the PointNet uses LayerNorm
and the classification head :class:`BatchStandardize` (batch statistics in
training and evaluation) where the PyTorch code uses BatchNorm. The
training loop carries parameters only (no mutable ``batch_stats``), and
LayerNorm needs none; it also removes the train/eval statistics mismatch that
frozen-backbone BatchNorm brings (ExpPoint-MAE note, "port subtleties").

Attention reuses :class:`jaxcompress.nn.transformer.HeadsDense` for the
per-head projections and ``attention_weights_reference`` for the
probabilities (explicit, since the analysis needs them).

References: Pang et al., "Masked Autoencoders for Point Cloud Self-supervised
Learning", ECCV 2022; Romanelis et al., "ExpPoint-MAE", IEEE Access 2024;
Qi et al., "PointNet", CVPR 2017.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.nn.transformer import HeadsDense, attention_weights_reference


@dataclasses.dataclass(unsafe_hash=True)
class PointConfig:
    """Architecture of the point Transformer (the paper's is 64 groups of 32, width 384, depth 12, 6 heads)."""

    num_groups: int = option(32, help="G: FPS centers (tokens) per cloud", min=2)
    group_size: int = option(16, help="k: points per patch (kNN of each center)", min=2)
    width: int = option(128, help="token width", min=8)
    depth: int = option(4, help="encoder blocks", min=1, max=24)
    num_heads: int = option(4, help="attention heads (must divide width)", min=1)
    mlp_ratio: int = option(4, help="block MLP width / token width", min=1)
    decoder_depth: int = option(2, help="MAE decoder blocks", min=1, max=12)
    drop_path: float = option(0.1, help="stochastic depth rate of the last block (linear from 0)", min=0.0,
                              max=0.9)
    pointnet_width: int = option(32, help="c: patch PointNet widths 3 -> c -> 2c, 4c -> 4c -> width", min=4)
    head_hidden: int = option(256, help="classification head hidden width", min=8)
    head_dropout: float = option(0.5, help="classification head dropout", min=0.0, max=0.95)

    def validate(self, prefix: str) -> None:
        from jaxcompress.errors import ConfigError

        if self.width % self.num_heads:
            raise ConfigError(f"config key '{prefix}num_heads' = {self.num_heads} must divide "
                              f"'{prefix}width' = {self.width}")


def _dense(features: int, names: tuple[str | None, str | None], use_bias: bool = True, name: str | None = None,
           init: Any = None) -> nn.Dense:
    kernel_init = init or nn.initializers.normal(0.02)
    return nn.Dense(features, use_bias=use_bias, name=name,
                    kernel_init=nn.with_logical_partitioning(kernel_init, names),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (names[1],)))


def _norm(name: str | None = None) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-6, name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)))


class PatchEmbed(nn.Module):
    """Mini-PointNet shared over patches: ``[B, G, k, 3] -> [B, G, width]``.

    References: Pang et al., Point-MAE, ECCV 2022 (``Encoder``); Qi et al., PointNet, CVPR 2017.
    """

    cfg: PointConfig

    @nn.compact
    def __call__(self, patches: jax.Array) -> jax.Array:
        c = self.cfg.pointnet_width
        h = nn.relu(_norm("norm1")(_dense(c, (None, "mlp"), name="conv1")(patches)))
        h = _dense(2 * c, ("mlp", None), name="conv2")(h)  # [B, G, k, 2c]
        g = jnp.max(h, axis=-2, keepdims=True)
        h = jnp.concatenate([jnp.broadcast_to(g, h.shape), h], axis=-1)  # [B, G, k, 4c]
        h = nn.relu(_norm("norm2")(_dense(4 * c, (None, "mlp"), name="conv3")(h)))
        h = _dense(self.cfg.width, ("mlp", "embed"), name="conv4")(h)
        return jnp.max(h, axis=-2)


class PositionEmbed(nn.Module):
    """``MLP(3 -> 128, GELU, 128 -> width)`` of the patch centers: ``[B, G, 3] -> [B, G, width]``.

    References: Pang et al., Point-MAE, ECCV 2022 (``pos_embed``).
    """

    cfg: PointConfig

    @nn.compact
    def __call__(self, centers: jax.Array) -> jax.Array:
        h = nn.gelu(_dense(128, (None, "mlp"), name="fc1")(centers), approximate=False)
        return _dense(self.cfg.width, ("mlp", "embed"), name="fc2")(h)


def drop_path(x: jax.Array, rate: float, deterministic: bool, rng: jax.Array | None) -> jax.Array:
    """Stochastic depth: drops the whole residual branch per example with probability ``rate``.

    Shapes: ``x [B, ...]`` -> same; kept branches are scaled by ``1 / (1 - rate)``.

    References: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.
    """
    if deterministic or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class PreLNBlock(nn.Module):
    """``x + DropPath(Attn(LN x))``, then ``x + DropPath(MLP(LN x))``; returns the block output and attention.

    Shapes: ``x [B, S, W]`` -> (``[B, S, W]``, probs ``[B, heads, S, S]``).

    References: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (pre-LN ViT block);
    Pang et al., Point-MAE, ECCV 2022.
    """

    cfg: PointConfig
    drop_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
        cfg = self.cfg
        head_dim = cfg.width // cfg.num_heads
        init = nn.initializers.normal(0.02)
        h = _norm("norm1")(x)

        def project(name: str) -> jax.Array:
            return HeadsDense((cfg.num_heads, head_dim), contract=1,
                              kernel_init=nn.with_logical_partitioning(init, ("embed", "heads", "kv")),
                              bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("heads", "kv")),
                              name=name)(h)

        q, k, v = project("query"), project("key"), project("value")
        probs = attention_weights_reference(q, k, None)  # [B, heads, S, S]
        context = jnp.einsum("bnts,bsnd->btnd", probs, v)
        attn = HeadsDense((cfg.width,), contract=2,
                          kernel_init=nn.with_logical_partitioning(init, ("heads", "kv", "embed")),
                          bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
                          name="proj")(context)
        rng = None if deterministic or self.drop_rate == 0.0 else self.make_rng("dropout")
        x = x + drop_path(attn, self.drop_rate, deterministic, rng)
        h = _norm("norm2")(x)
        h = nn.gelu(_dense(cfg.width * cfg.mlp_ratio, ("embed", "mlp"), name="fc1")(h), approximate=False)
        h = _dense(cfg.width, ("mlp", "embed"), name="fc2")(h)
        rng = None if deterministic or self.drop_rate == 0.0 else self.make_rng("dropout")
        x = x + drop_path(h, self.drop_rate, deterministic, rng)
        return nn.with_logical_constraint(x, ("batch", "length", "embed")), probs


class PointTransformer(nn.Module):
    """Pre-LN blocks with the positional embedding re-added before each block, then a final LayerNorm.

    ``__call__(x [B, S, W], pos [B, S, W], deterministic, collect)`` returns
    ``(y [B, S, W], extras)``; with ``collect`` the extras are ``hidden`` (the
    output of every block, ``[L, B, S, W]``) and ``attention`` (``[L, B,
    heads, S, S]``), else ``{}``.

    References: Pang et al., Point-MAE, ECCV 2022 (``TransformerEncoder``).
    """

    cfg: PointConfig
    depth: int

    @nn.compact
    def __call__(self, x: jax.Array, pos: jax.Array, deterministic: bool = True,
                 collect: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
        hidden, attention = [], []
        for i in range(self.depth):
            rate = self.cfg.drop_path * i / max(self.depth - 1, 1)
            x, probs = PreLNBlock(self.cfg, rate, name=f"block_{i}")(x + pos, deterministic)
            hidden.append(x)
            attention.append(probs)
        y = _norm("norm")(x)
        extras = {"hidden": jnp.stack(hidden), "attention": jnp.stack(attention)} if collect else {}
        return y, extras


class PointEncoder(nn.Module):
    """Patch embedding + positional embedding + Transformer: the backbone every method shares.

    ``__call__(patches [B, S, k, 3], centers [B, S, 3])`` -> ``(tokens [B, S, W], extras)``;
    ``extra_tokens [B, T, W]`` (e.g. a cls token) are appended after the patches with zero positions.

    References: Pang et al., Point-MAE, ECCV 2022.
    """

    cfg: PointConfig

    @nn.compact
    def __call__(self, patches: jax.Array, centers: jax.Array, deterministic: bool = True, collect: bool = False,
                 extra_tokens: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        x = PatchEmbed(self.cfg, name="patch_embed")(patches)
        pos = PositionEmbed(self.cfg, name="pos_embed")(centers)
        if extra_tokens is not None:
            x = jnp.concatenate([x, extra_tokens], axis=1)
            pos = jnp.concatenate([pos, jnp.zeros_like(extra_tokens)], axis=1)
        return PointTransformer(self.cfg, self.cfg.depth, name="blocks")(x, pos, deterministic, collect)


class MAEDecoder(nn.Module):
    """Point-MAE decoder: visible tokens + mask tokens, own positions, linear map to ``k`` points per masked patch.

    ``__call__(visible [B, V, W], centers_visible [B, V, 3], centers_masked [B, M, 3])`` -> ``[B, M, k, 3]``.

    References: Pang et al., Point-MAE, ECCV 2022, sec. 3.3.
    """

    cfg: PointConfig

    @nn.compact
    def __call__(self, visible: jax.Array, centers_visible: jax.Array, centers_masked: jax.Array,
                 deterministic: bool = True) -> jax.Array:
        b, m = centers_masked.shape[:2]
        mask_token = self.param("mask_token", nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                                           (None, None, "embed")),
                                (1, 1, self.cfg.width))
        x = jnp.concatenate([visible, jnp.broadcast_to(mask_token, (b, m, self.cfg.width))], axis=1)
        pos_embed = PositionEmbed(self.cfg, name="pos_embed")
        pos = jnp.concatenate([pos_embed(centers_visible), pos_embed(centers_masked)], axis=1)
        y, _ = PointTransformer(self.cfg, self.cfg.decoder_depth, name="blocks")(x, pos, deterministic)
        out = _dense(3 * self.cfg.group_size, ("embed", None), name="reconstruct")(y[:, -m:])
        return out.reshape(b, m, self.cfg.group_size, 3)


class ProjectionHead(nn.Module):
    """MoCo projection ``W -> W -> out`` (ReLU) of max+mean pooled tokens: ``[B, S, W] -> [B, out]``.

    References: Chen et al., "Improved Baselines with Momentum Contrastive Learning", 2020 (MLP head).
    """

    hidden: int
    out: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        pooled = jnp.concatenate([jnp.max(tokens, 1), jnp.mean(tokens, 1)], axis=-1)
        h = nn.relu(_dense(self.hidden, ("embed", "mlp"), name="fc1")(pooled))
        return _dense(self.out, ("mlp", None), name="fc2")(h)


class BatchStandardize(nn.Module):
    """Each feature standardised over the batch, then a learned scale and shift: ``[B, F] -> [B, F]``.

    BatchNorm's normalisation with the statistics of the batch at hand, in
    training and in evaluation alike, so no running statistics are carried.
    The head needs a batch-wise normalisation: pooled point-Transformer
    features differ across clouds by a small fraction of their magnitude, and
    a per-example LayerNorm keeps that common part (measured: with LayerNorm
    the fine-tuned classifier stayed at the chance rate). Evaluation batches
    must therefore hold many clouds (the runner uses 65).

    References: Ioffe & Szegedy, "Batch Normalization", ICML 2015.
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones_init(), ("mlp",)),
                           (x.shape[-1],))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
                          (x.shape[-1],))
        mean = jnp.mean(x, axis=0, keepdims=True)
        var = jnp.var(x, axis=0, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class ClassifierHead(nn.Module):
    """``Linear(no bias) -> BatchStandardize -> ReLU -> Dropout`` twice, then ``Linear -> classes``: ``[B, F] -> [B, C]``.

    References: Romanelis et al., ExpPoint-MAE, IEEE Access 2024 (head; BatchNorm with batch statistics).
    """

    cfg: PointConfig
    num_classes: int

    @nn.compact
    def __call__(self, feature: jax.Array, deterministic: bool = True) -> jax.Array:
        h = feature
        for i in range(2):
            h = _dense(self.cfg.head_hidden, (None, "mlp"), use_bias=False, name=f"fc{i + 1}")(h)
            h = nn.relu(BatchStandardize(name=f"norm{i + 1}")(h))
            h = nn.Dropout(self.cfg.head_dropout)(h, deterministic=deterministic)
        return _dense(self.num_classes, ("mlp", "classes"), name="out")(h)


class PointClassifier(nn.Module):
    """Encoder with a learned cls token appended last (zero position), feature = [cls, max-pool], MLP head.

    ``__call__(patches [B, G, k, 3], centers [B, G, 3])`` -> ``(logits [B, C], extras)``.

    References: Pang et al., Point-MAE, ECCV 2022; Romanelis et al., ExpPoint-MAE, IEEE Access 2024
    (cls token initialised uniformly in [0, 1)).
    """

    cfg: PointConfig
    num_classes: int

    @nn.compact
    def __call__(self, patches: jax.Array, centers: jax.Array, deterministic: bool = True,
                 collect: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
        cls = self.param("cls_token", nn.with_logical_partitioning(nn.initializers.uniform(1.0),
                                                                   (None, None, "embed")), (1, 1, self.cfg.width))
        cls = jnp.broadcast_to(cls, (patches.shape[0], 1, self.cfg.width))
        tokens, extras = PointEncoder(self.cfg, name="encoder")(patches, centers, deterministic, collect, cls)
        feature = jnp.concatenate([tokens[:, -1], jnp.max(tokens[:, :-1], axis=1)], axis=-1)
        return ClassifierHead(self.cfg, self.num_classes, name="head")(feature, deterministic), extras
