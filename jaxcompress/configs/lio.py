"""Look-into-Object presets: the small CNN and a ResNet-18 on the embedded cluttered canvases."""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.ssl.lio import LIOConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig


def lio_config(name: str, dataset: str, model: LIOConfig, steps: int, batch_size: int = 16,
               learning_rate: float = 2e-3) -> Config:
    """A ``lio`` training config; ``batch_size`` counts anchors (each brings ``model.positives`` more images)."""
    return Config(name=name, task="lio", model=model,
                  data=DataConfig(name=dataset, batch_size=batch_size, eval_batch_size=128),
                  optim=OptimConfig(name="adam", learning_rate=learning_rate, schedule="cosine", warmup_steps=20,
                                    grad_clip_norm=1.0),
                  steps=steps, eval_every=0, checkpoint_every=0, log_every=20)


@register_preset("lio-cluttered-digits")
def _lio_cluttered_digits() -> Config:
    """Small CNN with OEL + SCL on cluttered_digits: a few minutes on 2 CPU cores."""
    return lio_config("lio-cluttered-digits", "cluttered_digits", LIOConfig(), steps=400)


@register_preset("lio-part-shapes")
def _lio_part_shapes() -> Config:
    """Small CNN with OEL + SCL on the fine-grained part_shapes: a few minutes on 2 CPU cores."""
    return lio_config("lio-part-shapes", "part_shapes", LIOConfig(), steps=400)


@register_preset("lio-resnet18-part-shapes")
def _lio_resnet18_part_shapes() -> Config:
    """ResNet-18 (width 16, small-image stem, 6x6 map) with OEL + SCL on part_shapes."""
    return lio_config("lio-resnet18-part-shapes", "part_shapes", LIOConfig(backbone="resnet", depth=18, width=16),
                      steps=400)


@register_preset("lio-tiny")
def _lio_tiny() -> Config:
    """A few seconds: a narrow CNN, 6 steps (tests, smoke runs)."""
    config = lio_config("lio-tiny", "cluttered_digits", LIOConfig(channels=(8, 16, 16), hidden_size=16), steps=6,
                        batch_size=8)
    config.log_every = 2
    return config
