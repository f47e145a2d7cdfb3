"""Freezing and late unfreezing of parameter groups on one learning-rate schedule.

Every parameter carries a group label. A group either trains from step 0,
never trains, or starts at step ``E``. Frozen parameters sit under
``optax.set_to_zero()`` inside ``optax.multi_transform``: they get neither an
update nor decoupled weight decay (zeroing their gradients would still decay
them). A group that starts at ``E`` runs its own optimiser under
``optax.transforms.conditionally_mask``: before ``E`` its updates are zero and
its state (Adam moments, step count) stays at its initial value, so its
moments start from zero at ``E`` as in PyTorch, where optimiser state is made
lazily at the first gradient. Its schedule is shifted by ``E``, so its first
update uses the learning rate of step ``E`` of the run's one schedule: the
schedule continues, it does not restart.

References: Romanelis et al., "ExpPoint-MAE", IEEE Access 2024 (freeze the
backbone, unfreeze it late in the same cosine schedule); Howard & Ruder,
"Universal Language Model Fine-tuning", ACL 2018 (gradual unfreezing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optax

from jaxcompress.train.config import OptimConfig
from jaxcompress.train.optim import make_optimizer

#: Start step of a group that never trains.
NEVER: int = -1


def staged_optimizer(cfg: OptimConfig, total_steps: int, label_fn: Callable[[Any], Any],
                     starts: Mapping[str, int], base: optax.GradientTransformation | None = None
                     ) -> optax.GradientTransformation:
    """One optimiser over groups that start training at different steps.

    Args:
      cfg: the run's optimiser config (one schedule for every group).
      total_steps: the run's length (the schedule's horizon).
      label_fn: params -> a tree of group names of the same structure.
      starts: ``{group: start step}``; 0 trains from the start, :data:`NEVER`
        freezes, ``E > 0`` unfreezes at step ``E``.
      base: the optimiser of groups that start at 0 (default: ``make_optimizer(cfg, total_steps)``).

    Returns:
      An ``optax.multi_transform`` over the groups.
    """
    transforms: dict[str, optax.GradientTransformation] = {}
    for group, start in starts.items():
        if start == NEVER:
            transforms[group] = optax.set_to_zero()
        elif start == 0:
            transforms[group] = base if base is not None else make_optimizer(cfg, total_steps)
        else:
            transforms[group] = optax.transforms.conditionally_mask(
                make_optimizer(cfg, total_steps, step_offset=start), lambda count, s=start: count >= s)
    return optax.multi_transform(transforms, label_fn)
