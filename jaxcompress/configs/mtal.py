"""Multi-task (detection + segmentation) presets on the embedded street scenes, for active learning."""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.nn.multitask import MultiTaskConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig


def mtal_config(name: str, model: MultiTaskConfig, steps: int, batch_size: int = 32,
                learning_rate: float = 3e-3, dataset: str = "street_scenes") -> Config:
    """An ``mtal`` training config (Adam, cosine decay, evaluation on ``test`` at the end only)."""
    return Config(name=name, task="mtal", model=model,
                  data=DataConfig(name=dataset, eval_split="test", batch_size=batch_size, eval_batch_size=96),
                  optim=OptimConfig(name="adam", learning_rate=learning_rate, schedule="cosine", warmup_steps=20,
                                    grad_clip_norm=1.0),
                  steps=steps, eval_every=0, checkpoint_every=0, keep_checkpoints=1, log_every=20)


@register_preset("mtal-street-scenes")
def _mtal_street_scenes() -> Config:
    """Small CNN (2 blocks, stride 4) + neck, CenterNet and segmentation heads on street_scenes."""
    return mtal_config("mtal-street-scenes", MultiTaskConfig(), steps=400)


@register_preset("mtal-resnet18-street-scenes")
def _mtal_resnet18() -> Config:
    """ResNet-18 (width 8, small-input stem, stride 8) shared backbone on street_scenes."""
    return mtal_config("mtal-resnet18-street-scenes", MultiTaskConfig(backbone="resnet", depth=18, width=8), steps=400)


@register_preset("mtal-tiny")
def _mtal_tiny() -> Config:
    """A few seconds: narrow CNN, 6 steps (tests, smoke runs)."""
    config = mtal_config("mtal-tiny", MultiTaskConfig(channels=(8, 16), neck_width=16, neck_layers=1), steps=6,
                         batch_size=8)
    config.log_every = 2
    return config
