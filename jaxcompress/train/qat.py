"""Quantization-aware training for every task: the loss and evaluation see quantised weights.

``quant.qat`` = ``fake_quant``, ``binary`` or ``ternary`` quantises the
selected parameters (straight-through gradients) before any task's loss and
evaluation, so it acts on masked-LM pretraining, graph contrastive learning,
speech and classification alike; the optimiser keeps and updates the float
weights. ``quant.qat=qwix`` intercepts a model's layers (weights and
activations) and needs a task that builds its model through
``compress.quantize.model_for_training`` (``classify``); other tasks refuse it.

References:
  Jacob et al., "Quantization and Training of Neural Networks for Efficient
  Integer-Arithmetic-Only Inference", CVPR 2018 (simulated quantization in training).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax

from jaxcompress.compress.quantize import params_quantizer
from jaxcompress.errors import ConfigError
from jaxcompress.train.task import Batch, Metrics, Task

#: Folded into the step's key so the rounding noise is independent of dropout's.
_QUANT_STREAM = 0x51A7


class QuantizationAwareTask(Task):
    """``task`` trained and evaluated on fake-quantised parameters (a wrapper of any task)."""

    def __init__(self, task: Task, quant_config: Any):
        self.task = task
        self.quantizer = params_quantizer(quant_config)

    def prepare_batch(self, raw: dict[str, Any]) -> dict[str, Any]:
        return self.task.prepare_batch(raw)

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        return self.task.init(rng, batch)

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        quantized = self.quantizer.quantized_params(params, jax.random.fold_in(rng, _QUANT_STREAM))
        return self.task.loss(quantized, batch, rng)

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        return self.task.evaluate(self.quantizer.quantized_params(params), batch)

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        return self.task.wrap_optimizer(tx)

    def forward_for_flops(self) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        return self.task.forward_for_flops()

    def __getattr__(self, name: str) -> Any:
        # Runners read task attributes (models, settings); the wrapped task has them.
        return getattr(self.task, name)


def with_quantization(task: Task, config: Any) -> Task:
    """``task`` as ``config.quant.qat`` asks: itself, wrapped for parameter QAT, or refused.

    Raises:
      ConfigError: ``qat=qwix`` for a task that does not quantise its own layers.
    """
    kind = config.quant.qat
    if kind == "none":
        return task
    if kind == "qwix":
        if not getattr(task, "handles_qwix_qat", False):
            raise ConfigError(f"config key 'quant.qat' = 'qwix' intercepts model layers, which task "
                              f"{config.task!r} does not expose; use quant.qat=fake_quant (or binary/ternary), "
                              f"which quantises the parameters of any task")
        return task
    return QuantizationAwareTask(task, config.quant)
