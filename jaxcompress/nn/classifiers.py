"""Builds the classifier a model config describes (MLP or CNN).

One place maps a model config to a Flax module, so the classification task,
distillation (teacher and student) and compression tools build models the
same way.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxcompress.errors import ConfigError
from jaxcompress.nn.cnn import CNNClassifier
from jaxcompress.nn.mlp import MLPClassifier


def build_classifier(model_config: Any, num_classes: int, field: str = "model") -> nn.Module:
    """An :class:`MLPClassifier` for an ``MLPConfig``, a :class:`CNNClassifier` for a ``CNNConfig``.

    Args:
      model_config: a config with ``channels`` (CNN) or ``hidden_sizes`` (MLP).
      num_classes: number of logits.
      field: the config key named in errors.

    Raises:
      ConfigError: for any other config type.
    """
    if hasattr(model_config, "channels"):
        return CNNClassifier(channels=tuple(model_config.channels), num_classes=num_classes,
                             kernel_size=model_config.kernel_size, hidden_size=model_config.hidden_size,
                             dropout=model_config.dropout)
    if hasattr(model_config, "hidden_sizes"):
        return MLPClassifier(hidden_sizes=tuple(model_config.hidden_sizes), num_classes=num_classes,
                             dropout=model_config.dropout)
    raise ConfigError(f"config key '{field}' must be an MLP config (hidden_sizes) or a CNN config (channels), "
                      f"got {type(model_config).__name__}")
