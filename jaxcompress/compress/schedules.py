"""Sparsity schedules: when masks are recomputed and to what sparsity.

All functions take the optimiser's update count as a traced integer, so the
schedule runs inside the jitted step.

References:
  Zhu & Gupta, "To prune, or not to prune", arXiv 1710.01878 (gradual cubic);
  Han et al., "Learning both Weights and Connections", NeurIPS 2015 (iterative).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxcompress.errors import ConfigError

KINDS = ("one_shot", "iterative", "gradual")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Target sparsity over training.

    Attributes:
      kind: ``one_shot`` (full sparsity at ``start_step``), ``iterative``
        (``rounds`` equal-ratio rounds between start and end: each removes the
        same fraction of the remaining weights), or ``gradual`` (cubic ramp
        every ``frequency`` steps, Zhu & Gupta).
      sparsity: final sparsity ``s_f`` in [0, 1).
      start_step, end_step: the ramp's first and last update steps.
      frequency: gradual: steps between mask updates.
      rounds: iterative: number of pruning rounds.
      initial_sparsity: gradual: ``s_i``.
    """

    kind: str
    sparsity: float
    start_step: int = 0
    end_step: int = 0
    frequency: int = 10
    rounds: int = 3
    initial_sparsity: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"prune.schedule must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"prune.sparsity must be in [0, 1), got {self.sparsity}")
        if self.kind != "one_shot" and self.end_step <= self.start_step:
            raise ConfigError(f"prune.end_step ({self.end_step}) must be after prune.start_step "
                              f"({self.start_step}) for the {self.kind} schedule")
        if self.frequency < 1 or self.rounds < 1:
            raise ConfigError("prune.frequency and prune.rounds must be >= 1")

    def target(self, step: jax.Array) -> jax.Array:
        """Sparsity the masks should have after the update at ``step``."""
        step = jnp.asarray(step, jnp.float32)
        if self.kind == "one_shot":
            return jnp.where(step >= self.start_step, self.sparsity, 0.0)
        span = float(self.end_step - self.start_step)
        progress = jnp.clip((step - self.start_step) / span, 0.0, 1.0)
        if self.kind == "gradual":
            value = self.sparsity + (self.initial_sparsity - self.sparsity) * (1.0 - progress) ** 3
            return jnp.where(step >= self.start_step, value, 0.0)
        done = jnp.clip(jnp.floor((step - self.start_step) / self._period), 0, self.rounds)  # rounds finished
        value = 1.0 - (1.0 - self.sparsity) ** (done / self.rounds)
        return jnp.where(step >= self.start_step, value, 0.0)

    def is_update(self, step: jax.Array) -> jax.Array:
        """Whether the masks are recomputed at ``step``."""
        step = jnp.asarray(step)
        if self.kind == "one_shot":
            return step == self.start_step
        inside = (step >= self.start_step) & (step <= self.end_step)
        if self.kind == "gradual":
            return inside & ((step - self.start_step) % self.frequency == 0)
        offset = step - self.start_step
        return inside & (offset > 0) & (offset % self._period == 0) & (offset // self._period <= self.rounds)

    @property
    def _period(self) -> int:
        return max((self.end_step - self.start_step) // self.rounds, 1)
