"""Typed configs, named presets and ``--set key=value`` overrides.

A config is a tree of dataclasses. Each field declares its type and, through
:func:`option`, what values are allowed (``choices``, ``min``/``max``).
Overrides from the command line are parsed against the declared type, and the
whole tree is validated before any work starts, so a typo or an out-of-range
value fails with one message naming the key and what is allowed.

Example::

    cfg = get_preset("digits-mlp")
    cfg = apply_overrides(cfg, ["optim.learning_rate=3e-3", "mesh.data=2"])
    validate(cfg)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import pathlib
import types
import typing
from typing import Any, Callable, Literal

from jaxcompress.errors import ConfigError

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


def option(default: Any = dataclasses.MISSING, *, help: str = "",
           choices: tuple[Any, ...] | None = None,
           min: float | None = None, max: float | None = None,
           min_exclusive: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with the metadata :func:`validate` checks.

    Args:
      default: the default value.
      help: one line shown by ``jaxcompress train --help-config``.
      choices: the allowed values, if the field is an enumeration.
      min, max: inclusive bounds for numbers (``min_exclusive`` makes the
        lower bound strict, e.g. a learning rate must be > 0).
    """
    metadata = {"help": help, "choices": choices, "min": min, "max": max,
                "min_exclusive": min_exclusive}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


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
class MLPConfig:
    """A multi-layer perceptron classifier (the tiny model of the core runtime)."""

    hidden_sizes: tuple[int, ...] = option((128, 128), help="widths of the hidden layers")
    dropout: float = option(0.1, help="dropout rate after each hidden layer", min=0.0, max=0.95)

    def validate(self, prefix: str) -> None:
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(
                f"config key '{prefix}hidden_sizes' must be a non-empty list of positive widths, "
                f"got {self.hidden_sizes!r}")


@dataclasses.dataclass
class CNNConfig:
    """A small convolutional classifier (conv/ReLU/pool blocks, a hidden layer, logits)."""

    channels: tuple[int, ...] = option((16, 32), help="output channels of each conv layer")
    kernel_size: int = option(3, help="square kernel size of every conv", min=1)
    hidden_size: int = option(64, help="width of the ReLU layer after flattening (0: none)", min=0)
    dropout: float = option(0.0, help="dropout rate before the logits", min=0.0, max=0.95)

    def validate(self, prefix: str) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(
                f"config key '{prefix}channels' must be a non-empty list of positive widths, "
                f"got {self.channels!r}")


@dataclasses.dataclass
class QuantConfig:
    """Quantization-aware training: the forward pass sees quantised weights (straight-through gradients)."""

    qat: str = option("none", help="qwix (QtProvider), fake_quant (our reference), binary (XNOR), ternary (TWN)",
                      choices=("none", "qwix", "fake_quant", "binary", "ternary"))
    weight_bits: int = option(8, help="weight bits for qwix / fake_quant", min=2, max=8)
    act_bits: int = option(0, help="activation bits, qwix only (0: float activations)", min=0, max=8)
    per_channel: bool = option(True, help="one scale per output channel (else per tensor)")
    symmetric: bool = option(True, help="symmetric grid (else affine with a zero point), fake_quant")
    rounding: str = option("nearest", help="fake_quant rounding in training", choices=("nearest", "stochastic"))
    include: str = option(".*", help="regex: parameter paths (fake_quant/binary/ternary) or module paths (qwix)")
    exclude: str = option("", help="regex over parameter paths never to quantise (not qwix)")

    def validate(self, prefix: str) -> None:
        if self.act_bits and self.qat != "qwix":
            raise ConfigError(f"config key '{prefix}act_bits' needs '{prefix}qat=qwix' (activation "
                              f"quantization goes through qwix); got qat={self.qat!r}")
        if self.qat == "qwix" and self.weight_bits not in (2, 3, 4, 8):
            raise ConfigError(f"config key '{prefix}weight_bits' must be 2, 3, 4 or 8 with qwix; "
                              f"got {self.weight_bits}")
        if self.qat == "qwix" and self.exclude:
            raise ConfigError(f"config key '{prefix}exclude' is not supported with qwix; narrow "
                              f"'{prefix}include' instead")


