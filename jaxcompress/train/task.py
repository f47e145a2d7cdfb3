"""The contract between a method and the training loop.

A method is a :class:`Task`: pure functions over pytrees that the loop jits,
shards, checkpoints and logs. It never owns a loop of its own.
"""

from __future__ import annotations

import abc
from typing import Any, Callable

import jax
import numpy as np
import optax

Batch = dict[str, Any]
Metrics = dict[str, jax.Array]


class Task(abc.ABC):
    """A trainable method: init, loss and evaluation over a batch dict."""

    @abc.abstractmethod
    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host-side conversion of dataset records (NumPy, before sharding).

        Keeps the ``weight`` key of evaluation batches if present.
        """

    @abc.abstractmethod
    def init(self, rng: jax.Array, batch: Batch) -> Any:
        """Initial parameters, leaves boxed with logical axis names."""

    @abc.abstractmethod
    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        """Scalar training loss and scalar metrics for one batch (training mode)."""

    @abc.abstractmethod
    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        """Per-example metrics ``[B]`` in inference mode; the loop averages them
        with the batch's ``weight`` so padded examples do not count."""

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """Hook for methods that act through the optimiser (pruning masks,
        quantisation-aware updates); the default leaves ``tx`` as it is."""
        return tx

    def forward_for_flops(self) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """An inference function and example arguments (batch of one), for
        ``model-info``'s FLOP count; None if the task has no single forward."""
        return None


TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    def wrap(factory: Callable[..., Task]) -> Callable[..., Task]:
        TASKS[name] = factory
        return factory

    return wrap


def registered_tasks() -> list[str]:
    """Names of the registered tasks (the built-in ones register when ``jaxcompress.tasks`` is imported)."""
    return sorted(TASKS)
