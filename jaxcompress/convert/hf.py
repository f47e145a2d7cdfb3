"""BERT and ALBERT weights in the HuggingFace checkpoint layout, in and out.

Reads what ``transformers`` writes with ``save_pretrained``: a directory with
``config.json`` and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``, ``flax_model.msgpack``, or
``pytorch_model.bin`` when PyTorch is installed). Both parameter layouts are
understood:

* PyTorch names (``embeddings.word_embeddings.weight``,
  ``encoder.layer.0.attention.self.query.weight``,
  ``encoder.albert_layer_groups.0.albert_layers.0.ffn.weight``): linear
  weights are ``[out, in]`` and LayerNorm gains are ``weight`` (``gamma`` in
  old TensorFlow-converted files);
* Flax names (``...query.kernel``, ``LayerNorm.scale``,
  ``word_embeddings.embedding``): kernels are ``[in, out]``.

The result is the parameter tree of
:class:`~jaxcompress.nn.albert.AlbertForPreTraining`: ``{"encoder": ...}``
(the tree :class:`~jaxcompress.nn.albert.AlbertEncoder` takes) plus
``"mlm_head"`` and ``"sentence_head"`` when the checkpoint has them (the
``*ForPreTraining`` classes). Export writes the PyTorch layout, which every
``transformers`` class (PyTorch, and Flax with ``from_pt=True``) loads.

Nothing here downloads: a hub checkpoint must already be on disk.

Example::

    config, params = load_hf_checkpoint("albert-base-v2/")      # a local directory
    seq, pooled = AlbertEncoder(config).apply({"params": params["encoder"]}, ids)
    save_hf_checkpoint(params, config, "out/")                  # config.json + model.safetensors

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020; Devlin et al., "BERT: Pre-training of Deep
  Bidirectional Transformers for Language Understanding", NAACL 2019.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import warnings
from typing import Any, Iterator, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.errors import CheckpointError
from jaxcompress.nn.albert import AlbertConfig, AlbertForPreTraining

# Activation names: ours -> transformers' ACT2FN key, and back.
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
                "silu": "silu", "swish": "silu"}

# Keys a checkpoint may hold that carry no parameter of ours: position-id
# buffers, and the output decoder, which is tied to the word table.
_IGNORED_SUFFIXES = ("position_ids", "predictions.decoder.weight", "predictions.decoder.bias",
                     "predictions.decoder.kernel")

# One transformer block: (our sublayer path, ALBERT name, BERT name, kind, input dims of the kernel).
_BLOCK = (
    (("attention", "query"), "attention.query", "attention.self.query", "dense", 1),
    (("attention", "key"), "attention.key", "attention.self.key", "dense", 1),
    (("attention", "value"), "attention.value", "attention.self.value", "dense", 1),
    (("attention", "output"), "attention.dense", "attention.output.dense", "dense", 2),
    (("attention", "norm"), "attention.LayerNorm", "attention.output.LayerNorm", "norm", 0),
    (("ffn", "intermediate"), "ffn", "intermediate.dense", "dense", 1),
    (("ffn", "output"), "ffn_output", "output.dense", "dense", 1),
    (("ffn", "norm"), "full_layer_layer_norm", "output.LayerNorm", "norm", 0),
)


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One checkpoint tensor <-> one slice of one leaf of our tree."""

    hf_key: str          # without the layout suffix, e.g. "encoder.layer.0.attention.self.query"
    suffix: str          # "kernel", "bias", "scale" or "embedding" (our leaf name)
    path: tuple[str, ...]  # our leaf path
    index: tuple[int, ...]  # slice of the stacked leaf (layers / groups axis)
    in_dims: int = 1     # kernels: how many leading dims of our kernel are inputs


# ----------------------------------------------------------------------------
# Configs


