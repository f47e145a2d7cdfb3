"""Fine-tuning presets of the tiny ALBERT/BERT encoders on the embedded downstream tasks.

``albert-tiny-topic`` / ``bert-tiny-topic`` classify a documentation passage
into one of 12 library areas (``pydocs_topic``); ``albert-tiny-pair`` /
``bert-tiny-pair`` tell whether two passages come from the same document
(``pydocs_pair``). They share the model and tokenizer of the ``albert-tiny`` /
``bert-tiny`` pretraining presets, so a pretraining workdir initialises them::

    jaxcompress train albert-tiny --workdir runs/albert-tiny
    jaxcompress train albert-tiny-topic --workdir runs/topic --set text.init_from=runs/albert-tiny

Without ``text.init_from`` they train from scratch (the baseline).

References:
  Lan et al., "ALBERT", ICLR 2020, sec. 4.5 (fine-tuning on downstream tasks).
"""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.configs.albert import tiny_model
from jaxcompress.train.config import Config, DataConfig, OptimConfig

#: preset suffix -> (task, dataset)
DOWNSTREAM: dict[str, tuple[str, str]] = {
    "topic": ("text_classification", "pydocs_topic"),
    "pair": ("sentence_pair", "pydocs_pair"),
}


def finetune_preset(name: str, sharing: str, suffix: str) -> Config:
    """A few hundred steps of AdamW with warm-up and linear decay (BERT's fine-tuning recipe, scaled down).

    The topic classifier reads the masked mean of the last layer at learning
    rate 3e-3: with the [CLS] pooler at 1e-3, 300 steps from a random or a
    briefly pretrained encoder stay near the majority class (0.29-0.40 on
    pydocs_topic against 0.67-0.77 for the mean; see
    ``experiments/large_then_compress/README.md``).
    """
    task, dataset = DOWNSTREAM[suffix]
    config = Config(name=name, task=task, model=tiny_model(sharing),
                    data=DataConfig(name=dataset, batch_size=32, eval_batch_size=128),
                    optim=OptimConfig(name="adamw", learning_rate=1e-3, schedule="linear", warmup_steps=30,
                                      weight_decay=0.01),
                    steps=300, eval_every=100, checkpoint_every=100, log_every=10)
    if suffix == "topic":
        config.text.pooling = "mean"
        config.optim.learning_rate = 3e-3
    return config


def _register(model: str, sharing: str, suffix: str) -> None:
    name = f"{model}-{suffix}"

    def factory() -> Config:
        return finetune_preset(name, sharing, suffix)

    task, dataset = DOWNSTREAM[suffix]
    factory.__doc__ = f"Fine-tune {model} on {dataset} ({task}); text.init_from: its pretraining workdir"
    register_preset(name)(factory)


for _model, _sharing in (("albert-tiny", "all"), ("bert-tiny", "none")):
    for _suffix in DOWNSTREAM:
        _register(_model, _sharing, _suffix)
