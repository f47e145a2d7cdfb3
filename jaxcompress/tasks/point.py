"""Point-cloud Transformer tasks: ``point_ssl`` (MAE / MoCo / hybrid pretraining) and ``point_cls`` (fine-tuning).

Both read any dataset with a float ``[N, 3]`` point feature (``model.points_field``,
default ``points``): the embedded ``point_shapes`` / ``point_shapes_scan``, or a
real TFDS point-cloud dataset (ModelNet40, ShapeNet) prepared in the data
directory. Clouds with NaN, infinite coordinates or fewer points than a patch
needs are refused with one clear error.

``point_cls`` fine-tuning regimes (``model.regime``):

* ``scratch``: random initialisation, everything trains;
* ``full``: the encoder from ``model.init_from``, everything trains;
* ``probe``: encoder frozen (no update, no weight decay); cls token and head train;
* ``unfreeze``: as ``probe`` until ``unfreeze_at * steps``, then the whole
  encoder trains on the same cosine schedule (no restart);
* ``embed``: as ``probe``, but the patch and position embeddings unfreeze at
  ``unfreeze_at * steps`` (the Transformer blocks stay frozen).

References: Pang et al., Point-MAE, ECCV 2022; He et al., MoCo, CVPR 2020;
Romanelis et al., "ExpPoint-MAE", IEEE Access 2024 (regimes and unfreezing).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.data.point_shapes import check_point_clouds
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.nn.point import PointClassifier
from jaxcompress.ssl import point_ssl as ps
from jaxcompress.train.checkpoint import graft_params, restore_params
from jaxcompress.train.freeze import NEVER, staged_optimizer
from jaxcompress.train.task import Batch, Metrics, Task, register_task

POINTS = "points"


def _check_setup(config: Any, data_info: dict[str, Any], task: str) -> ps.PointSSLConfig:
    cfg = config.model
    if not isinstance(cfg, ps.PointSSLConfig):
        raise ConfigError(f"task {task!r} needs a PointSSLConfig model config, got {type(cfg).__name__}")
    features = data_info.get("features") or {}
    spec = features.get(cfg.points_field)
    if spec is None:
        raise DataError(f"dataset {data_info.get('name')!r} has no feature {cfg.points_field!r} (config key "
                        f"'model.points_field'); its features: {', '.join(sorted(features)) or 'none'}")
    shape, _ = spec
    if len(shape) != 2 or shape[1] != 3 or shape[0] is None:
        raise DataError(f"feature {cfg.points_field!r} of dataset {data_info.get('name')!r} must be clouds of "
                        f"fixed shape [num_points, 3]; got {shape}")
    if shape[0] < max(cfg.num_groups, cfg.group_size):
        raise DataError(f"feature {cfg.points_field!r} has {shape[0]} points per cloud; model.num_groups "
                        f"({cfg.num_groups}) and model.group_size ({cfg.group_size}) need at least "
                        f"{max(cfg.num_groups, cfg.group_size)}")
    return cfg


def _points(cfg: ps.PointSSLConfig, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    batch = {POINTS: check_point_clouds(raw[cfg.points_field], cfg.points_field,
                                        max(cfg.num_groups, cfg.group_size))}
    if "weight" in raw:
        batch["weight"] = np.asarray(raw["weight"], np.float32)
    return batch


@register_task("point_ssl")
class PointSSLTask(Task):
    """Self-supervised pretraining of the point Transformer: ``model.method`` = mae | moco | hybrid.

    Training metrics: ``loss``, ``chamfer`` (MAE), ``infonce`` (MoCo).
    Evaluation per cloud (fixed masks and views): the same terms.

    References: Pang et al., ECCV 2022; He et al., CVPR 2020; Romanelis et al., IEEE Access 2024.
    """

    def __init__(self, config: Any, data_info: dict[str, Any]):
        self.cfg = _check_setup(config, data_info, "point_ssl")
        self.batch_size = config.data.batch_size
        if self.cfg.uses_moco and self.cfg.queue_size % self.batch_size:
            raise ConfigError(f"config key 'model.queue_size' = {self.cfg.queue_size} must be a multiple of "
                              f"data.batch_size = {self.batch_size} (whole batches enter the queue)")
        self.model = ps.PointSSLModel(self.cfg)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _points(self.cfg, raw)

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        k_init, k_queue = jax.random.split(rng)
        centers, patches = ps.tokenize(self.cfg, batch[POINTS], None)
        params = dict(self.model.init(k_init, patches, centers)["params"])
        if self.cfg.uses_moco:
            params = ps.init_moco_state(params, k_queue, self.cfg, self.batch_size)
        return params

    def _terms(self, params: Any, points: jax.Array, rng: jax.Array, deterministic: bool
               ) -> tuple[dict[str, jax.Array], jax.Array | None]:
        k_aug, k_mae, k_moco = jax.random.split(rng, 3)
        terms, keys = {}, None
        if self.cfg.uses_mae:
            mae_points = points if deterministic else ps.augment(points, k_aug)
            terms["chamfer"] = ps.mae_per_example(self.model, params, mae_points, k_mae, deterministic)
        if self.cfg.uses_moco:
            terms["infonce"], keys = ps.moco_per_example(self.model, params, points, k_moco, deterministic)
        return terms, keys

    def _total(self, terms: dict[str, jax.Array]) -> jax.Array:
        total = 0.0
        if "chamfer" in terms:
            total = total + (self.cfg.mae_weight if self.cfg.method == "hybrid" else 1.0) * terms["chamfer"]
        if "infonce" in terms:
            total = total + (self.cfg.moco_weight if self.cfg.method == "hybrid" else 1.0) * terms["infonce"]
        return total

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        terms, keys = self._terms(params, batch[POINTS], rng, deterministic=False)
        loss = jnp.mean(self._total(terms))
        metrics = {name: jnp.mean(value) for name, value in terms.items()}
        if keys is not None:
            loss = loss + ps.enqueue_term(params, keys)
        return loss, {"loss": loss, **metrics}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        terms, _ = self._terms(params, batch[POINTS], jax.random.key(0), deterministic=True)
        return {"loss": self._total(terms), **terms}

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        return ps.moco_optimizer(tx, self.cfg.momentum) if self.cfg.uses_moco else tx


def label_smoothed_ce(logits: jax.Array, labels: jax.Array, epsilon: float) -> jax.Array:
    """Cross entropy against ``(1 - eps) onehot + eps / (C - 1) (1 - onehot)``, per example ``[B]``.

    The smoothing mass goes to the C - 1 wrong classes (the reference code's
    form), not to all C classes as in ``optax.smooth_labels``.

    References: Romanelis et al., ExpPoint-MAE (``finetune_pipeline``); Szegedy et al., CVPR 2016.
    """
    c = logits.shape[-1]
    onehot = jax.nn.one_hot(labels, c)
    target = (1.0 - epsilon) * onehot + epsilon / (c - 1) * (1.0 - onehot)
    return -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def regime_groups(params: Any, regime: str) -> Any:
    """Group label of every parameter: ``train`` (from step 0), ``frozen`` (never) or ``late`` (unfreezes).

    References: Romanelis et al., ExpPoint-MAE (``freeze_backbone``, ``unfeeze_at_epoch``, ``unfreeze_feat_emb``).
    """
    def encoder_label(path: tuple[Any, ...]) -> str:
        if regime in ("scratch", "full"):
            return "train"
        if regime == "probe":
            return "frozen"
        if regime == "unfreeze":
            return "late"
        embedding = getattr(path[0], "key", None) in ("patch_embed", "pos_embed")
        return "late" if embedding else "frozen"

    # Logical-axis boxes count as leaves: a masked-out box is then replaced whole (no box around
    # optax's MaskedNode), which the loop's sharding code skips.
    boxed = lambda x: isinstance(x, nn.Partitioned)  # noqa: E731
    return {name: (jax.tree_util.tree_map_with_path(lambda path, _: encoder_label(path), sub, is_leaf=boxed)
                   if name == "encoder" else jax.tree.map(lambda _: "train", sub, is_leaf=boxed))
            for name, sub in params.items()}


@register_task("point_cls")
class PointClassificationTask(Task):
    """Classification fine-tuning of the point Transformer under one of the regimes in the module docstring.

    Training metrics: ``loss`` (label-smoothed CE), ``accuracy``. Evaluation per
    cloud: ``accuracy`` and plain cross entropy ``loss``.

    References: Pang et al., ECCV 2022; Romanelis et al., IEEE Access 2024.
    """

    def __init__(self, config: Any, data_info: dict[str, Any]):
        self.cfg = _check_setup(config, data_info, "point_cls")
        features = data_info.get("features") or {}
        if self.cfg.label_field not in features:
            raise DataError(f"dataset {data_info.get('name')!r} has no label feature {self.cfg.label_field!r} "
                            f"(config key 'model.label_field')")
        self.num_classes = data_info.get("num_classes")
        if not self.num_classes:
            raise DataError(f"feature {self.cfg.label_field!r} of dataset {data_info.get('name')!r} is not a "
                            f"class label (TFDS ClassLabel)")
        if self.cfg.regime == "scratch" and self.cfg.init_from:
            raise ConfigError("config key 'model.init_from' must be empty with model.regime = 'scratch' "
                              "(use regime 'full' to fine-tune a pretrained encoder)")
        self.optim, self.steps = config.optim, config.steps
        self.model = PointClassifier(self.cfg, int(self.num_classes))
        self._encoder = None
        if self.cfg.init_from:
            self._encoder = restore_params(self.cfg.init_from, "encoder", field="config key 'model.init_from'")

    @property
    def unfreeze_step(self) -> int:
        return max(1, int(round(self.cfg.unfreeze_at * self.steps)))

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = _points(self.cfg, raw)
        labels = np.asarray(raw[self.cfg.label_field])
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= self.num_classes:
            raise DataError(f"feature {self.cfg.label_field!r} holds labels outside [0, {self.num_classes})")
        batch["label"] = labels.astype(np.int32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        centers, patches = ps.tokenize(self.cfg, batch[POINTS], None)
        params = dict(self.model.init(rng, patches, centers)["params"])
        if self._encoder is not None:
            params["encoder"] = graft_params(params["encoder"], self._encoder, f"config key 'model.init_from' = "
                                                                        f"{self.cfg.init_from!r}")
        return params

    def logits(self, params: Any, points: jax.Array, rng: jax.Array | None, collect: bool = False
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Logits ``[B, C]`` (and per-layer hidden states / attention with ``collect``); training mode with ``rng``."""
        deterministic = rng is None
        k_start, k_drop = jax.random.split(rng if rng is not None else jax.random.key(0))
        centers, patches = ps.tokenize(self.cfg, points, None if deterministic else k_start)
        return self.model.apply({"params": params}, patches, centers, deterministic, collect,
                                rngs={"dropout": k_drop})

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        k_aug, k_model = jax.random.split(rng)
        logits, _ = self.logits(params, ps.augment(batch[POINTS], k_aug), k_model)
        loss = jnp.mean(label_smoothed_ce(logits, batch["label"], self.cfg.label_smoothing))
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        return loss, {"loss": loss, "accuracy": accuracy}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        logits, _ = self.logits(params, batch[POINTS], None)
        return {"accuracy": (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32),
                "loss": label_smoothed_ce(logits, batch["label"], 0.0)}

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        if self.cfg.regime in ("scratch", "full"):
            return tx
        starts = {"train": 0, "frozen": NEVER, "late": self.unfreeze_step}
        if self.cfg.regime == "probe":
            starts["late"] = NEVER
        return staged_optimizer(self.optim, self.steps, lambda p: regime_groups(p, self.cfg.regime), starts, base=tx)