def config_from_hf(hf: Mapping[str, Any]) -> AlbertConfig:
    """Our model config from a transformers ``config.json`` (model_type albert or bert).

    Raises:
      CheckpointError: for another model type, relative position embeddings
        or an activation we do not implement.
    """
    model_type = hf.get("model_type")
    if model_type not in ("albert", "bert"):
        raise CheckpointError(f"config.json has model_type {model_type!r}; only 'albert' and 'bert' checkpoints "
                              "can be imported")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"config.json has position_embedding_type {hf['position_embedding_type']!r}; "
                              "only 'absolute' position embeddings are implemented")
    act = hf.get("hidden_act", "gelu_new" if model_type == "albert" else "gelu")
    if act not in _ACT_FROM_HF:
        raise CheckpointError(f"config.json has hidden_act {act!r}; supported: {', '.join(_ACT_FROM_HF)}")
    hidden = int(hf["hidden_size"])
    common = dict(vocab_size=int(hf["vocab_size"]), hidden_size=hidden, num_layers=int(hf["num_hidden_layers"]),
                  num_heads=int(hf["num_attention_heads"]), intermediate_size=int(hf["intermediate_size"]),
                  max_position=int(hf.get("max_position_embeddings", 512)),
                  type_vocab_size=int(hf.get("type_vocab_size", 2)), hidden_act=_ACT_FROM_HF[act],
                  dropout=float(hf.get("hidden_dropout_prob", 0.1)),
                  attention_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)),
                  layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
                  initializer_range=float(hf.get("initializer_range", 0.02)))
    if model_type == "bert":
        dropout = hf.get("classifier_dropout")
        return AlbertConfig(embedding_size=hidden, sharing="none",
                            classifier_dropout=float(common["dropout"] if dropout is None else dropout), **common)
    return AlbertConfig(embedding_size=int(hf.get("embedding_size", 128)), sharing="all",
                        num_hidden_groups=int(hf.get("num_hidden_groups", 1)),
                        inner_group_num=int(hf.get("inner_group_num", 1)),
                        classifier_dropout=float(hf.get("classifier_dropout_prob", 0.1)), **common)


def hf_model_type(config: AlbertConfig) -> str:
    """``"bert"`` or ``"albert"``: which transformers layout holds this config.

    Raises:
      CheckpointError: for attention-only or FFN-only sharing, which no
        transformers class implements.
    """
    if config.head_dim and config.head_dim * config.num_heads != config.hidden_size:
        raise CheckpointError(f"model.head_dim={config.head_dim} x model.num_heads={config.num_heads} != "
                              f"model.hidden_size={config.hidden_size} (pruned heads): transformers' BERT/ALBERT "
                              f"need hidden_size = heads x head width")
    if config.sharing in ("attention", "ffn"):
        raise CheckpointError(f"model.sharing={config.sharing!r} has no transformers equivalent; only 'none' "
                              "(BERT, or ALBERT without sharing) and 'all' (ALBERT) can be exported")
    if config.is_bert:
        return "bert"
    return "albert"


def config_to_hf(config: AlbertConfig, architectures: tuple[str, ...] = ()) -> dict[str, Any]:
    """A transformers ``config.json`` dict for ``config`` (see :func:`hf_model_type`)."""
    model_type = hf_model_type(config)
    hf: dict[str, Any] = {
        "model_type": model_type, "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size, "hidden_act": _ACT_TO_HF[config.hidden_act],
        "hidden_dropout_prob": config.dropout, "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_position, "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
        "position_embedding_type": "absolute", "pad_token_id": 0,
    }
    if model_type == "albert":
        # An unshared stack is ALBERT with one group per layer.
        groups = config.num_layers if config.sharing == "none" else config.num_hidden_groups
        hf.update(embedding_size=config.embedding_size, num_hidden_groups=groups,
                  inner_group_num=config.inner_group_num, classifier_dropout_prob=config.classifier_dropout)
    else:
        hf.update(classifier_dropout=config.classifier_dropout)
    if architectures:
        hf["architectures"] = list(architectures)
    return hf


# ----------------------------------------------------------------------------
# The name map


