"""Once-for-all speech presets: CIF encoder pretraining and the frozen-encoder probe."""

from __future__ import annotations

from typing import Any

from jaxcompress.configs._registry import register_preset
from jaxcompress.ssl import ofa
from jaxcompress.tasks.speech_probe import SpeechProbeConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig


def _preset(name: str, data: str, steps: int, batch_size: int, **model: Any) -> Config:
    return Config(name=name, task="ofa_speech", model=ofa.OFASpeechConfig(**model),
                  data=DataConfig(name=data, batch_size=batch_size, eval_batch_size=64),
                  optim=OptimConfig(name="adamw", learning_rate=2e-3, schedule="cosine",
                                    warmup_steps=max(steps // 10, 1), weight_decay=0.01),
                  steps=steps, eval_every=max(steps // 2, 1), checkpoint_every=0, log_every=max(steps // 20, 1))


@register_preset("ofa-speech-tiny")
def _ofa_speech_tiny() -> Config:
    """OFA CIF speech encoder (128-d, 2 layers) on speech_digits, lambda ~ U(0,1): minutes on CPU."""
    return _preset("ofa-speech-tiny", "speech_digits", steps=600, batch_size=32)


@register_preset("ofa-speech-smoke")
def _ofa_speech_smoke() -> Config:
    """The OFA speech encoder shrunk (32-d, 1 layer) on speech_digits_tiny: seconds, for smoke tests."""
    return _preset("ofa-speech-smoke", "speech_digits_tiny", steps=8, batch_size=8, frontend_size=32,
                   hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, codebook_size=16)


@register_preset("ofa-speech-probe")
def _ofa_speech_probe() -> Config:
    """Keyword probe on a frozen ofa_speech encoder (set model.upstream=WORKDIR; model.target picks the task)."""
    return Config(name="ofa-speech-probe", task="speech_probe", model=SpeechProbeConfig(),
                  data=DataConfig(name="speech_commands", batch_size=32, eval_batch_size=64),
                  optim=OptimConfig(name="adam", learning_rate=3e-3, schedule="constant"),
                  steps=300, eval_every=0, checkpoint_every=0, log_every=25)
