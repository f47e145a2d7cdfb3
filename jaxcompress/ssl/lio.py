"""Look-into-Object (LIO): training-only object-extent and spatial-context heads around any backbone.

A backbone plugs in through one small interface: a Flax module whose
``__call__(inputs, *, train, return_features=False)`` returns the logits, or
``(logits, feature map [B, h, w, C])`` when ``return_features`` is set
(:class:`~jaxcompress.nn.cnn.CNNClassifier` and
:class:`~jaxcompress.nn.resnet.ResNetClassifier` do). :class:`LIOClassifier`
keeps the backbone's parameters under ``backbone`` and the heads' under
``oel`` and ``scl``; in inference mode it calls the backbone alone, so
``params["backbone"]`` with the plain backbone's ``apply`` is the deployed
model (same parameter tree, same outputs, same compiled cost).

References:
  Zhou, Bai, Zhang, Zhao & Mei, "Look-into-Object: Self-supervised Structure
  Modeling for Object Recognition", CVPR 2020 (arXiv 2003.14142).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.cnn import CNNClassifier
from jaxcompress.nn.resnet import LAYOUTS, ResNetClassifier, ResNetConfig
from jaxcompress.ssl import lio_targets as targets

BACKBONES = ("cnn", "resnet")


@dataclasses.dataclass(unsafe_hash=True)
class LIOConfig:
    """Backbone and Look-into-Object settings: the model config of the ``lio`` task.

    Setting ``oel_weight`` or ``scl_weight`` to 0 removes that head (its
    parameters are not even created); both 0 is the plain backbone trained on
    the same anchor-and-positives batches.
    """

    backbone: str = option("cnn", help="backbone family", choices=BACKBONES)
    channels: tuple[int, ...] = option((32, 64, 64), help="cnn: output channels of each conv block")
    hidden_size: int = option(64, help="cnn: width of the ReLU layer after flattening (0: none)", min=0)
    depth: int = option(18, help="resnet: depth", choices=tuple(LAYOUTS))
    width: int = option(16, help="resnet: channels of the first stage", min=1)
    small_input: bool = option(True, help="resnet: 3x3 stride-1 stem without max pooling")
    groups: int = option(8, help="resnet: GroupNorm groups", min=1)
    positives: int = option(2, help="same-class positives per anchor image (P); a group holds P + 1 images",
                            min=1, max=15)
    pool: int = option(1, help="average-pool window applied to the backbone map before the heads (paper: 2)",
                       min=1)
    oel_weight: float = option(0.1, help="weight of the object-extent loss (0: no OEL head)", min=0.0)
    scl_weight: float = option(0.1, help="weight of the spatial-context loss (0: no SCL head)", min=0.0)
    grouping: str = option("anchor", help="OEL groups: 'anchor' (an anchor and its same-class positives) or "
                           "'reference' (the reference code's consecutive-row groups)", choices=targets.GROUPINGS)
    oel_stop_gradient: bool = option(False, help="detach the OEL pseudo-mask (the reference code does not)")
    scl_use_mask: bool = option(True, help="SCL anchor and loss inside m > mean(m) (needs OEL); off: whole map")

    def validate(self, prefix: str) -> None:
        if self.backbone == "cnn" and (not self.channels or any(c < 1 for c in self.channels)):
            raise ConfigError(f"config key '{prefix}channels' must be a non-empty list of positive widths, "
                              f"got {self.channels!r}")
        if self.backbone == "resnet":
            ResNetConfig(depth=self.depth, width=self.width, small_input=self.small_input,
                         groups=self.groups).validate(prefix)

    @property
    def group_size(self) -> int:
        return self.positives + 1

    @property
    def uses_oel(self) -> bool:
        return self.oel_weight > 0

    @property
    def uses_scl(self) -> bool:
        return self.scl_weight > 0


def build_backbone(config: LIOConfig, num_classes: int) -> nn.Module:
    """The plain classifier LIO wraps (and the one deployed): the small CNN or a ResNet."""
    if config.backbone == "cnn":
        return CNNClassifier(channels=tuple(config.channels), num_classes=num_classes,
                             hidden_size=config.hidden_size)
    return ResNetClassifier(depth=config.depth, num_classes=num_classes, width=config.width,
                            small_input=config.small_input, groups=config.groups)


def _conv1x1(features: int, name: str) -> nn.Conv:
    return nn.Conv(features, (1, 1), kernel_init=nn.initializers.lecun_normal(), name=name)


class OELHead(nn.Module):
    """Object-extent mask predictor ``m = Conv1x1(ReLU(f))``, no output activation.

    Shapes: f [B, N, N, C] -> m [B, N*N].

    References:
      Zhou et al., CVPR 2020, sec. 3.2.
    """

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        mask = _conv1x1(1, "mask")(nn.relu(features))
        return mask.reshape(mask.shape[0], -1)


class SCLHead(nn.Module):
    """Spatial-context predictor: structure features, the anchor cell and polar predictions per cell.

    ``h = ReLU(Conv1x1(ReLU(f)))`` with C/2 channels; the anchor o is the
    argmax of ``mean_c(h) * region``; every cell i predicts
    ``ReLU(Linear([h_o; h_i]))`` = (distance, angle), and the anchor's own
    prediction is 0.

    Shapes: f [B, N, N, C], region [B, N*N] -> (predictions [B, N*N, 2], anchor int [B]).

    References:
      Zhou et al., CVPR 2020, sec. 3.3; JDAI-CV/LIO ``models/scl_module.py``.
    """

    @nn.compact
    def __call__(self, features: jax.Array, region: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, n1, n2, c = features.shape
        structure = nn.relu(_conv1x1(max(c // 2, 1), "structure")(nn.relu(features))).reshape(b, n1 * n2, -1)
        anchor = targets.anchor_position(structure, region)
        centre = jnp.take_along_axis(structure, anchor[:, None, None], axis=1)  # [B, 1, C']
        pairs = jnp.concatenate([jnp.broadcast_to(centre, structure.shape), structure], axis=-1)
        predicted = nn.relu(nn.Dense(2, name="coords")(pairs))
        not_anchor = (jnp.arange(n1 * n2)[None, :] != anchor[:, None]).astype(predicted.dtype)
        return predicted * not_anchor[..., None], anchor


class LIOClassifier(nn.Module):
    """A backbone plus the training-only OEL and SCL heads on its (pooled) feature map.

    In inference mode (``train=False``) this is exactly ``backbone`` on
    ``params["backbone"]``. In training mode it returns a dict with
    ``logits`` [B, K], the pooled map ``features`` [B, N, N, C] and, for the
    heads present, ``mask`` [B, N*N], ``region`` [B, N*N], ``scl`` [B, N*N, 2]
    and ``anchor`` int [B].

    References:
      Zhou et al., CVPR 2020 (LIO modules removed at inference).
    """

    backbone: nn.Module
    config: LIOConfig

    @nn.compact
    def __call__(self, inputs: jax.Array, *, train: bool = False) -> Any:
        if not train:
            return self.backbone(inputs, train=False)
        logits, fmap = self.backbone(inputs, train=True, return_features=True)
        if self.config.pool > 1 and min(fmap.shape[1:3]) >= self.config.pool:
            fmap = nn.avg_pool(fmap, (self.config.pool,) * 2, strides=(self.config.pool,) * 2)
        out: dict[str, jax.Array] = {"logits": logits, "features": fmap}
        b, n = fmap.shape[0], fmap.shape[1] * fmap.shape[2]
        region = jnp.ones((b, n), fmap.dtype)
        if self.config.uses_oel:
            out["mask"] = OELHead(name="oel")(fmap)
            if self.config.scl_use_mask:
                region = targets.object_region(out["mask"])
        out["region"] = region
        if self.config.uses_scl:
            out["scl"], out["anchor"] = SCLHead(name="scl")(fmap, region)
        return out


def lio_objective(config: LIOConfig, outputs: dict[str, jax.Array], labels: jax.Array
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``CE(all images) + oel_weight * L_oel + scl_weight * L_scl`` for anchor-major outputs.

    Args:
      config: the LIO settings (group size, weights, grouping).
      outputs: :class:`LIOClassifier`'s training outputs for B*G images in
        anchor-major order (anchor b's group is rows ``b*G .. b*G + G - 1``).
      labels: int [B*G].

    Returns:
      ``(loss, metrics)`` with ``loss``, ``ce``, ``accuracy`` and the head terms.

    References:
      Zhou et al., CVPR 2020, eq. L = L_cls + alpha L_oel + beta L_scl.
    """
    logits = outputs["logits"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    metrics = {"ce": ce, "accuracy": (logits.argmax(-1) == labels).mean()}
    loss = ce
    fmap = outputs["features"]
    total, size = fmap.shape[0], fmap.shape[1]
    if config.uses_oel:
        groups = total // config.group_size
        grouped = fmap.reshape(groups, config.group_size, size * fmap.shape[2], fmap.shape[3])
        pseudo = targets.grouped_oel_targets(grouped, config.grouping, config.oel_stop_gradient)
        oel = targets.oel_loss(outputs["mask"], pseudo.reshape(total, -1))
        loss = loss + config.oel_weight * oel
        metrics["oel"] = oel
    if config.uses_scl:
        scl, parts = targets.scl_loss(outputs["scl"], outputs["anchor"], outputs["region"], size)
        loss = loss + config.scl_weight * scl
        metrics.update(scl=scl, **parts)
    metrics["loss"] = loss
    return loss, metrics