def _block_entries(config: AlbertConfig, model_type: str) -> Iterator[_Entry]:
    """Entries of every transformer block, for the layout ``model_type``."""
    k_blocks = config.inner_group_num
    groups = 1 if config.sharing == "none" else config.num_hidden_groups
    root = ("encoder", "transformer") + (("groups", "layers") if groups > 1 else ("layers",))
    if config.sharing == "none":
        copies = [(layer, (layer,)) for layer in range(config.num_layers)]
    else:
        copies = [(group, (group,) if groups > 1 else ()) for group in range(groups)]
    for copy, index in copies:
        for k in range(k_blocks):
            base = root + ((f"block_{k}",) if k_blocks > 1 else ())
            for sub, albert_name, bert_name, kind, in_dims in _BLOCK:
                if model_type == "bert":
                    key = f"encoder.layer.{copy}.{bert_name}"
                else:
                    key = f"encoder.albert_layer_groups.{copy}.albert_layers.{k}.{albert_name}"
                leaves = ("kernel", "bias") if kind == "dense" else ("scale", "bias")
                for leaf in leaves:
                    yield _Entry(key, leaf, base + sub + (leaf,), index, in_dims)


def _entries(config: AlbertConfig, model_type: str, mlm: bool, sentence: bool) -> list[_Entry]:
    """Every checkpoint tensor of the encoder and of the requested pretraining heads."""
    emb = ("encoder", "embeddings")
    out = [_Entry("embeddings.word_embeddings", "embedding", emb + ("word", "embedding"), ()),
           _Entry("embeddings.position_embeddings", "embedding", emb + ("position", "embedding"), ()),
           _Entry("embeddings.token_type_embeddings", "embedding", emb + ("token_type", "embedding"), ()),
           _Entry("embeddings.LayerNorm", "scale", emb + ("norm", "scale"), ()),
           _Entry("embeddings.LayerNorm", "bias", emb + ("norm", "bias"), ())]
    if config.embedding_projection:  # ALBERT applies it whatever E is
        out += [_Entry("encoder.embedding_hidden_mapping_in", leaf, emb + ("projection", leaf), ())
                for leaf in ("kernel", "bias")]
    out += list(_block_entries(config, model_type))
    pooler = "pooler" if model_type == "albert" else "pooler.dense"
    out += [_Entry(pooler, leaf, ("encoder", "pooler", leaf), ()) for leaf in ("kernel", "bias")]
    if mlm:
        transform = "predictions" if model_type == "albert" else "cls.predictions.transform"
        bias = "predictions" if model_type == "albert" else "cls.predictions"
        out += [_Entry(f"{transform}.dense", leaf, ("mlm_head", "transform", leaf), ())
                for leaf in ("kernel", "bias")]
        out += [_Entry(f"{transform}.LayerNorm", leaf, ("mlm_head", "norm", leaf), ()) for leaf in ("scale", "bias")]
        out += [_Entry(f"{bias}.bias", "", ("mlm_head", "bias"), ())]
    if sentence:
        head = "sop_classifier.classifier" if model_type == "albert" else "cls.seq_relationship"
        out += [_Entry(head, leaf, ("sentence_head", "logits", leaf), ()) for leaf in ("kernel", "bias")]
    return out


def _names(entry: _Entry, layout: str) -> tuple[str, ...]:
    """Candidate checkpoint names of an entry, preferred first."""
    if not entry.suffix:
        return (entry.hf_key,)
    if layout == "flax":
        return (f"{entry.hf_key}.{entry.suffix}",)
    if entry.suffix == "scale":
        return (f"{entry.hf_key}.weight", f"{entry.hf_key}.gamma")
    if entry.suffix == "bias" and entry.hf_key.endswith("LayerNorm"):
        return (f"{entry.hf_key}.bias", f"{entry.hf_key}.beta")
    if entry.suffix in ("kernel", "embedding"):
        return (f"{entry.hf_key}.weight",)
    return (f"{entry.hf_key}.{entry.suffix}",)


def _to_ours(value: np.ndarray, entry: _Entry, shape: tuple[int, ...], layout: str) -> np.ndarray:
    """A checkpoint tensor as our (unstacked) leaf of ``shape``."""
    if entry.suffix == "kernel" and layout == "pytorch":
        value = value.T  # torch.nn.Linear stores [out, in]
    return value.reshape(shape)


