"""A multi-task detection + semantic segmentation network: shared backbone, CenterNet-style and dense heads.

The backbone is the small CNN (:class:`~jaxcompress.nn.cnn.CNNClassifier`) or a
ResNet (:class:`~jaxcompress.nn.resnet.ResNetClassifier`), read through their
``return_features`` map (stride 4 for a two-block CNN, 8 for a small-input
ResNet). A shared neck of 3x3 convs widens the receptive field; then

* detection (anchor-free, CenterNet): per-class centre heatmap logits, box
  size (height, width) and sub-cell centre offset (y, x), in feature cells;
* segmentation: per-pixel class logits from the neck map, bilinearly
  upsampled to the input and joined with a shallow full-resolution conv
  branch of the image (one U-Net-style skip).

:func:`decode_detections` turns the detection maps into the top-K boxes by
3x3 peak picking (jittable, static shapes); class-wise NMS runs on the host
(:func:`jaxcompress.active.boxes.nms`).

References:
  Zhou, Wang & Krähenbühl, "Objects as Points", arXiv 1904.07850 (CenterNet);
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.cnn import CNNClassifier, conv
from jaxcompress.nn.resnet import LAYOUTS, ResNetClassifier

BACKBONES = ("cnn", "resnet")


@dataclasses.dataclass(unsafe_hash=True)
class MultiTaskConfig:
    """Backbone, neck and head settings of the ``mtal`` task (class counts come from the dataset)."""

    backbone: str = option("cnn", help="shared backbone family", choices=BACKBONES)
    channels: tuple[int, ...] = option((16, 32), help="cnn: conv widths (each block halves the resolution)")
    depth: int = option(18, help="resnet: depth", choices=tuple(LAYOUTS))
    width: int = option(8, help="resnet: channels of the first stage", min=1)
    groups: int = option(4, help="resnet: GroupNorm groups", min=1)
    neck_width: int = option(32, help="channels of the shared neck convs", min=1)
    neck_layers: int = option(2, help="3x3 convs between backbone and heads", min=0)
    seg_width: int = option(16, help="channels of the segmentation head (its full-resolution branch has half)",
                            min=2)
    size_weight: float = option(0.1, help="weight of the box-size L1 loss", min=0.0)
    offset_weight: float = option(1.0, help="weight of the centre-offset L1 loss", min=0.0)
    seg_weight: float = option(1.0, help="weight of the segmentation cross entropy", min=0.0)
    max_detections: int = option(20, help="top-K peaks decoded per image", min=1)
    det_classes: int = option(3, help="detection classes of the dataset", min=1)
    seg_classes: int = option(5, help="segmentation classes of the dataset", min=2)
    thing_offset: int = option(2, help="segmentation class of detection class c is c + thing_offset", min=0)

    def validate(self, prefix: str) -> None:
        if self.thing_offset + self.det_classes > self.seg_classes:
            raise ConfigError(f"config key '{prefix}seg_classes' = {self.seg_classes} must be at least "
                              f"thing_offset + det_classes = {self.thing_offset + self.det_classes}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"config key '{prefix}channels' must be a non-empty list of positive widths, "
                              f"got {self.channels!r}")


def build_backbone(config: MultiTaskConfig) -> nn.Module:
    """The shared feature extractor (its classifier logits are unused)."""
    if config.backbone == "cnn":
        return CNNClassifier(channels=tuple(config.channels), num_classes=1, hidden_size=0)
    return ResNetClassifier(depth=config.depth, num_classes=1, width=config.width, small_input=True,
                            groups=config.groups)


class MultiTaskNet(nn.Module):
    """Shared backbone + neck, detection maps and segmentation logits.

    Shapes:
      inputs [B, H, W, C] -> dict with ``heat`` [B, h, w, D] (centre logits),
      ``size`` [B, h, w, 2] and ``offset`` [B, h, w, 2] (feature cells),
      ``seg`` [B, H, W, S] (logits) and ``embedding`` [B, F] (the neck map
      averaged over space: core-set features).

    References:
      Zhou et al., arXiv 1904.07850; Hekimoglu et al., ICCVW 2023.
    """

    config: MultiTaskConfig
    num_det_classes: int
    num_seg_classes: int

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        x = inputs.astype(jnp.float32)
        if x.ndim == 3:
            x = x[..., None]
        _, features = build_backbone(self.config)(x, train=train, return_features=True)
        for i in range(self.config.neck_layers):
            features = nn.relu(conv(self.config.neck_width, 3, f"neck_{i}")(features))
        # CenterNet's prior: heatmap logits start at sigmoid^-1(0.1) so the focal loss starts small.
        heat = nn.Conv(self.num_det_classes, (1, 1), bias_init=nn.initializers.constant(-2.19), name="heat")(features)
        size = nn.Conv(2, (1, 1), name="size")(features)
        offset = nn.Conv(2, (1, 1), name="offset")(features)
        # Segmentation: the neck map, upsampled, joined with a shallow full-resolution branch of the image
        # (a one-level U-Net skip), so small objects' masks are not limited to the stride-4 grid.
        coarse = upsample_bilinear(nn.relu(conv(self.config.seg_width, 1, "seg_reduce")(features)), x.shape[1],
                                   x.shape[2])
        fine = nn.relu(conv(self.config.seg_width // 2, 3, "seg_fine")(x))
        seg = nn.Conv(self.num_seg_classes, (1, 1), name="seg")(jnp.concatenate([coarse, fine], -1))
        return {"heat": heat, "size": size, "offset": offset, "seg": seg, "embedding": features.mean((1, 2))}


def upsample_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
    """Bilinear resize of [B, h, w, C] to [B, height, width, C] as two small matrix products.

    Same values as ``jax.image.resize(..., "bilinear")`` (half-pixel centres), but the interpolation
    matrices are constants of the program, so the backward pass is two matmuls instead of a large scatter.

    References:
      Ronneberger et al., "U-Net", MICCAI 2015 (upsampled skip joins).
    """
    return jnp.einsum("Hh,bhwc,Ww->bHWc", _interpolation(height, x.shape[1]), x, _interpolation(width, x.shape[2]))


def _interpolation(out_size: int, in_size: int) -> np.ndarray:
    """[out_size, in_size] triangle-kernel weights at half-pixel centres, rows normalised (NumPy: a constant)."""
    centre = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(centre[:, None] - np.arange(in_size)[None, :]))
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def decode_detections(heat_logits: jax.Array, size: jax.Array, offset: jax.Array, stride: float,
                      k: int) -> dict[str, jax.Array]:
    """Top-K centre peaks as boxes (jittable).

    A peak is a cell whose score equals the 3x3 max around it (CenterNet's
    NMS-free pick); boxes are centred at (cell + offset) * stride, the offset
    being the centre's fractional position in its cell (0..1).

    Args:
      heat_logits: [B, h, w, D]; size, offset: [B, h, w, 2] in cells.
      stride: input pixels per feature cell.
      k: detections kept per image.

    Returns:
      ``boxes`` float [B, k, 4] (top, left, bottom, right, pixels),
      ``scores`` [B, k] in (0, 1), ``classes`` int32 [B, k].

    References:
      Zhou et al., "Objects as Points", arXiv 1904.07850, sec. 4.
    """
    heat = jax.nn.sigmoid(heat_logits)
    pooled = nn.max_pool(heat, (3, 3), strides=(1, 1), padding="SAME")
    peaks = jnp.where(heat == pooled, heat, 0.0)
    b, h, w, d = heat.shape
    scores, flat = jax.lax.top_k(peaks.reshape(b, -1), k)
    cell, classes = flat // d, (flat % d).astype(jnp.int32)
    row, col = cell // w, cell % w
    take = jax.vmap(lambda m, i: m.reshape(h * w, -1)[i])
    sz, off = take(size, cell), take(offset, cell)
    cy = (row + off[..., 0]) * stride
    cx = (col + off[..., 1]) * stride
    hh, ww = jnp.maximum(sz[..., 0], 0.0) * stride / 2, jnp.maximum(sz[..., 1], 0.0) * stride / 2
    boxes = jnp.stack([cy - hh, cx - ww, cy + hh, cx + ww], -1)
    return {"boxes": boxes, "scores": scores, "classes": classes}