@dataclasses.dataclass
class PruneConfig:
    """Pruning during training (through the optimiser); ``method=none`` trains dense."""

    method: str = option("none", help="score", choices=("none", "magnitude", "random", "saliency",
                                                        "movement", "soft_movement"))
    sparsity: float = option(0.5, help="final fraction of zeros in the selected leaves", min=0.0, max=0.999)
    scope: str = option("layerwise", help="one target per leaf or one global threshold",
                        choices=("layerwise", "global"))
    schedule: str = option("gradual", help="when masks change", choices=("one_shot", "iterative", "gradual"))
    start_step: int = option(0, help="first mask update", min=0)
    end_step: int = option(-1, help="last mask update (-1: 3/4 of training)", min=-1)
    frequency: int = option(100, help="gradual: steps between mask updates", min=1)
    rounds: int = option(3, help="iterative: pruning rounds", min=1)
    n: int = option(0, help="N of N:M sparsity (with m > 0)", min=0)
    m: int = option(0, help="M of N:M sparsity; 0 disables", min=0)
    include: str = option(".*", help="regex over parameter paths to prune")
    exclude: str = option("", help="regex over parameter paths never to prune")
    threshold: float = option(0.0, help="soft_movement: keep scores >= threshold")
    soft_l1: float = option(0.0, help="soft_movement: L1 pull on sigmoid(scores)", min=0.0)

    def validate(self, prefix: str) -> None:
        if self.m and not 0 < self.n < self.m:
            raise ConfigError(f"config keys '{prefix}n' and '{prefix}m' need 0 < n < m, got {self.n}:{self.m}")


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
    prune: PruneConfig = option(default_factory=PruneConfig)
    quant: QuantConfig = option(default_factory=QuantConfig)
    steps: int = option(500, help="total training steps", min=1)
    eval_every: int = option(100, help="evaluate every N steps (0: only at the end)", min=0)
    checkpoint_every: int = option(100, help="save a checkpoint every N steps (0: only at the end)", min=0)
    keep_checkpoints: int = option(3, help="how many recent checkpoints to keep", min=1)
    log_every: int = option(10, help="write metrics every N steps", min=1)
    seed: int = option(0, help="model initialisation and dropout seed", min=0)
    logical_rules: tuple[tuple[str, Any], ...] = option(
        DEFAULT_LOGICAL_RULES, help="logical axis name -> mesh axes (set in Python configs)")

    def validate(self, prefix: str) -> None:
        from jaxcompress.train.task import registered_tasks

        tasks = registered_tasks()
        if self.task not in tasks:
            raise ConfigError(f"config key '{prefix}task' must be one of {', '.join(tasks)}; got {self.task!r}"
                              + _did_you_mean(self.task, tasks))


# ----------------------------------------------------------------------------
# Presets

PRESETS: dict[str, Callable[[], Config]] = {}


def register_preset(name: str) -> Callable[[Callable[[], Config]], Callable[[], Config]]:
    """Decorator adding a zero-argument config factory under ``name``."""

    def wrap(factory: Callable[[], Config]) -> Callable[[], Config]:
        if name in PRESETS:
            raise ValueError(f"preset {name!r} registered twice")
        PRESETS[name] = factory
        return factory

    return wrap


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


def load_preset_modules() -> None:
    """Imports the modules that register presets next to their models and tasks."""
    import jaxcompress.tasks  # noqa: F401  (task modules and the presets they import register on import)


def get_preset(name: str) -> Config:
    """Returns a fresh copy of the named preset."""
    load_preset_modules()
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed presets: {', '.join(sorted(PRESETS))}"
                          + _did_you_mean(name, PRESETS))
    return PRESETS[name]()