def _from_ours(value: np.ndarray, entry: _Entry, layout: str) -> np.ndarray:
    """Our leaf slice as the checkpoint tensor (inverse of :func:`_to_ours`)."""
    if entry.suffix == "kernel":
        fan_in = math.prod(value.shape[:entry.in_dims])
        value = value.reshape(fan_in, -1)
        return np.ascontiguousarray(value.T) if layout == "pytorch" else value
    if entry.suffix == "embedding":
        return value
    return value.reshape(-1)


# ----------------------------------------------------------------------------
# Import


def detect_layout(state: Mapping[str, Any]) -> str:
    """``"flax"`` if the names end like Flax parameters, else ``"pytorch"``."""
    flax_suffixes = (".kernel", ".scale", ".embedding")
    return "flax" if any(key.endswith(flax_suffixes) for key in state) else "pytorch"


def _strip_prefix(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drops the base-model prefix (``albert.`` / ``bert.``) of ``*ForPreTraining`` checkpoints."""
    return {_base_name(key) or key: value for key, value in state.items()}


def _base_name(key: str) -> str | None:
    """``key`` without its base-model prefix, or None when the key has no such prefix."""
    for prefix in ("albert.", "bert."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


# Names of the base model (the encoder: embeddings, layers, pooler) without a prefix.
_ENCODER_PREFIXES = ("embeddings.", "encoder.", "pooler.")


def _is_encoder_tensor(original_key: str) -> bool:
    """Whether a checkpoint name belongs to the base model rather than to a task head.

    Names under the ``albert.`` / ``bert.`` prefix are the base model's; without
    a prefix, the encoder's names start with ``embeddings.``, ``encoder.`` or
    ``pooler.``. Everything else (``predictions.``, ``cls.``, ``sop_classifier.``,
    ``classifier.``, ``qa_outputs.``, ...) is a head.
    """
    return _base_name(original_key) is not None or original_key.startswith(_ENCODER_PREFIXES)


def _allowed_summary(entries: list[_Entry]) -> str:
    """The encoder tensors a config takes, compactly: layer indices as ranges, one name per module."""
    patterns: dict[str, list[set[int]]] = {}
    for entry in entries:
        if entry.path[0] != "encoder":
            continue
        numbers = [int(n) for n in re.findall(r"(?<=\.)\d+(?=\.)", entry.hf_key)]
        pattern = re.sub(r"(?<=\.)\d+(?=\.)", "{}", entry.hf_key)
        slots = patterns.setdefault(pattern, [set() for _ in numbers])
        for slot, number in zip(slots, numbers):
            slot.add(number)

    def span(values: set[int]) -> str:
        lo, hi = min(values), max(values)
        if len(values) == 1:
            return str(lo)
        if values == set(range(lo, hi + 1)):
            return f"[{lo}-{hi}]"
        return "[" + ",".join(map(str, sorted(values))) + "]"

    return ", ".join(pattern.format(*(span(slot) for slot in slots)) for pattern, slots in patterns.items())


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def abstract_params(config: AlbertConfig) -> dict[str, Any]:
    """Shapes of :class:`AlbertForPreTraining`'s parameters (nothing allocated)."""
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda key: AlbertForPreTraining(config).init(key, ids), jax.random.key(0))
    return nn.unbox(shapes["params"])


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def import_hf_state(state: Mapping[str, np.ndarray], config: AlbertConfig, *, strict: bool = True,
                    heads: bool = True, source: str = "checkpoint") -> dict[str, Any]:
    """Converts a transformers state dict (either layout) into our parameter tree.

    No weight is dropped silently. A tensor of the base model (embeddings,
    layers, pooler) that maps to no parameter of ``config`` is an error (or,
    with ``strict=False``, a warning); a head we do not load (a fine-tuned
    classifier, or the pretraining heads with ``heads=False``) is skipped with
    a warning listing it. Position-id buffers and the MLM decoder (tied to the
    word table) are not weights and are passed over.

    Args:
      state: checkpoint name -> array (NumPy, or anything ``np.asarray`` takes).
      config: the model the weights are for; every tensor's shape is checked
        against it.
      strict: fail on base-model tensors that map to nothing of ours (by
        default); ``False`` skips them with a warning.
      heads: load the MLM and sentence (SOP/NSP) heads the checkpoint holds;
        ``False`` loads the encoder only and skips them with a warning.
      source: how errors name the checkpoint (its path).

    Returns:
      ``{"encoder": ..., ["mlm_head": ..., "sentence_head": ...]}`` of float32
      NumPy arrays; the heads are present when the checkpoint holds them and
      ``heads`` is true.

    Raises:
      CheckpointError: a missing tensor, a shape that does not match
        ``config`` (naming the tensor, the expected and the found shape), or,
        with ``strict``, base-model tensors that map to no parameter (naming
        them and the tensors the config takes).
    """
    encoder_names = {(_base_name(k) or k) for k in state if _is_encoder_tensor(k)}
    state = _strip_prefix(state)
    layout = detect_layout(state)
    model_type = "albert" if any(k.startswith("encoder.albert_layer_groups.") for k in state) else "bert"
    expected_type = hf_model_type(config)
    if model_type != expected_type and not (model_type == "albert" and config.sharing == "none"):
        raise CheckpointError(f"{source} holds a {model_type.upper()} checkpoint but the model config "
                              f"(model.sharing={config.sharing}, model.embedding_size={config.embedding_size}, "
                              f"model.hidden_size={config.hidden_size}) describes {expected_type.upper()}")
    mlm = heads and any(k.startswith(("predictions.", "cls.predictions.")) for k in state)
    sentence = heads and any(k.startswith(("sop_classifier.", "cls.seq_relationship.")) for k in state)
    shapes = abstract_params(config)
    params: dict[str, Any] = {}
    used: set[str] = set()
    entries = _entries(config, model_type, mlm, sentence)
    for entry in entries:
        names = _names(entry, layout)
        name = next((n for n in names if n in state), None)
        if name is None:
            raise CheckpointError(f"{source} has no tensor {names[0]!r} (expected for the model config: "
                                  f"{config.num_layers} layers, sharing={config.sharing}); is it an "
                                  f"{model_type.upper()} checkpoint of the same size?")
        target = _get(shapes, entry.path)
        slice_shape = tuple(target.shape[len(entry.index):])
        value = np.asarray(state[name])
        wanted = _from_ours(np.zeros(slice_shape, np.float32), entry, layout).shape
        if value.shape != wanted:
            raise CheckpointError(f"{source}: tensor {name!r} has shape {tuple(value.shape)} but the model config "
                                  f"expects {tuple(wanted)} (parameter {'/'.join(entry.path)})")
        leaf = _ensure_leaf(params, entry.path, target.shape)
        leaf[entry.index] = _to_ours(value.astype(np.float32), entry, slice_shape, layout)
        used.add(name)
    _check_unused(state, used, encoder_names, entries, config, model_type, strict, source)
    return params


