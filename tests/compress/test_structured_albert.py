"""Structured surgery of ALBERT/BERT feed-forward neurons and attention heads: the smaller model equals
the masked one."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress import data
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.structured import apply_model_changes, mask_units, unit_groups
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.train.build import make_task


@pytest.mark.parametrize("sharing", ["all", "none"])
def test_ffn_and_head_surgery_equals_the_masked_encoder(sharing):
    config = apply_overrides(get_preset("albert-tiny-topic"), ["model.num_layers=2", f"model.sharing={sharing}",
                                                               "model.num_heads=4",
                                                               "text.max_seq_length=32", "model.dropout=0.0",
                                                               "model.attention_dropout=0.0"])
    info = data.dataset_info(config.data.name)
    task = make_task(config, info)
    source = data.load_split(config.data.name, "validation")
    batch = jax.tree.map(jnp.asarray, task.prepare_batch(source.read(np.arange(8))))
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(task.init)(jax.random.key(0), batch)))

    artifact = get_method("structured")(Compressed.from_params(params),
                                        {"sparsity": 0.5, "model_config": config.model, "groups": "ffn|attention"})
    assert artifact.model_changes == {"model.intermediate_size": config.model.intermediate_size // 2,
                                      "model.num_heads": 2, "model.head_dim": config.model.hidden_size // 4}
    small_config = apply_model_changes(config, artifact.model_changes)
    shapes = {path: leaf.shape for path, leaf in _paths(artifact.params)}
    ffn_in = [shape for path, shape in shapes.items() if path.endswith("ffn/intermediate/kernel")]
    assert ffn_in and all(shape[-1] == config.model.intermediate_size // 2 for shape in ffn_in)
    query = [shape for path, shape in shapes.items() if path.endswith("attention/query/kernel")]
    assert query and all(shape[-2:] == (2, config.model.hidden_size // 4) for shape in query)

    groups = [g for g in unit_groups(config.model, params) if g.name != "vocab"]
    keep = {name: np.asarray(index) for name, index in artifact.history[-1]["kept"].items()}
    masked = mask_units(params, groups, keep)
    full = jax.jit(task.evaluate)(masked, batch)
    small = jax.jit(make_task(small_config, info).evaluate)(artifact.params, batch)
    np.testing.assert_allclose(small["loss"], full["loss"], rtol=2e-5, atol=2e-5)
    assert not np.allclose(full["loss"], jax.jit(task.evaluate)(params, batch)["loss"])  # the mask did something


def _paths(tree):
    return [(jax.tree_util.keystr(p, simple=True, separator="/"), leaf)
            for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def test_vocabulary_surgery_maps_removed_tokens_to_unk():
    config = apply_overrides(get_preset("albert-tiny-topic"), ["model.num_layers=1", "text.max_seq_length=32",
                                                               "model.dropout=0.0"])
    info = data.dataset_info(config.data.name)
    task = make_task(config, info)
    raw = data.load_split(config.data.name, "validation").read(np.arange(8))
    batch = jax.tree.map(jnp.asarray, task.prepare_batch(raw))
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(task.init)(jax.random.key(0), batch)))

    artifact = get_method("structured")(Compressed.from_params(params), {"sparsity": 0.75, "groups": "vocab",
                                                                         "model_config": config.model})
    keep = np.asarray(artifact.model_changes["text.vocab_keep"])
    assert artifact.model_changes["model.vocab_size"] == keep.size == 2000
    assert set(range(5)) <= set(keep.tolist()) and np.all(np.diff(keep) > 0)  # special tokens, in order
    assert artifact.params["encoder"]["embeddings"]["word"]["embedding"].shape == (2000, 32)

    small_config = apply_model_changes(config, artifact.model_changes)
    small_task = make_task(small_config, info)
    small_batch = small_task.prepare_batch(raw)
    assert small_batch["input_ids"].max() < 2000
    # The original model, fed [UNK] wherever a removed token was, is the same function.
    ids = np.asarray(batch["input_ids"])
    unk_ids = np.where(np.isin(ids, keep), ids, task.tokenizer.unk_id)
    full = jax.jit(task.evaluate)(params, {**batch, "input_ids": jnp.asarray(unk_ids)})
    small = jax.jit(small_task.evaluate)(artifact.params, jax.tree.map(jnp.asarray, small_batch))
    np.testing.assert_allclose(small["loss"], full["loss"], rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(keep)[small_batch["input_ids"]], unk_ids)


def test_a_vocab_keep_without_the_special_tokens_is_refused():
    from jaxcompress.errors import ConfigError
    from jaxcompress.tasks import _text

    config = get_preset("albert-tiny-topic")
    tokenizer = _text.make_tokenizer(config)
    with pytest.raises(ConfigError, match="text.vocab_keep' must hold the special ids"):
        _text.vocab_map((1, 2, 3, 100), tokenizer)
    assert _text.vocab_map((), tokenizer) is None
