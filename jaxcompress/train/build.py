"""What a run config asks the loop to build: its task (with QAT) and its optimiser (with pruning masks).

Every task goes through these two functions, so ``quant.qat`` and ``prune.*``
act on any task (classification, masked-LM pretraining, graph contrastive
learning, speech, distillation), in ``jaxcompress train``, in the experiment
runners and when a work directory is restored for compression.
"""

from __future__ import annotations

from typing import Any

import optax

from jaxcompress.compress.pruning import wrap
from jaxcompress.errors import ConfigError
from jaxcompress.train.optim import make_optimizer
from jaxcompress.train.qat import with_quantization
from jaxcompress.train.task import TASKS, Task, registered_tasks


def make_task(config: Any, data_info: dict[str, Any]) -> Task:
    """The task named by ``config.task`` for a dataset described by ``data_info``, quantization-aware
    when ``config.quant.qat`` asks.

    Raises:
      ConfigError: an unregistered task, or a QAT kind the task cannot take.
    """
    if config.task not in TASKS:
        raise ConfigError(f"unknown task {config.task!r}; allowed tasks: {', '.join(registered_tasks())} "
                          f"(import jaxcompress.tasks to register the built-in tasks)")
    return with_quantization(TASKS[config.task](config, data_info), config)


def build_optimizer(config: Any, task: Task) -> optax.GradientTransformation:
    """The optimiser of ``config.optim``, the task's own wrapper (e.g. frozen parts), then pruning masks.

    References:
      Zhu & Gupta, "To prune, or not to prune", arXiv 1710.01878 (pruning in the optimiser).
    """
    tx = task.wrap_optimizer(make_optimizer(config.optim, config.steps))
    if config.prune.method != "none":
        tx = wrap(tx, config.prune, config.steps)
    return tx