def _check_unused(state: Mapping[str, Any], used: set[str], encoder_names: set[str], entries: list[_Entry],
                  config: AlbertConfig, model_type: str, strict: bool, source: str) -> None:
    """Raises (or warns) for unmapped base-model tensors; warns for the heads left out."""
    unused = [k for k in state if k not in used and not k.endswith(_IGNORED_SUFFIXES)]
    encoder = sorted(k for k in unused if k in encoder_names)
    skipped_heads = sorted(k for k in unused if k not in encoder_names)
    if encoder:
        described = (f"{model_type.upper()} with model.num_layers={config.num_layers}, "
                     f"model.sharing={config.sharing}, model.num_hidden_groups={config.num_hidden_groups}, "
                     f"model.inner_group_num={config.inner_group_num}, "
                     f"model.embedding_size={config.embedding_size}, model.hidden_size={config.hidden_size}")
        message = (f"{source} has {len(encoder)} encoder tensor(s) that map to no parameter of the model: "
                   f"{_listing(encoder)}. The model config ({described}) takes only "
                   f"{_allowed_summary(entries)} (with their weight/bias/kernel/scale/embedding suffixes)")
        if strict:
            raise CheckpointError(message + "; pass a config that describes the checkpoint, or strict=False "
                                  "to skip these tensors")
        warnings.warn(message + "; skipping them (strict=False)", stacklevel=3)
    if skipped_heads:
        warnings.warn(f"{source}: skipping {len(skipped_heads)} tensor(s) of heads that are not loaded: "
                      f"{_listing(skipped_heads)} (only the encoder and, with heads=True, the MLM and "
                      f"SOP/NSP pretraining heads are imported)", stacklevel=3)


