"""What the text tasks share: config checks, the tokenizer, text fields and ``text.init_from``.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (pretrain, then fine-tune the same encoder).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcompress.errors import CheckpointError, ConfigError, DataError
from jaxcompress.train.checkpoint import restore_params

#: The parameter subtree that ``text.init_from`` copies (the encoder, not the heads).
ENCODER = "encoder"


def check_model(config: Any, task: str) -> None:
    """The model must be an ALBERT/BERT config whose position table holds ``text.max_seq_length``."""
    from jaxcompress.nn.albert import AlbertConfig

    if not isinstance(config.model, AlbertConfig):
        raise ConfigError(f"task {task!r} needs an ALBERT/BERT model config (jaxcompress.nn.albert.AlbertConfig), "
                          f"got {type(config.model).__name__}; start from a preset such as albert-tiny")
    if config.text.max_seq_length > config.model.max_position:
        raise ConfigError(f"config key 'text.max_seq_length' = {config.text.max_seq_length} is longer than the "
                          f"position table, model.max_position = {config.model.max_position}; lower "
                          f"text.max_seq_length or raise model.max_position")


def vocab_map(keep: tuple[int, ...], tokenizer: Any) -> np.ndarray | None:
    """Tokenizer id -> model id for a vocabulary-pruned model (None when nothing was pruned).

    ``keep[i]`` becomes ``i``; every other id becomes the new id of ``[UNK]``.

    Raises:
      ConfigError: ``keep`` lacks a special token or holds a negative id.
    """
    if not keep:
        return None
    keep_array = np.asarray(keep, np.int64)
    special = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    if not set(special) <= set(keep) or keep_array.min() < 0:
        raise ConfigError(f"config key 'text.vocab_keep' must hold the special ids {special} and no negative id; "
                          f"got {len(keep)} ids from {keep_array.min()} to {keep_array.max()}")
    # Rows past the tokenizer's pieces (a model vocabulary larger than the tokenizer) may be kept too.
    size = max(tokenizer.vocab_size, int(keep_array.max()) + 1)
    table = np.full(size, int(np.nonzero(keep_array == tokenizer.unk_id)[0][0]), np.int32)
    table[keep_array] = np.arange(len(keep_array), dtype=np.int32)
    return table


def make_tokenizer(config: Any) -> Any:
    """The tokenizer of a text task: ``text.tokenizer_file``, or the cached ``pydocs`` one.

    Raises:
      ConfigError: if it has more pieces than ``model.vocab_size``.
    """
    from jaxcompress.data.text.tokenizer import Tokenizer, corpus_tokenizer

    if config.text.tokenizer_file:
        path = pathlib.Path(config.text.tokenizer_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"config key 'text.tokenizer_file' = {config.text.tokenizer_file!r} is not a file")
        tokenizer = Tokenizer(path)
    else:
        pieces = config.text.tokenizer_vocab_size or config.model.vocab_size
        tokenizer = corpus_tokenizer(config.data.data_dir or None, pieces, config.text.lowercase,
                                     quiet=jax.process_index() != 0)
    if tokenizer.vocab_size > config.model.vocab_size and not config.text.vocab_keep:
        raise ConfigError(f"the tokenizer {tokenizer.path.name} has {tokenizer.vocab_size} pieces but "
                          f"model.vocab_size = {config.model.vocab_size}; raise model.vocab_size")
    return tokenizer


def require_text(data_info: dict[str, Any], field: str, key: str) -> None:
    """Checks that the dataset has a string feature ``field`` (named by config key ``key``)."""
    features = data_info["features"]
    if field not in features:
        raise DataError(f"dataset {data_info['name']!r} has no feature {field!r} (config key {key!r}); its "
                        f"features are: {', '.join(sorted(features))}")
    shape, dtype = features[field]
    if dtype != np.dtype(object) or tuple(shape) != ():
        raise DataError(f"feature {field!r} of dataset {data_info['name']!r} (config key {key!r}) must be a text "
                        f"string, got {dtype} with shape {tuple(shape)}")


def decode(values: np.ndarray) -> list[str]:
    """A batch of TFDS text values (bytes or str; padding rows hold 0) as strings."""
    from jaxcompress.data.text.records import as_text

    return [as_text(v) if isinstance(v, (bytes, str)) else "" for v in values]


# ----------------------------------------------------------------------------
# text.init_from


def load_encoder(workdir: str, config: Any) -> dict[str, Any]:
    """The encoder parameters (NumPy) of the newest checkpoint in ``workdir`` (``text.init_from``).

    Also checks that the earlier run tokenized text the same way (its
    ``config.json``), since the embedding rows are only meaningful for the
    tokenizer they were trained with.

    Raises:
      CheckpointError: no readable checkpoint, no encoder in it, or a
        different tokenizer.
    """
    key = "config key 'text.init_from'"
    _check_same_tokenizer(pathlib.Path(workdir).expanduser().absolute(), config, key)
    return restore_params(workdir, ENCODER, field=key)


def _check_same_tokenizer(root: pathlib.Path, config: Any, key: str) -> None:
    path = root / "config.json"
    if not path.is_file():
        return  # A bare checkpoint folder: shapes are still checked.
    earlier = json.loads(path.read_text())
    ours = {"model.vocab_size": config.model.vocab_size, "text.lowercase": config.text.lowercase,
            "text.tokenizer_file": config.text.tokenizer_file}
    theirs = {"model.vocab_size": earlier.get("model", {}).get("vocab_size"),
              "text.lowercase": earlier.get("text", {}).get("lowercase"),
              "text.tokenizer_file": earlier.get("text", {}).get("tokenizer_file")}
    for name, value in ours.items():
        if theirs[name] is not None and theirs[name] != value:
            raise CheckpointError(f"{key}: the run in {root} used {name} = {theirs[name]!r} but this one uses "
                                  f"{value!r}; the encoder's embeddings only fit the tokenizer they were trained with")


def graft_encoder(params: Any, encoder: dict[str, Any], source: str) -> Any:
    """Replaces the ``encoder`` subtree of freshly initialised (boxed) params by ``encoder``.

    Logical-axis boxes are kept, so the loop shards the loaded weights like
    fresh ones. Everything outside the encoder (heads) stays as initialised.

    Raises:
      CheckpointError: naming the first parameter whose path or shape differs.
    """
    fresh = params[ENCODER]
    fresh_leaves = jax.tree_util.tree_flatten_with_path(fresh, is_leaf=lambda x: isinstance(x, nn.Partitioned))[0]
    loaded = dict((jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(encoder)[0])
    wanted = {jax.tree_util.keystr(path) for path, _ in fresh_leaves}
    extra = sorted(set(loaded) - wanted)
    if extra:
        raise CheckpointError(f"config key 'text.init_from' = {source!r}: the checkpoint's encoder has parameter "
                              f"encoder{extra[0]} that this model does not (different sharing or sizes?)")
    new_leaves = []
    for path, leaf in fresh_leaves:
        name = jax.tree_util.keystr(path)
        value = leaf.value if isinstance(leaf, nn.Partitioned) else leaf
        if name not in loaded:
            raise CheckpointError(f"config key 'text.init_from' = {source!r}: the checkpoint's encoder lacks "
                                  f"parameter encoder{name} (different sharing or sizes?)")
        array = loaded[name]
        if tuple(array.shape) != tuple(value.shape):
            raise CheckpointError(f"config key 'text.init_from' = {source!r}: parameter encoder{name} has shape "
                                  f"{tuple(array.shape)} in the checkpoint but {tuple(value.shape)} in this model")
        array = jax.numpy.asarray(array, value.dtype)
        new_leaves.append(leaf.replace_boxed(array) if isinstance(leaf, nn.Partitioned) else array)
    treedef = jax.tree_util.tree_structure(fresh, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    return {**params, ENCODER: jax.tree_util.tree_unflatten(treedef, new_leaves)}
