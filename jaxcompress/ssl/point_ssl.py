"""Self-supervised point-cloud Transformers: Point-MAE, MoCo and the MAE + MoCo hybrid, as pure functions.

* **MAE**: FPS + kNN patches, 60 % of the patches masked at random (a fixed
  count per cloud, so shapes are static), the encoder sees the visible
  patches only, the decoder fills mask tokens and a linear layer predicts
  each masked patch's ``k`` points; the loss is the Chamfer-L2 distance to the
  true patch, averaged over masked patches.
* **MoCo**: two augmented views; the query encoder + projection head against
  an EMA key encoder and a queue of negative keys (InfoNCE).
* **hybrid**: ``mae_weight * Chamfer + moco_weight * InfoNCE``.

The key encoder, the queue and its pointer are not trained by gradients:
they live in the parameter tree (so the one loop checkpoints and shards
them) and :func:`moco_optimizer` writes their new values through the
optimiser: the key encoder moves to ``m * key + (1 - m) * query``, and the
keys of the batch enter the queue at the pointer. The batch's keys reach the
optimiser as the gradient of a zero-valued term (``incoming`` below), so the
step function of the loop stays the generic one.

References: Pang et al., "Masked Autoencoders for Point Cloud Self-supervised
Learning", ECCV 2022; He et al., "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020; Romanelis et al., "ExpPoint-MAE", IEEE
Access 2024 (MAE vs MoCo, the hybrid).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxcompress.configlib import option
from jaxcompress.nn.point import MAEDecoder, PointConfig, PointEncoder, ProjectionHead
from jaxcompress.ops import chamfer_distance, group_points

METHODS = ("mae", "moco", "hybrid")
REGIMES = ("scratch", "full", "probe", "unfreeze", "embed")
MOCO_STATE = ("key", "queue", "queue_ptr", "incoming")


@dataclasses.dataclass(unsafe_hash=True)
class PointSSLConfig(PointConfig):
    """Model config of the ``point_ssl`` (pretraining) and ``point_cls`` (fine-tuning) tasks."""

    method: str = option("mae", help="pretraining objective", choices=METHODS)
    mask_ratio: float = option(0.6, help="MAE: fraction of patches masked (int(ratio * G) per cloud)", min=0.0,
                               max=0.95, min_exclusive=True)
    mae_weight: float = option(1.0, help="hybrid: weight of the Chamfer loss", min=0.0)
    moco_weight: float = option(1.0, help="hybrid: weight of InfoNCE", min=0.0)
    temperature: float = option(0.2, help="MoCo: InfoNCE temperature", min=0.0, min_exclusive=True)
    momentum: float = option(0.99, help="MoCo: EMA momentum of the key encoder", min=0.0, max=1.0)
    queue_size: int = option(512, help="MoCo: negative keys kept (a multiple of the batch size)", min=1)
    proj_dim: int = option(128, help="MoCo: projection output width", min=2)
    rotate_views: bool = option(True, help="MoCo: random rotation about the up axis in each view")
    view_dropout: float = option(0.5, help="MoCo: largest fraction of points dropped in a view", min=0.0,
                                 max=0.9)
    points_field: str = option("points", help="dataset feature with the clouds [N, 3]")
    label_field: str = option("label", help="dataset feature with the class label (point_cls)")
    regime: str = option("full", help="point_cls: which weights train and when", choices=REGIMES)
    unfreeze_at: float = option(0.8, help="point_cls: fraction of the steps after which frozen parts unfreeze "
                                "(regimes unfreeze, embed)", min=0.0, max=1.0)
    init_from: str = option("", help="point_cls: workdir of a pretraining run whose encoder initialises this one")
    label_smoothing: float = option(0.2, help="point_cls: epsilon spread over the wrong classes", min=0.0,
                                    max=0.99)

    def validate(self, prefix: str) -> None:
        from jaxcompress.errors import ConfigError

        super().validate(prefix)
        if self.num_masked < 1 or self.num_masked >= self.num_groups:
            raise ConfigError(f"config key '{prefix}mask_ratio' = {self.mask_ratio} must mask between 1 and "
                              f"num_groups - 1 = {self.num_groups - 1} groups")

    @property
    def num_masked(self) -> int:
        return int(self.mask_ratio * self.num_groups)

    @property
    def uses_mae(self) -> bool:
        return self.method in ("mae", "hybrid")

    @property
    def uses_moco(self) -> bool:
        return self.method in ("moco", "hybrid")


class PointSSLModel(nn.Module):
    """Shared encoder with an MAE decoder and/or a MoCo projection head (``setup`` submodules).

    Methods: :meth:`reconstruct` (MAE), :meth:`project` (MoCo query/key).
    ``__call__`` runs both, for initialisation.

    References: Pang et al., Point-MAE, ECCV 2022; He et al., MoCo, CVPR 2020.
    """

    cfg: PointSSLConfig

    def setup(self) -> None:
        self.encoder = PointEncoder(self.cfg)
        if self.cfg.uses_mae:
            self.decoder = MAEDecoder(self.cfg)
        if self.cfg.uses_moco:
            self.projector = ProjectionHead(self.cfg.width, self.cfg.proj_dim)

    def reconstruct(self, patches_visible: jax.Array, centers_visible: jax.Array, centers_masked: jax.Array,
                    deterministic: bool = True) -> jax.Array:
        """``[B, V, k, 3], [B, V, 3], [B, M, 3]`` -> predicted masked patches ``[B, M, k, 3]``."""
        tokens, _ = self.encoder(patches_visible, centers_visible, deterministic)
        return self.decoder(tokens, centers_visible, centers_masked, deterministic)

    def project(self, patches: jax.Array, centers: jax.Array, deterministic: bool = True) -> jax.Array:
        """``[B, G, k, 3], [B, G, 3]`` -> projections ``[B, proj_dim]`` (not normalised)."""
        tokens, _ = self.encoder(patches, centers, deterministic)
        return self.projector(tokens)

    def __call__(self, patches: jax.Array, centers: jax.Array) -> Any:
        out = {}
        if self.cfg.uses_mae:
            out["mae"] = self.reconstruct(patches, centers, centers)
        if self.cfg.uses_moco:
            out["moco"] = self.project(patches, centers)
        return out


def augment(points: jax.Array, rng: jax.Array, *, rotate: bool = False, dropout: float = 0.0) -> jax.Array:
    """Point-MAE augmentations on ``[B, N, 3]``: anisotropic scale U(2/3, 3/2), shift U(-0.2, 0.2).

    ``rotate`` adds a random rotation about z; ``dropout`` > 0 drops a random
    fraction in [0, dropout) of each cloud's points, overwriting them with the
    first point (the reference code's trick that keeps N fixed).

    References: Pang et al., Point-MAE, ECCV 2022 (``PointcloudScaleAndTranslate``,
    ``RandomInputDropout``).
    """
    b = points.shape[0]
    k_scale, k_shift, k_rot, k_ratio, k_drop = jax.random.split(rng, 5)
    scale = jax.random.uniform(k_scale, (b, 1, 3), minval=2 / 3, maxval=3 / 2)
    shift = jax.random.uniform(k_shift, (b, 1, 3), minval=-0.2, maxval=0.2)
    out = points * scale + shift
    if rotate:
        angle = jax.random.uniform(k_rot, (b,), maxval=2 * jnp.pi)
        c, s, z, o = jnp.cos(angle), jnp.sin(angle), jnp.zeros(b), jnp.ones(b)
        rot = jnp.stack([jnp.stack([c, -s, z], -1), jnp.stack([s, c, z], -1), jnp.stack([z, z, o], -1)], -2)
        out = jnp.einsum("bnd,bed->bne", out, rot)
    if dropout > 0:
        ratio = jax.random.uniform(k_ratio, (b, 1), maxval=dropout)
        drop = jax.random.uniform(k_drop, points.shape[:2]) < ratio
        out = jnp.where(drop[..., None], out[:, :1], out)
    return out


def take_groups(values: jax.Array, idx: jax.Array) -> jax.Array:
    """``values [B, G, ...]`` at group indices ``idx [B, M]`` -> ``[B, M, ...]``."""
    return jnp.take_along_axis(values, idx.reshape(idx.shape + (1,) * (values.ndim - 2)), axis=1)


def random_mask(rng: jax.Array, batch: int, num_groups: int, num_masked: int) -> tuple[jax.Array, jax.Array]:
    """(visible ``[B, G - M]``, masked ``[B, M]``) group indices: an exact count per cloud, random positions.

    References: Pang et al., Point-MAE, ECCV 2022 (random masking).
    """
    order = jnp.argsort(jax.random.uniform(rng, (batch, num_groups)), axis=1)
    return order[:, num_masked:], order[:, :num_masked]


def tokenize(cfg: PointConfig, points: jax.Array, rng: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """(centers ``[B, G, 3]``, patches ``[B, G, k, 3]``); FPS starts at a random point when ``rng`` is given."""
    start = 0 if rng is None else jax.random.randint(rng, points.shape[:1], 0, points.shape[1])
    return group_points(points, cfg.num_groups, cfg.group_size, start)


def mae_per_example(model: PointSSLModel, params: Any, points: jax.Array, rng: jax.Array,
                    deterministic: bool) -> jax.Array:
    """Chamfer-L2 reconstruction loss of the masked patches, ``[B]`` (mean over masked patches).

    References: Pang et al., Point-MAE, ECCV 2022, eq. (3).
    """
    cfg = model.cfg
    k_start, k_mask, k_drop = jax.random.split(rng, 3)
    centers, patches = tokenize(cfg, points, None if deterministic else k_start)
    visible, masked = random_mask(k_mask, points.shape[0], cfg.num_groups, cfg.num_masked)
    pred = model.apply({"params": params}, take_groups(patches, visible), take_groups(centers, visible),
                       take_groups(centers, masked), deterministic, rngs={"dropout": k_drop},
                       method=PointSSLModel.reconstruct)
    return jnp.mean(chamfer_distance(pred, take_groups(patches, masked), "l2"), axis=-1)


def info_nce(query: jax.Array, key: jax.Array, queue: jax.Array, temperature: float) -> jax.Array:
    """MoCo's InfoNCE per example: positive = the key of the same cloud, negatives = the queue.

    Shapes: query, key ``[B, D]`` (normalised here), queue ``[K, D]`` (normalised) -> ``[B]``.

    References: He et al., MoCo, CVPR 2020, eq. (1).
    """
    q = query / jnp.linalg.norm(query, axis=-1, keepdims=True).clip(1e-8)
    k = key / jnp.linalg.norm(key, axis=-1, keepdims=True).clip(1e-8)
    logits = jnp.concatenate([jnp.sum(q * k, -1, keepdims=True), q @ queue.T], axis=1) / temperature
    return -jax.nn.log_softmax(logits, axis=1)[:, 0]


def normalize(x: jax.Array) -> jax.Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-8)


def moco_per_example(model: PointSSLModel, params: Any, points: jax.Array, rng: jax.Array,
                     deterministic: bool) -> tuple[jax.Array, jax.Array]:
    """(InfoNCE ``[B]``, normalised keys ``[B, proj_dim]``) of two augmented views of every cloud.

    References: He et al., MoCo, CVPR 2020; Romanelis et al., ExpPoint-MAE (two-crop point views).
    """
    cfg = model.cfg
    k_q, k_k, k_gq, k_gk, k_drop = jax.random.split(rng, 5)
    views = [augment(points, r, rotate=cfg.rotate_views, dropout=cfg.view_dropout) for r in (k_q, k_k)]
    cq, pq = tokenize(cfg, views[0], None if deterministic else k_gq)
    ck, pk = tokenize(cfg, views[1], None if deterministic else k_gk)
    query = model.apply({"params": {"encoder": params["encoder"], "projector": params["projector"]}}, pq, cq,
                        deterministic, rngs={"dropout": k_drop}, method=PointSSLModel.project)
    key = jax.lax.stop_gradient(model.apply({"params": params["key"]}, pk, ck, True, method=PointSSLModel.project))
    key = normalize(key)
    return info_nce(query, key, jax.lax.stop_gradient(params["queue"]), cfg.temperature), key


def init_moco_state(params: dict[str, Any], rng: jax.Array, cfg: PointSSLConfig, batch_size: int) -> dict[str, Any]:
    """Adds the key encoder (a copy of the query's), a queue of random unit keys, its pointer and the
    ``incoming`` slot to freshly initialised params.

    References: He et al., MoCo, CVPR 2020 (Algorithm 1).
    """
    queue = normalize(jax.random.normal(rng, (cfg.queue_size, cfg.proj_dim)))
    return {**params, "key": {"encoder": params["encoder"], "projector": params["projector"]}, "queue": queue,
            "queue_ptr": jnp.zeros((), jnp.float32), "incoming": jnp.zeros((batch_size, cfg.proj_dim))}


def enqueue_term(params: dict[str, Any], keys: jax.Array) -> jax.Array:
    """A term whose value is 0 and whose gradient w.r.t. ``params['incoming']`` is ``keys`` [B, D]."""
    dot = jnp.vdot(params["incoming"], jax.lax.stop_gradient(keys))
    return dot - jax.lax.stop_gradient(dot)


class _MocoState(NamedTuple):
    inner: optax.OptState


def moco_optimizer(tx: optax.GradientTransformation, momentum: float) -> optax.GradientTransformation:
    """``tx`` for the trained parameters; EMA key encoder and queue writes for the MoCo state.

    Labels: the top-level keys in :data:`MOCO_STATE` get no gradient update
    and no weight decay (``optax.set_to_zero`` inside ``multi_transform``);
    their updates are set here: ``key += (1 - m) (query - key)`` (with the
    query before this step), the ``incoming`` gradient (the batch's keys)
    written at ``queue[ptr:ptr + B]``, and ``ptr = (ptr + B) mod K``.

    References: He et al., MoCo, CVPR 2020 (momentum update, dequeue and enqueue).
    """
    def labels(params: Any) -> dict[str, Any]:
        # Top-level prefix labels: masked-out subtrees become optax MaskedNodes, not boxes around them.
        return {k: "moco" if k in MOCO_STATE else "train" for k in params}

    inner = optax.multi_transform({"train": tx, "moco": optax.set_to_zero()}, labels)

    def init_fn(params: Any) -> _MocoState:
        return _MocoState(inner.init(params))

    def update_fn(grads: Any, state: _MocoState, params: Any = None) -> tuple[Any, _MocoState]:
        updates, inner_state = inner.update(grads, state.inner, params)
        updates = dict(updates)
        query = {"encoder": params["encoder"], "projector": params["projector"]}
        updates["key"] = jax.tree.map(lambda k, q: (1.0 - momentum) * (q - k), params["key"], query)
        queue, incoming = params["queue"], grads["incoming"]
        ptr = params["queue_ptr"].astype(jnp.int32)
        new_queue = jax.lax.dynamic_update_slice(queue, incoming.astype(queue.dtype), (ptr, 0))
        updates["queue"] = new_queue - queue
        new_ptr = ((ptr + incoming.shape[0]) % queue.shape[0]).astype(jnp.float32)
        updates["queue_ptr"] = new_ptr - params["queue_ptr"]
        updates["incoming"] = jnp.zeros_like(params["incoming"])
        return updates, _MocoState(inner_state)

    return optax.GradientTransformation(init_fn, update_fn)
