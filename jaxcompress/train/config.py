"""The run schema: what one ``jaxcompress train`` run needs (data, optimiser, mesh, text, pruning, QAT).

Model configs live beside their models (``nn/``), pruning and quantization
options beside their methods (``compress/``), and named presets in
``jaxcompress.configs``. :func:`config_from_dict` turns a work directory's
``config.json`` back into a typed :class:`Config` without any preset.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any

from jaxcompress.compress.pruning import Pruner
from jaxcompress.compress.quantize import QuantConfig
from jaxcompress.configlib import did_you_mean, option, validate
from jaxcompress.errors import ConfigError
from jaxcompress.nn.mlp import MLPConfig

# Logical axis names used by models, and the mesh axes they shard over. A
# logical name missing from the rules is replicated. Order matters only when a
# name appears twice (the first wins), as in Flax.
DEFAULT_LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("length", None),
    ("classes", None),
    ("conv_in", None),
    ("conv_out", "tensor"),
)


@dataclasses.dataclass
class MeshConfig:
    """Device mesh: ``data`` x ``fsdp`` x ``tensor`` must equal the device count."""

    data: int = option(-1, help="data-parallel axis size; -1 takes the devices the other axes leave", min=-1)
    fsdp: int = option(1, help="fully-sharded data-parallel axis size (params sharded, batch split)", min=1)
    tensor: int = option(1, help="tensor-parallel axis size (heads / MLP columns split)", min=1)

    def validate(self, prefix: str) -> None:
        if self.data == 0:
            raise ConfigError(f"config key '{prefix}data' must be -1 (auto) or >= 1, got 0")


@dataclasses.dataclass
class DataConfig:
    """Which dataset and split, and how batches are drawn from it."""

    name: str = option("digits", help="embedded dataset name or any prepared TFDS dataset name")
    train_split: str = option("train", help="split to train on")
    eval_split: str = option("validation", help="split to evaluate on ('' disables evaluation)")
    batch_size: int = option(64, help="global batch size (over all hosts and devices)", min=1)
    eval_batch_size: int = option(256, help="global evaluation batch size", min=1)
    seed: int = option(0, help="seed of the data order (independent of the model seed)", min=0)
    data_dir: str = option("", help="TFDS data directory; '' uses $JAXCOMPRESS_DATA_DIR or the user cache")
    train_rows: str = option("", help="JSON file of row indices of train_split to train on (a labelled subset, "
                             "as in active learning); '' trains on every row")
    device_prefetch: int = option(8, help="train batches put on the devices in one transfer, ahead of the "
                                  "steps that use them (one step per call still; capped at 64 MiB of this "
                                  "process's rows); with steps_per_call > 1 each call's batches are the transfer",
                                  min=1)


@dataclasses.dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule, built with optax."""

    name: str = option("adamw", help="optimiser", choices=("adamw", "adam", "sgd", "lamb"))
    learning_rate: float = option(1e-3, help="peak learning rate", min=0.0, min_exclusive=True)
    schedule: str = option("cosine", help="decay after warm-up", choices=("constant", "cosine", "linear"))
    warmup_steps: int = option(0, help="linear warm-up steps", min=0)
    weight_decay: float = option(0.0, help="decoupled weight decay (adamw, lamb)", min=0.0)
    momentum: float = option(0.9, help="momentum (sgd) or beta1 (adam family)", min=0.0, max=1.0)
    grad_clip_norm: float = option(1.0, help="clip by global norm; 0 disables", min=0.0)


