"""TTS transfer presets: the FastSpeech-style acoustic model and the CTC recogniser (``tts_<lang>`` data)."""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.nn.tts import RecognizerConfig
from jaxcompress.tasks.tts import TTSModelConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig


@register_preset("tts-fastspeech")
def _tts_fastspeech() -> Config:
    """FastSpeech-style acoustic model (96-d, 2+2 layers, ~0.4M params) on tts_ru: phone ids in, log-mel out."""
    return Config(name="tts-fastspeech", task="tts", model=TTSModelConfig(),
                  data=DataConfig(name="tts_ru", eval_split="test", batch_size=16, eval_batch_size=40),
                  optim=OptimConfig(name="adam", learning_rate=2e-3, schedule="cosine", warmup_steps=30),
                  steps=400, eval_every=0, checkpoint_every=0, log_every=20, keep_checkpoints=1)


@register_preset("tts-recognizer")
def _tts_recognizer() -> Config:
    """CTC character recogniser of log-mels (conv + BiGRU, ~0.3M params) on tts_bg: the CER judge."""
    return Config(name="tts-recognizer", task="tts_ctc", model=RecognizerConfig(),
                  data=DataConfig(name="tts_bg", eval_split="test", batch_size=16, eval_batch_size=40),
                  optim=OptimConfig(name="adam", learning_rate=3e-3, schedule="cosine", warmup_steps=20),
                  steps=400, eval_every=0, checkpoint_every=0, log_every=20, keep_checkpoints=1)