def _ensure_leaf(tree: dict[str, Any], path: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    if path[-1] not in tree:
        tree[path[-1]] = np.zeros(shape, np.float32)
    return tree[path[-1]]


# ----------------------------------------------------------------------------
# Export


def export_hf_state(params: Mapping[str, Any], config: AlbertConfig, *, layout: str = "pytorch",
                    prefix: bool | None = None) -> dict[str, np.ndarray]:
    """Our parameter tree as a transformers state dict.

    Args:
      params: ``{"encoder": ...}`` with optional ``mlm_head`` / ``sentence_head``
        (the :class:`AlbertForPreTraining` tree), or a bare encoder tree.
      config: the model config.
      layout: ``"pytorch"`` (what the hub holds) or ``"flax"``.
      prefix: prepend ``albert.`` / ``bert.`` (the ``*ForPreTraining`` naming);
        by default exactly when the heads are included.

    Returns:
      name -> float32 NumPy array. The MLM decoder is tied to the word table
      (and its bias to the head's bias), so, as transformers' own
      ``save_pretrained`` does, it is not written.
    """
    if "encoder" not in params or "embeddings" in params:
        params = {"encoder": params}
    params = jax.tree.map(np.asarray, nn.unbox(dict(params)))
    model_type = hf_model_type(config)
    mlm, sentence = "mlm_head" in params, "sentence_head" in params
    prefix = (mlm or sentence) if prefix is None else prefix
    # Encoder tensors carry the base-model prefix; the heads never do.
    base = (model_type + ".") if prefix else ""
    state: dict[str, np.ndarray] = {}
    for entry in _entries(config, model_type, mlm, sentence):
        name = (base if entry.path[0] == "encoder" else "") + _names(entry, layout)[0]
        state[name] = _from_ours(_get(params, entry.path)[entry.index], entry, layout).astype(np.float32)
    return state


def save_hf_checkpoint(params: Mapping[str, Any], config: AlbertConfig, directory: str | os.PathLike) -> pathlib.Path:
    """Writes ``config.json`` and ``model.safetensors`` (PyTorch layout) to ``directory``.

    transformers loads the result with ``AlbertModel``/``BertModel`` (or the
    ``*ForPreTraining`` classes when the heads are included), and the Flax
    classes with ``from_pt=True``.

    Returns:
      The directory.
    """
    from safetensors.numpy import save_file

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = export_hf_state(params, config)
    family = "Albert" if hf_model_type(config) == "albert" else "Bert"
    if "mlm_head" in params:
        arch = family + ("ForPreTraining" if "sentence_head" in params else "ForMaskedLM")
    else:
        arch = family + "Model"
    # Write to temporary names first so an interrupted export leaves no
    # complete-looking checkpoint behind.
    tmp_weights = directory / "model.safetensors.tmp"
    save_file(state, str(tmp_weights), metadata={"format": "pt"})
    tmp_config = directory / "config.json.tmp"
    tmp_config.write_text(json.dumps(config_to_hf(config, (arch,)), indent=2, sort_keys=True) + "\n")
    os.replace(tmp_weights, directory / "model.safetensors")
    os.replace(tmp_config, directory / "config.json")
    return directory


# ----------------------------------------------------------------------------
# Files


def read_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads a checkpoint file or directory into name -> NumPy array.

    Understands ``*.safetensors`` (with the ``safetensors`` package),
    ``model.safetensors.index.json`` shards, ``flax_model.msgpack`` and
    PyTorch ``*.bin``/``*.pt`` files (only when ``torch`` is installed).

    Raises:
      CheckpointError: nothing readable at ``path``.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "model.safetensors.index.json", "flax_model.msgpack",
                     "pytorch_model.bin"):
            if (path / name).is_file():
                return read_state(path / name)
        raise CheckpointError(f"{path} holds no model.safetensors, model.safetensors.index.json, "
                              "flax_model.msgpack or pytorch_model.bin")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        state: dict[str, np.ndarray] = {}
        for shard in sorted(set(index.get("weight_map", {}).values())):
            state.update(read_state(path.parent / shard))
        return state
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # a truncated or foreign file
            raise CheckpointError(f"cannot read safetensors file {path}: {exc}") from None
    if path.suffix == ".msgpack":
        from flax.serialization import msgpack_restore

        tree = msgpack_restore(path.read_bytes())
        return {".".join(k): np.asarray(v) for k, v in _flatten(tree)}
    if path.suffix in (".bin", ".pt", ".pth"):
        try:
            import torch
        except ImportError:
            raise CheckpointError(f"reading {path.name} needs PyTorch (pip install torch), or convert it to "
                                  "safetensors first") from None
        state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state_dict.items()}
    raise CheckpointError(f"unknown checkpoint format {path.suffix!r} ({path}); expected .safetensors, "
                          ".msgpack, .bin or a directory")


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def load_hf_checkpoint(path: str | os.PathLike, config: AlbertConfig | None = None, *, strict: bool = True,
                       heads: bool = True) -> tuple[AlbertConfig, dict[str, Any]]:
    """Reads a transformers BERT/ALBERT checkpoint directory (or file) into our tree.

    Args:
      path: a ``save_pretrained`` directory (``config.json`` + weights) or a
        weights file.
      config: the model to load into (e.g. a preset's ``config.model``); by
        default it is built from ``config.json``. Shapes are checked either way.
      strict: base-model tensors that map to no parameter of ``config`` are
        an error (by default) or, with ``False``, skipped with a warning.
      heads: load the MLM and SOP/NSP heads the checkpoint holds (by
        default); ``False`` loads the encoder only. Heads that are not
        loaded (these, or a fine-tuned classifier) are skipped with a
        warning that lists them.

    Returns:
      ``(config, params)`` with ``params`` as in :func:`import_hf_state`.

    Raises:
      CheckpointError: unreadable files, no config to go by, a mismatch, or
        (with ``strict``) an encoder tensor that maps to nothing.
    """
    path = pathlib.Path(path)
    if config is None:
        config_file = (path if path.is_dir() else path.parent) / "config.json"
        if not config_file.is_file():
            raise CheckpointError(f"no config.json next to {path}; pass the model config explicitly")
        config = config_from_hf(json.loads(config_file.read_text()))
    return config, import_hf_state(read_state(path), config, strict=strict, heads=heads, source=str(path))


