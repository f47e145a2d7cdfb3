"""Presets of the ALBERT and BERT encoders: the paper's sizes and tiny CPU ones.

Paper sizes (Lan et al. 2020, Table 1): vocabulary 30,000, 512 positions,
ALBERT's embedding width E = 128, BERT's E = H. The full-size presets carry
the paper's pretraining recipe (LAMB, learning rate 0.00176, batch 4096,
3,125 warm-up steps, 125k steps, linear decay) and point at the embedded
``pydocs_pretrain`` corpus; swap ``data.name`` for a real corpus to
pretrain them for real. ``jaxcompress model-info PRESET`` counts any of
them without allocating it.

Exact encoder parameters (embeddings + layers + pooler, heads excluded)
against the paper's Table 1:

==============  ===========  =====  ===========================================
preset          exact        paper  note
==============  ===========  =====  ===========================================
bert-base       109,081,344  108M   108.49M without the pooler rounds to 108M
bert-large      334,607,360  334M   333.56M without the pooler rounds to 334M
albert-base      11,683,584   12M   rounds (with the pooler)
albert-large     17,683,968   18M   rounds (with the pooler)
albert-xlarge    58,724,864   60M   1.3M (2%) short; heads add only 0.3M
albert-xxlarge  222,595,584  235M   12.4M (5%) short; heads add only 0.6M
==============  ===========  =====  ===========================================

So the paper counts the pooler for ALBERT but not for BERT, and its xlarge
and xxlarge figures exceed any count of the published architecture, with or
without the pretraining heads; the tests check those two against the closed
form only. The ALBERT-base embedding
ablation (E = 64/128/256/768: 87/89/93/108M unshared, 10/12/16/31M shared)
follows the same pattern: unshared rows round without the pooler, shared rows
with it, except shared E = 768 (31.71M here): ALBERT here, as in transformers,
always has the E -> H map (0.59M at E = H = 768), which the paper's
TensorFlow code skips when E == H. Unshared E = 768 is BERT-base, which has
no map.

The tiny presets (``albert-tiny``, ``bert-tiny``) train in minutes on two CPU
cores: H = 64, 4 layers, the 8k SentencePiece vocabulary of the embedded
corpus and 128 positions.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020, Table 1 and sec. 4.1.
"""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.nn.albert import AlbertConfig
from jaxcompress.train.config import Config, DataConfig, OptimConfig

#: The pretraining task (masked LM + sentence-order prediction) and its corpus.
PRETRAIN_TASK = "mlm_sop"
PRETRAIN_DATA = "pydocs_pretrain"
PAPER_VOCAB = 30000

#: name -> (hidden, layers, heads, intermediate, sharing, embedding width)
PAPER_SIZES: dict[str, tuple[int, int, int, int, str, int]] = {
    "bert-base": (768, 12, 12, 3072, "none", 768),
    "bert-large": (1024, 24, 16, 4096, "none", 1024),
    "albert-base": (768, 12, 12, 3072, "all", 128),
    "albert-large": (1024, 24, 16, 4096, "all", 128),
    "albert-xlarge": (2048, 24, 16, 8192, "all", 128),
    "albert-xxlarge": (4096, 12, 64, 16384, "all", 128),
}


def paper_model(name: str) -> AlbertConfig:
    """The model config of one of :data:`PAPER_SIZES`.

    BERT keeps its dropout (0.1 everywhere, exact GELU). ALBERT uses its code's
    tanh GELU and no dropout, which the paper (sec. 4.8) and the v2 release
    found better for the shared models.
    """
    hidden, layers, heads, intermediate, sharing, embedding = PAPER_SIZES[name]
    bert = sharing == "none"
    return AlbertConfig(vocab_size=PAPER_VOCAB, embedding_size=embedding, hidden_size=hidden, num_layers=layers,
                        num_heads=heads, intermediate_size=intermediate, sharing=sharing, max_position=512,
                        hidden_act="gelu" if bert else "gelu_tanh", dropout=0.1 if bert else 0.0,
                        attention_dropout=0.1 if bert else 0.0, classifier_dropout=0.1)


def _paper_preset(name: str) -> Config:
    return Config(name=name, task=PRETRAIN_TASK, model=paper_model(name),
                  data=DataConfig(name=PRETRAIN_DATA, batch_size=4096, eval_batch_size=4096),
                  optim=OptimConfig(name="lamb", learning_rate=0.00176, schedule="linear", warmup_steps=3125,
                                    weight_decay=0.01, grad_clip_norm=1.0),
                  steps=125_000, eval_every=5000, checkpoint_every=5000, log_every=100)


def _register_paper(name: str) -> None:
    def factory() -> Config:
        return _paper_preset(name)

    factory.__doc__ = "{} at the paper's size (H={}, L={}, E={}, sharing={}): {}".format(
        name, *[PAPER_SIZES[name][i] for i in (0, 1, 5, 4)], "LAMB recipe, 125k steps")
    register_preset(name)(factory)


for _name in PAPER_SIZES:
    _register_paper(_name)


def tiny_model(sharing: str) -> AlbertConfig:
    """H = 64, 4 layers, 2 heads, 8k vocabulary, 128 positions; E = 32 when shared (ALBERT)."""
    albert = sharing != "none"
    return AlbertConfig(vocab_size=8000, embedding_size=32 if albert else 64, hidden_size=64, num_layers=4,
                        num_heads=2, intermediate_size=256, sharing=sharing, max_position=128,
                        hidden_act="gelu_tanh" if albert else "gelu", dropout=0.0 if albert else 0.1,
                        attention_dropout=0.0, classifier_dropout=0.1)


def _tiny_preset(name: str, sharing: str) -> Config:
    return Config(name=name, task=PRETRAIN_TASK, model=tiny_model(sharing),
                  data=DataConfig(name=PRETRAIN_DATA, batch_size=32, eval_batch_size=64),
                  optim=OptimConfig(name="adamw", learning_rate=2e-3, schedule="linear", warmup_steps=30,
                                    weight_decay=0.01),
                  steps=300, eval_every=100, checkpoint_every=100, log_every=10)


@register_preset("albert-tiny")
def _albert_tiny() -> Config:
    """Tiny ALBERT (H=64, L=4 shared, E=32): MLM+SOP on the embedded corpus, minutes on CPU."""
    return _tiny_preset("albert-tiny", "all")


@register_preset("bert-tiny")
def _bert_tiny() -> Config:
    """Tiny BERT (H=64, L=4 unshared, E=H): MLM+SOP on the embedded corpus, minutes on CPU."""
    return _tiny_preset("bert-tiny", "none")
