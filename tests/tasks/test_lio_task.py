"""The lio task in the one loop: anchor + positives batches, head losses, deployed backbone = plain model."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress import data as data_lib
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.nn.cnn import CNNConfig
from jaxcompress.tasks.lio import LIOTask
from jaxcompress.train import train
from jaxcompress.train.checkpoint import restore_params


def test_lio_task_trains_in_the_loop_and_deploys_the_plain_backbone(tmp_path):
    config = get_preset("lio-tiny")
    config.steps, config.data.eval_split = 2, ""  # compile time dominates; evaluate() is checked below
    summary = train(config, tmp_path / "run", quiet=True)
    assert summary["final_step"] == config.steps
    for key in ("ce", "oel", "scl", "scl_distance", "scl_angle"):
        assert np.isfinite(summary["train_metrics"][key])

    task = LIOTask(config, data_lib.dataset_info(config.data.name))
    source = data_lib.load_split(config.data.name, "train")
    raw = source.read(np.arange(4))
    batch = task.prepare_batch(raw)
    group = config.model.positives + 1
    assert batch["input"].shape == (4, group, 48, 48, 1)
    assert np.all(batch["label"] == batch["label"][:, :1])  # every group holds one class
    np.testing.assert_array_equal(batch["input"][:, 0], raw["image"])
    assert not any(np.array_equal(batch["input"][k, 0], batch["input"][k, m]) for k in range(4)
                   for m in range(1, group))

    params = restore_params(tmp_path / "run")
    deployed = task.inference_params(params)
    x = jnp.asarray(raw["image"])
    plain = nn.unbox(task.backbone.init(jax.random.key(0), x)["params"])
    assert jax.tree.structure(plain) == jax.tree.structure(deployed)
    eval_batch = task.prepare_batch({**raw, "weight": np.ones(4, np.float32)})
    metrics = task.evaluate(params, jax.tree.map(jnp.asarray, eval_batch))
    logits = task.backbone.apply({"params": deployed}, x)
    np.testing.assert_array_equal(np.asarray(metrics["accuracy"]),
                                  (np.asarray(logits).argmax(-1) == raw["label"]).astype(np.float32))


def test_lio_task_refuses_other_model_configs():
    config = get_preset("lio-tiny")
    config.model = CNNConfig()
    with pytest.raises(ConfigError, match="LIOConfig"):
        LIOTask(config, data_lib.dataset_info("cluttered_digits"))