@dataclasses.dataclass
class TextConfig:
    """Text tasks (``mlm_sop``, ``text_classification``, ``sentence_pair``): tokens, objectives, fields.

    The tokenizer is SentencePiece, trained on the ``pydocs`` train split with
    ``model.vocab_size`` pieces (at most) and cached under the data directory,
    unless ``tokenizer_file`` names a model.
    """

    max_seq_length: int = option(128, help="tokens per example, [CLS] and [SEP] included (<= model.max_position)",
                                 min=5)
    lowercase: bool = option(True, help="case-fold text before tokenizing (ALBERT's models are uncased)")
    tokenizer_file: str = option("", help="SentencePiece .model to use ('' trains one on pydocs, cached)")
    objective: str = option("sop", help="sentence-level pretraining objective (label 1: swapped / random)",
                            choices=("sop", "nsp", "none"))
    masked_lm_prob: float = option(0.15, help="fraction of tokens predicted by the masked LM", min=0.0, max=1.0,
                                   min_exclusive=True)
    max_predictions: int = option(20, help="masked-LM predictions per sequence at most", min=1)
    max_ngram: int = option(3, help="longest masked n-gram of whole words (p(n) ~ 1/n)", min=1)
    single_segment: str = option("split", help="a one-sentence block: cut inside it, or take B from another "
                                 "document (ALBERT's code)", choices=("split", "random_doc"))
    text_field: str = option("", help="feature with the (first) text; '' = text, or first for sentence_pair")
    pair_field: str = option("", help="feature with the second text of sentence_pair; '' = second")
    label_field: str = option("label", help="feature with the class label (a TFDS ClassLabel)")
    init_from: str = option("", help="workdir of an earlier run whose encoder parameters initialise this one")
    pooling: str = option("cls", help="what text_classification/sentence_pair classify: 'cls' (the pooler, "
                          "tanh(W h_[CLS])) or 'mean' (the mean of the last layer over the real tokens)",
                          choices=("cls", "mean"))
    vocab_keep: tuple[int, ...] = option((), help="tokenizer ids a vocabulary-pruned model keeps, in order "
                                         "(set by structured pruning): id vocab_keep[i] becomes i, others [UNK]")
    tokenizer_vocab_size: int = option(0, help="pieces of the tokenizer; 0 = model.vocab_size (a vocabulary-"
                                               "pruned model keeps its original tokenizer)", min=0)


@dataclasses.dataclass
class Config:
    """Everything one ``jaxcompress train`` run needs."""

    name: str = option("custom", help="preset name, recorded in the summary")
    task: str = option("classify", help="training task (a name registered with jaxcompress.train.register_task)")
    model: Any = option(default_factory=MLPConfig, help="model config (its type depends on the task)")
    data: DataConfig = option(default_factory=DataConfig)
    text: TextConfig = option(default_factory=TextConfig)
    optim: OptimConfig = option(default_factory=OptimConfig)
    mesh: MeshConfig = option(default_factory=MeshConfig)
    prune: Pruner = option(default_factory=Pruner)
    quant: QuantConfig = option(default_factory=QuantConfig)
    steps: int = option(500, help="total training steps", min=1)
    eval_every: int = option(100, help="evaluate every N steps (0: only at the end)", min=0)
    checkpoint_every: int = option(100, help="save a checkpoint every N steps (0: only at the end)", min=0)
    keep_checkpoints: int = option(3, help="how many recent checkpoints to keep", min=1)
    log_every: int = option(10, help="write metrics every N steps", min=1)
    steps_per_call: int = option(1, help="train steps per host call (a scan over that many batches); >1 cuts "
                                 "the per-step dispatch cost of small, fast steps; calls stop at logs, evaluations and checkpoints, and "
                                 "each distinct call length compiles once, so a divisor of log_every is best", min=1)
    seed: int = option(0, help="model initialisation and dropout seed", min=0)
    logical_rules: tuple[tuple[str, Any], ...] = option(
        DEFAULT_LOGICAL_RULES, help="logical axis name -> mesh axes (set in Python configs)")

    def validate(self, prefix: str) -> None:
        from jaxcompress.train.task import registered_tasks

        tasks = registered_tasks()
        if self.task not in tasks:
            raise ConfigError(f"config key '{prefix}task' must be one of {', '.join(tasks) or '(none registered)'}; "
                              f"got {self.task!r}" + did_you_mean(self.task, tasks)
                              + ("" if tasks else " (import jaxcompress.tasks to register the built-in tasks)"))


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuilds a :class:`Config` from ``config.json`` (written by ``configlib.to_dict``).

    The model config's class comes from the recorded ``model_class``, so no
    preset is needed to read a work directory back.
    """
    config = Config()
    if "model_class" in values:
        module, _, qualname = values["model_class"].partition(":")
        config.model = getattr(importlib.import_module(module), qualname)()

    def assign(node: Any, tree: dict[str, Any]) -> None:
        hints = typing.get_type_hints(type(node))
        for field in dataclasses.fields(node):
            if field.name not in tree:
                continue
            value, current = tree[field.name], getattr(node, field.name)
            if dataclasses.is_dataclass(current) and isinstance(value, dict):
                assign(current, value)
            elif typing.get_origin(hints[field.name]) is tuple:
                setattr(node, field.name, _as_tuple(value))
            else:
                setattr(node, field.name, value)

    assign(config, values)
    validate(config)
    return config


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value
