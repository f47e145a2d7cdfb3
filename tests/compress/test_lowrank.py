"""Low-rank factorisation: exact reconstructions, parameter counts, factored models that run."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxcompress.compress import lowrank as L
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.factored import factored_layers, is_factored
from jaxcompress.compress.methods import get_method
from jaxcompress.errors import ConfigError
from jaxcompress.nn import CNNClassifier, MLPClassifier

RNG = np.random.default_rng(1)


def factored_forward(model):
    def forward(params, x):
        with factored_layers():
            return model.apply({"params": params}, x)

    return jax.jit(forward)


def test_full_rank_svd_reconstructs_exactly():
    w = RNG.normal(size=(20, 12)).astype(np.float32)
    u, v = L.svd_factors(w, 12)
    assert u.shape == (20, 12) and v.shape == (12, 12)
    np.testing.assert_allclose(u @ v, w, atol=1e-5)
    # Truncation error is the tail of the spectrum (Eckart-Young).
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    u3, v3 = L.svd_factors(w, 3)
    np.testing.assert_allclose(np.linalg.norm(u3 @ v3 - w), np.sqrt((s[3:] ** 2).sum()), rtol=1e-4)


def test_rank_rules_by_hand():
    s = np.array([3.0, 2.0, 1.0])  # energies 9/14, 13/14, 14/14
    assert [L.rank_for_energy(s, e) for e in (0.5, 0.9, 0.93, 1.0)] == [1, 2, 3, 3]
    assert L.rank_for_budget(100, 50, 0.5) == 16  # floor(0.5 * 5000 / 150)
    assert L.rank_for_budget(4, 4, 0.01) == 1


def test_full_rank_tucker2_reconstructs_and_the_conv_chain_equals_the_conv():
    model = CNNClassifier(channels=(4, 6), num_classes=10, hidden_size=12)
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"])
    w = params["conv_1"]["kernel"]
    first, core, last = L.tucker2_factors(w, 4, 6)
    np.testing.assert_allclose(L.tucker2_reconstruct(first, core, last), w, atol=1e-6)
    factored = {**params, "conv_1": {"bias": params["conv_1"]["bias"], "first": first, "core": core, "last": last}}
    np.testing.assert_allclose(factored_forward(model)(factored, x), jax.jit(model.apply)({"params": params}, x),
                               atol=1e-5)


def test_factored_mlp_equals_x_at_u_at_v_and_counts_match_formulas(tmp_path):
    model = MLPClassifier(hidden_sizes=(48,), num_classes=10)
    x = np.asarray(jax.random.uniform(jax.random.key(0), (5, 64)))
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"])
    artifact = get_method("lowrank")(Compressed.from_params(params), {"rank": 6})
    p = artifact.params
    assert p["hidden_0"]["U"].shape == (64, 6) and p["hidden_0"]["V"].shape == (6, 48)
    assert "kernel" not in p["hidden_0"] and is_factored(p)
    # A NumPy forward pass with the factors, independent of the interceptor.
    h = np.maximum(x @ p["hidden_0"]["U"] @ p["hidden_0"]["V"] + p["hidden_0"]["bias"], 0)
    ref = h @ p["logits"]["U"] @ p["logits"]["V"] + p["logits"]["bias"]
    np.testing.assert_allclose(factored_forward(model)(p, x), ref, rtol=1e-5, atol=1e-5)
    factor_values = sum(s.size for path, s in artifact.storage.items() if s.format == "low_rank")
    assert factor_values == 6 * (64 + 48) + 6 * (48 + 10)
    assert artifact.storage["hidden_0/U"].value_bytes == 64 * 6 * 4
    artifact.save(tmp_path)
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)


def test_energy_and_budget_choose_ranks_and_keep_layers_that_would_grow():
    model = CNNClassifier(channels=(4, 16), num_classes=10, hidden_size=32)
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), np.zeros((1, 8, 8, 1))))["params"])
    full = L.lowrank_params(Compressed.from_params(params), energy=1.0)
    assert set(full.history[-1]["kept_dense"]) == {"conv_0/kernel", "conv_1/kernel", "hidden/kernel",
                                                    "logits/kernel"}
    budget = L.lowrank_params(Compressed.from_params(params), budget=0.3, include="hidden|conv_1")
    layers = budget.history[-1]["layers"]
    r = layers["hidden/kernel"]["rank"]
    assert r == L.rank_for_budget(64, 32, 0.3) and r * (64 + 32) <= 0.3 * 64 * 32
    r_in, r_out = layers["conv_1/kernel"]["ranks"]
    assert L.tucker_params(3, 3, 4, 16, r_in, r_out) <= 0.3 * 3 * 3 * 4 * 16
    assert budget.params["conv_1"]["core"].shape == (3, 3, r_in, r_out)


@pytest.mark.parametrize("options, field", [
    ({"rank": 40}, "lowrank.rank"), ({}, "exactly one"), ({"rank": 2, "energy": 0.9}, "exactly one"),
    ({"energy": 1.5}, "lowrank.energy"), ({"rank": 2, "colour": 1}, "colour"),
    ({"rank": 2, "include": "nothing_here"}, "include"),
])
def test_bad_lowrank_options_name_the_field(options, field):
    model = MLPClassifier(hidden_sizes=(16,), num_classes=10)
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), np.zeros((1, 20))))["params"])
    with pytest.raises(ConfigError, match=field):
        get_method("lowrank")(Compressed.from_params(params), options)


@pytest.mark.parametrize("method, options", [
    ("lowrank", {"rank": 4}),  # Tucker-2 convs and SVD dense layers: every kernel factored
    ("separable", {"include": "conv_1"}),  # depthwise + pointwise conv_1
])
def test_factored_models_evaluate_through_the_compress_pipeline(method, options, tmp_path):
    """The pipeline evaluates params whose tree differs from the model's (factors, not kernels)."""
    from jaxcompress import data as data_lib
    from jaxcompress.workflows.compress_workdir import compress_workdir, load_trained
    from tests.compress.teacher_cache import trained_cnn_teacher

    teacher_dir, _ = trained_cnn_teacher()
    settings = [f"{method}.{key}={value}" for key, value in options.items()]
    report = compress_workdir(teacher_dir, [method], settings, tmp_path / "out")
    # Independent accuracy: the same method applied here, the factored forward run directly.
    trained = load_trained(teacher_dir)
    params = get_method(method)(Compressed.from_params(trained.params), options).params
    assert "kernel" not in params["conv_1"]
    cnn = trained.config.model
    model = CNNClassifier(channels=cnn.channels, num_classes=10, hidden_size=cnn.hidden_size)
    source = data_lib.load_split("digits", "validation")
    records = source.read(np.arange(len(source)))
    logits = factored_forward(model)(params, records["image"])
    accuracy = float((np.asarray(logits).argmax(-1) == records["label"]).mean())
    assert report["metrics_after"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert report["params"]["after"] < report["params"]["before"]
