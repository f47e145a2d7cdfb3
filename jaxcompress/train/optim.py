"""Optimisers and learning-rate schedules from an :class:`OptimConfig`."""

from __future__ import annotations

import optax

from jaxcompress.train.config import OptimConfig


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to ``cfg.learning_rate``, then constant, cosine or linear decay to 0."""
    decay_steps = max(total_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "constant":
        decay = optax.constant_schedule(cfg.learning_rate)
    elif cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.learning_rate, decay_steps)
    else:
        decay = optax.linear_schedule(cfg.learning_rate, 0.0, decay_steps)
    if cfg.warmup_steps == 0:
        return decay
    warmup = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
    return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


def make_optimizer(cfg: OptimConfig, total_steps: int, step_offset: int = 0) -> optax.GradientTransformation:
    """The optax transformation a config asks for, with optional global-norm clipping.

    ``step_offset`` shifts the schedule: the optimiser's first update uses the
    learning rate of step ``step_offset`` (for parts that start training late,
    see :mod:`jaxcompress.train.freeze`).

    References:
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (adamw);
      You et al., "Large Batch Optimization for Deep Learning", ICLR 2020 (lamb).
    """
    lr = learning_rate_schedule(cfg, total_steps)
    if step_offset:
        base = lr
        lr = lambda count: base(count + step_offset)  # noqa: E731
    if cfg.name == "adamw":
        core = optax.adamw(lr, b1=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.name == "adam":
        core = optax.adam(lr, b1=cfg.momentum)
    elif cfg.name == "lamb":
        core = optax.lamb(lr, b1=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        core = optax.sgd(lr, momentum=cfg.momentum or None)
    if cfg.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), core)
    return core