def load_config(spec: str, expected: type = Config) -> Any:
    """A preset name, or a Python file defining ``get_config()`` returning ``expected``."""
    path = pathlib.Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"config file {spec!r} does not exist")
        module_spec = importlib.util.spec_from_file_location("jaxcompress_user_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        if not hasattr(module, "get_config"):
            raise ConfigError(f"config file {spec!r} must define get_config() returning a {expected.__name__}")
        config = module.get_config()
        if not isinstance(config, expected):
            raise ConfigError(f"get_config() in {spec!r} returned {type(config).__name__}, "
                              f"expected {expected.__name__}")
        return config
    if expected is not Config:
        raise ConfigError(f"config {spec!r} must be a .py file defining get_config() -> {expected.__name__}")
    return get_preset(spec)


# ----------------------------------------------------------------------------
# Overrides


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Returns a copy of ``config`` with each ``key=value`` applied, types checked."""
    config = _deep_copy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.learning_rate=3e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        parent, leaf = _resolve_parent(config, key)
        field = _fields(parent)[leaf]
        hint = _type_hints(type(parent))[leaf]
        setattr(parent, leaf, _parse_value(key, raw.strip(), hint, field))
    return config


def _deep_copy(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        changes = {f.name: _deep_copy(getattr(config, f.name)) for f in dataclasses.fields(config)}
        return dataclasses.replace(config, **changes)
    return config


def _fields(obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _did_you_mean(name: str, allowed: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve_parent(config: Config, key: str) -> tuple[Any, str]:
    parts = key.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        fields = _fields(node)
        here = ".".join(parts[:depth])
        if part not in fields:
            where = f"under '{here}'" if here else "at the top level"
            raise ConfigError(f"unknown config key {key!r}; allowed keys {where}: "
                              f"{', '.join(fields)}" + _did_you_mean(part, fields))
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(node, part)):
                raise ConfigError(f"config key {key!r} is a group; set one of its keys, e.g. "
                                  f"{key}.{dataclasses.fields(getattr(node, part))[0].name}=...")
            return node, part
        child = getattr(node, part)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"config key {'.'.join(parts[:depth + 1])!r} is a value, not a group; "
                              f"cannot set {key!r}")
        node = child
    raise AssertionError("unreachable")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_value(key: str, raw: str, hint: Any, field: dataclasses.Field) -> Any:
    """Parses ``raw`` as the declared type ``hint``; errors name the key."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"config key {key!r} expects a boolean (true/false), got {raw!r}")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects an integer, got {raw!r}") from None
    if hint is float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} expects a finite number, got {raw!r}")
        return value
    if hint is str:
        return raw
    if origin is Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(str, allowed))}; got {raw!r}")
        return raw
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str):
            text = raw.strip().strip("[]()")
            items = [t.strip() for t in text.split(",") if t.strip()]
            return tuple(_parse_value(key, t, args[0], field) for t in items)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                if raw.lower() in ("none", "null"):
                    return None
                continue
            try:
                return _parse_value(key, raw, arg, field)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config key {key!r} cannot be parsed from {raw!r}")
    raise ConfigError(f"config key {key!r} cannot be set from the command line; set it in a Python config")


# ----------------------------------------------------------------------------
# Validation


def validate(config: Any, prefix: str = "") -> None:
    """Checks every field against its declared type, choices and bounds.

    Raises:
      ConfigError: naming the first offending key and what is allowed.
    """
    hints = _type_hints(type(config))
    for field in dataclasses.fields(config):
        key = prefix + field.name
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            validate(value, prefix=key + ".")
            continue
        _check_type(key, value, hints[field.name])
        meta = field.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(str, meta['choices']))}; "
                              f"got {value!r}" + _did_you_mean(str(value), map(str, meta["choices"])))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = meta.get("min"), meta.get("max")
            if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):
                op = ">" if meta.get("min_exclusive") else ">="
                raise ConfigError(f"config key {key!r} must be {op} {low}, got {value!r}")
            if high is not None and value > high:
                raise ConfigError(f"config key {key!r} must be <= {high}, got {value!r}")
    own_check = getattr(config, "validate", None)
    if callable(own_check):
        own_check(prefix)


def _check_type(key: str, value: Any, hint: Any) -> None:
    if hint is Any:
        return
    expected = {int: int, float: (int, float), str: str, bool: bool}.get(hint)
    if expected is not None:
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"config key {key!r} expects {hint.__name__}, got a boolean {value!r}")
        if not isinstance(value, expected):
            raise ConfigError(f"config key {key!r} expects {hint.__name__}, got {type(value).__name__} {value!r}")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly nested dict of the config (recorded in the workdir).

    The model config's class is recorded as ``model_class`` so the dict can be
    turned back into the same typed config (see ``compress.pipeline.config_from_dict``).
    """
    values = dataclasses.asdict(config)
    model = getattr(config, "model", None)
    if dataclasses.is_dataclass(model):
        values["model_class"] = f"{type(model).__module__}:{type(model).__qualname__}"
    return values


def describe(config: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Flat ``(key, value, help)`` rows, for ``--help-config``."""
    rows = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            rows.extend(describe(value, prefix + field.name + "."))
        else:
            help_text = field.metadata.get("help", "")
            if field.metadata.get("choices"):
                help_text += f" [{'|'.join(map(str, field.metadata['choices']))}]"
            rows.append((prefix + field.name, value, help_text))
    return rows
