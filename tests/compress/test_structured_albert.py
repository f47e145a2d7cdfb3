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
from jaxcompress.config import apply_overrides, get_preset
from jaxcompress.train.task import make_task


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
                                        {"sparsity": 0.5, "model_config": config.model})
    assert artifact.model_changes == {"model.intermediate_size": config.model.intermediate_size // 2,
                                      "model.num_heads": 2, "model.head_dim": config.model.hidden_size // 4}
    small_config = apply_model_changes(config, artifact.model_changes)
    shapes = {path: leaf.shape for path, leaf in _paths(artifact.params)}
    ffn_in = [shape for path, shape in shapes.items() if path.endswith("ffn/intermediate/kernel")]
    assert ffn_in and all(shape[-1] == config.model.intermediate_size // 2 for shape in ffn_in)
    query = [shape for path, shape in shapes.items() if path.endswith("attention/query/kernel")]
    assert query and all(shape[-2:] == (2, config.model.hidden_size // 4) for shape in query)

    groups = unit_groups(config.model, params)
    keep = {name: np.asarray(index) for name, index in artifact.history[-1]["kept"].items()}
    masked = mask_units(params, groups, keep)
    full = jax.jit(task.evaluate)(masked, batch)
    small = jax.jit(make_task(small_config, info).evaluate)(artifact.params, batch)
    np.testing.assert_allclose(small["loss"], full["loss"], rtol=2e-5, atol=2e-5)
    assert not np.allclose(full["loss"], jax.jit(task.evaluate)(params, batch)["loss"])  # the mask did something


def _paths(tree):
    return [(jax.tree_util.keystr(p, simple=True, separator="/"), leaf)
            for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]