def graft(params: Mapping[str, Any], imported: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` (e.g. a fresh init, boxed or not) with every leaf ``imported`` has replaced.

    For fine-tuning: initialise the task's model, then graft the pretrained
    ``encoder`` subtree in. Shapes must agree.

    Raises:
      CheckpointError: naming the first leaf whose shape differs.
    """

    def walk(fresh: Any, new: Any, path: str) -> Any:
        if isinstance(new, Mapping):
            if not isinstance(fresh, Mapping):
                raise CheckpointError(f"parameter {path} is a leaf in the model but a subtree in the checkpoint")
            out = dict(fresh)
            for key, value in new.items():
                if key not in fresh:
                    raise CheckpointError(f"parameter {path}/{key} of the checkpoint does not exist in the model")
                out[key] = walk(fresh[key], value, f"{path}/{key}".lstrip("/"))
            return out
        boxed = isinstance(fresh, nn.Partitioned)
        shape = (fresh.value if boxed else fresh).shape
        if tuple(np.shape(new)) != tuple(shape):
            raise CheckpointError(f"parameter {path} has shape {tuple(np.shape(new))} in the checkpoint but "
                                  f"{tuple(shape)} in the model")
        value = jnp.asarray(new, (fresh.value if boxed else fresh).dtype)
        return fresh.replace_boxed(value) if boxed else value

    return walk(params, imported, "")
