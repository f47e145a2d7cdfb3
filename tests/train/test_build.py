"""``make_task``/``build_optimizer`` give every task QAT and pruning, or refuse what a task cannot take."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from flax import linen as nn

import jaxcompress.tasks  # noqa: F401  (registers the built-in tasks)
from jaxcompress import data
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.train.build import build_optimizer, make_task

SMALL_TEXT = ["model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64", "model.num_layers=2",
              "model.embedding_size=16", "model.max_position=64", "text.max_seq_length=64"]
CASES = {"mlm_sop": ("albert-tiny", SMALL_TEXT), "gcl": ("span-graphcl-tiny", [])}


def _task_and_batch(preset: str, overrides: list[str]):
    config = apply_overrides(get_preset(preset), [*overrides, "data.batch_size=8"])
    task = make_task(config, data.dataset_info(config.data.name))
    source = data.load_split(config.data.name, "train")
    batch = task.prepare_batch(data.train_batch(source, 0, 8, seed=0))
    return config, task, batch


def _int4_per_tensor(params):
    """NumPy reference of symmetric per-tensor int4 fake quantisation of every kernel."""

    def one(path, leaf):
        name = jax.tree_util.keystr(path)
        if not re.search("kernel", name):
            return leaf
        w = np.asarray(leaf, np.float64)
        scale = np.abs(w).max() / 7.0
        return (np.clip(np.round(w / scale), -7, 7) * scale).astype(np.float32)

    return jax.tree_util.tree_map_with_path(one, params)


@pytest.mark.parametrize("task_name", sorted(CASES))
def test_fake_quant_qat_acts_on_every_task(task_name):
    """The loss of the QAT task equals the plain task's loss on NumPy-quantised kernels."""
    preset, overrides = CASES[task_name]
    qat = [*overrides, "quant.qat=fake_quant", "quant.weight_bits=4", "quant.per_channel=false",
           "quant.include=kernel"]
    config, quantized_task, batch = _task_and_batch(preset, qat)
    assert config.task == task_name
    _, plain_task, _ = _task_and_batch(preset, overrides)
    params = nn.unbox(plain_task.init(jax.random.key(0), batch))
    rng = jax.random.key(1)
    got, _ = quantized_task.loss(params, batch, rng)
    want, _ = plain_task.loss(_int4_per_tensor(params), batch, rng)
    float_loss, _ = plain_task.loss(params, batch, rng)
    np.testing.assert_allclose(float(got), float(want), rtol=2e-5)
    assert abs(float(got) - float(float_loss)) > 1e-4  # int4 really changed the weights the loss saw


def test_layer_interception_qat_is_refused_where_the_task_cannot_take_it():
    preset, overrides = CASES["mlm_sop"]
    with pytest.raises(ConfigError, match="'quant.qat' = 'qwix'.*fake_quant"):
        _task_and_batch(preset, [*overrides, "quant.qat=qwix"])


def test_pruning_masks_act_on_a_self_supervised_task():
    """A one-shot magnitude pruner in the optimiser of the graph contrastive task zeroes half of each kernel."""
    config, task, batch = _task_and_batch("span-graphcl-tiny", ["prune.method=magnitude", "prune.sparsity=0.5",
                                                                 "prune.schedule=one_shot", "steps=4"])
    params = nn.unbox(task.init(jax.random.key(0), batch))
    tx = build_optimizer(config, task)
    state = tx.init(params)
    grads, _ = jax.grad(lambda p: task.loss(p, batch, jax.random.key(2)), has_aux=True)(params)
    updates, state = tx.update(grads, state, params)
    pruned = jax.tree.map(lambda p, u: p + u, params, updates)
    kernels = [np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(pruned)
               if "kernel" in jax.tree_util.keystr(path)]
    assert kernels
    zero_fraction = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
    assert 0.45 <= zero_fraction <= 0.55
