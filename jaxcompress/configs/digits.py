"""Presets on the embedded handwritten digits: the MLP and CNN the core runtime and compression tests train."""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.nn.cnn import CNNConfig
from jaxcompress.nn.mlp import MLPConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig


@register_preset("digits-mlp")
def _digits_mlp() -> Config:
    """MLP on the embedded handwritten digits: about 30 s on 2 CPU cores."""
    return Config(name="digits-mlp", optim=OptimConfig(learning_rate=3e-3),
                  steps=600, eval_every=200, checkpoint_every=200)


@register_preset("digits-mlp-tiny")
def _digits_mlp_tiny() -> Config:
    """A few seconds: the preset tests and smoke runs use."""
    return Config(name="digits-mlp-tiny", model=MLPConfig(hidden_sizes=(32, 32), dropout=0.0),
                  data=DataConfig(batch_size=32, eval_batch_size=128),
                  optim=OptimConfig(learning_rate=1e-2),
                  steps=40, eval_every=20, checkpoint_every=20, log_every=5)


@register_preset("digits-cnn")
def _digits_cnn() -> Config:
    """Small CNN on the embedded handwritten digits: about a minute on 2 CPU cores."""
    return Config(name="digits-cnn", model=CNNConfig(), optim=OptimConfig(learning_rate=3e-3),
                  steps=600, eval_every=200, checkpoint_every=200)


@register_preset("digits-cnn-tiny")
def _digits_cnn_tiny() -> Config:
    """A few seconds: the CNN the compression tests train."""
    return Config(name="digits-cnn-tiny", model=CNNConfig(channels=(8, 16), hidden_size=32),
                  data=DataConfig(batch_size=32, eval_batch_size=128),
                  optim=OptimConfig(learning_rate=1e-2),
                  steps=60, eval_every=30, checkpoint_every=30, log_every=10)
