"""Structured pruning: the shrunk model runs and equals the masked model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.compress import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.structured import (
    apply_model_changes,
    choose_units,
    importance,
    mask_units,
    shrink,
    unit_groups,
)
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.nn import MLPClassifier
from jaxcompress.nn.mlp import MLPConfig

X = jnp.asarray(np.random.default_rng(1).normal(size=(16, 8, 8, 1)).astype(np.float32))


def _model_and_params(hidden=(32, 24)):
    model = MLPClassifier(hidden_sizes=hidden, num_classes=10)
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0), X)["params"])
    params = jax.tree.map(lambda x: x.unbox() if hasattr(x, "unbox") else x, params,
                          is_leaf=lambda x: hasattr(x, "unbox"))
    return model, params


def test_importance_is_the_l2_norm_of_each_units_slices():
    model, params = _model_and_params()
    groups = unit_groups(MLPConfig(hidden_sizes=(32, 24)), params)
    scores = importance(params, groups)
    j = 5
    expected = np.sqrt((params["hidden_0"]["kernel"][:, j] ** 2).sum() + params["hidden_0"]["bias"][j] ** 2
                       + (params["hidden_1"]["kernel"][j, :] ** 2).sum())
    assert scores["hidden_0"][j] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_shrunk_model_equals_masked_model(fraction):
    model, params = _model_and_params()
    config = MLPConfig(hidden_sizes=(32, 24))
    groups = unit_groups(config, params)
    keep = choose_units(importance(params, groups), fraction)
    masked = mask_units(params, groups, keep)
    small, changes = shrink(params, groups, keep)
    expected_sizes = tuple(int(np.ceil((1 - fraction) * n)) for n in (32, 24))
    assert changes == {"model.hidden_sizes.0": expected_sizes[0], "model.hidden_sizes.1": expected_sizes[1]}
    assert small["hidden_0"]["kernel"].shape == (64, expected_sizes[0])
    assert small["hidden_1"]["kernel"].shape == expected_sizes
    assert small["logits"]["kernel"].shape == (expected_sizes[1], 10)
    small_model = MLPClassifier(hidden_sizes=expected_sizes, num_classes=10)
    np.testing.assert_allclose(small_model.apply({"params": small}, X), model.apply({"params": masked}, X),
                               rtol=1e-5, atol=1e-6)


def test_structured_method_records_config_changes_and_smaller_storage():
    _, params = _model_and_params()
    base = Compressed.from_params(params)
    out = get_method("structured")(base, {"sparsity": 0.5, "model_config": MLPConfig(hidden_sizes=(32, 24))})
    assert out.model_changes == {"model.hidden_sizes.0": 16, "model.hidden_sizes.1": 12}
    assert out.total_bytes < 0.6 * base.total_bytes
    config = apply_model_changes(get_preset("digits-mlp"), {"model.hidden_sizes.1": 7})
    assert config.model.hidden_sizes == (128, 7)


def test_round_to_and_bad_input():
    scores = {"g": np.arange(10, dtype=float)}
    assert choose_units(scores, 0.5, round_to=4)["g"].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(ConfigError, match=r"structured.sparsity must be in \[0, 1\)"):
        choose_units(scores, 1.0)
    _, params = _model_and_params()
    with pytest.raises(ConfigError, match="matches no unit group"):
        get_method("structured")(Compressed.from_params(params),
                                 {"groups": "attention", "model_config": MLPConfig(hidden_sizes=(32, 24))})
    with pytest.raises(ConfigError, match="unknown compression method 'prunee'"):
        get_method("prunee")


def test_cnn_channel_surgery_equals_masking():
    from jaxcompress.nn.cnn import CNNClassifier, CNNConfig

    config = CNNConfig(channels=(8, 12), hidden_size=16)
    model = CNNClassifier(channels=(8, 12), num_classes=10, hidden_size=16)
    params = jax.tree.map(lambda v: np.asarray(v.unbox() if hasattr(v, "unbox") else v),
                          model.init(jax.random.key(0), X)["params"], is_leaf=lambda v: hasattr(v, "unbox"))
    groups = unit_groups(config, params)
    assert [g.name for g in groups] == ["conv_0", "conv_1", "hidden"]
    keep = choose_units(importance(params, groups), 0.5)
    small, changes = shrink(params, groups, keep)
    assert changes == {"model.channels.0": 4, "model.channels.1": 6, "model.hidden_size": 8}
    assert small["conv_1"]["kernel"].shape == (3, 3, 4, 6) and small["hidden"]["kernel"].shape == (2 * 2 * 6, 8)
    small_model = CNNClassifier(channels=(4, 6), num_classes=10, hidden_size=8)
    masked = mask_units(params, groups, keep)
    np.testing.assert_allclose(small_model.apply({"params": small}, X), model.apply({"params": masked}, X),
                               rtol=1e-5, atol=1e-5)
