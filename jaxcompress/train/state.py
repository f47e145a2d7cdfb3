"""The train state: a plain pytree of arrays, so it checkpoints and shards as data.

The random key is not part of the state: every step derives its own with
``jax.random.fold_in(key(seed), step)``, which makes a resumed run draw the
same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
    """``step`` int32 scalar, ``params`` and ``opt_state`` pytrees."""

    step: jax.Array
    params: Any
    opt_state: Any


def step_rng(seed: int, step: jax.Array) -> jax.Array:
    """The random key of training step ``step`` (a pure function of both)."""
    return jax.random.fold_in(jax.random.key(seed), step)


def zero_step() -> jax.Array:
    return jnp.zeros((), jnp.int32)
