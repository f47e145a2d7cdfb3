"""Compact filters: separable factors against slow convolutions, and a compressed student distilled."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxcompress import data as data_lib
from jaxcompress.compress import compact as C
from jaxcompress.compress import distill as D
from jaxcompress.compress import lowrank as L
from jaxcompress.compress import sharing as S
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.factored import factored_layers
from jaxcompress.compress.methods import get_method
from jaxcompress.errors import ConfigError
from jaxcompress.nn import CNNClassifier
from jaxcompress.nn.cnn import CNNConfig
from jaxcompress.train import train
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import Config, DataConfig, OptimConfig
from tests.compress.teacher_cache import trained_cnn_teacher
from tests.helpers import read_metrics

RNG = np.random.default_rng(4)


def slow_depthwise_then_pointwise(x, depthwise, pointwise, bias):
    """SAME depthwise conv (one kh x kw filter per channel), then a 1x1 conv, by loops."""
    kh, kw, _, c = depthwise.shape
    b, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    mid = np.zeros((b, h, w, c))
    for i in range(h):
        for j in range(w):
            mid[:, i, j, :] = np.einsum("bhwc,hwc->bc", padded[:, i:i + kh, j:j + kw, :], depthwise[:, :, 0, :])
    return mid @ pointwise + bias


def _model_and_params():
    model = CNNClassifier(channels=(4, 6), num_classes=10, hidden_size=12)
    x = np.asarray(jax.random.uniform(jax.random.key(0), (2, 8, 8, 1)))
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"])
    return model, x, params


def test_depthwise_separable_layer_matches_slow_loops_and_is_exact_for_separable_kernels():
    model, x, params = _model_and_params()
    artifact = get_method("separable")(Compressed.from_params(params), {"include": "conv_1"})
    p = artifact.params
    assert p["conv_1"]["depthwise"].shape == (3, 3, 1, 4) and p["conv_1"]["pointwise"].shape == (4, 6)
    assert sum(v.size for k, v in p["conv_1"].items() if k != "bias") == 4 * (9 + 6)
    # The intercepted conv_1 equals the loop implementation of its factors.

    def taps(params, x):
        with factored_layers():
            return D.capture(model, {"params": params}, x, ["conv_0", "conv_1"])[1]

    feats = jax.jit(taps)(p, x)
    pooled = np.asarray(jax.nn.relu(feats["conv_0"])).reshape(2, 4, 2, 4, 2, 4).mean(axis=(2, 4))
    ref = slow_depthwise_then_pointwise(pooled, p["conv_1"]["depthwise"], p["conv_1"]["pointwise"],
                                        p["conv_1"]["bias"])
    np.testing.assert_allclose(feats["conv_1"], ref, rtol=1e-4, atol=1e-5)
    # A kernel whose per-channel slices have rank 1 is reproduced exactly.
    d = RNG.normal(size=(3, 3, 4))
    q = RNG.normal(size=(4, 6))
    w = np.einsum("hwc,co->hwco", d, q).astype(np.float32)
    depthwise, pointwise = C.depthwise_separable_factors(w)
    np.testing.assert_allclose(np.einsum("hwc,co->hwco", depthwise[:, :, 0], pointwise), w, atol=1e-5)


def test_full_rank_spatially_separable_conv_equals_the_conv():
    model, x, params = _model_and_params()
    artifact = C.separable_params(Compressed.from_params(params), include="conv_1", kind="spatial", rank=12)
    assert artifact.params["conv_1"]["vertical"].shape == (3, 1, 4, 12)
    assert artifact.params["conv_1"]["horizontal"].shape == (1, 3, 12, 6)

    def forward(params, x):
        with factored_layers():
            return model.apply({"params": params}, x)

    np.testing.assert_allclose(jax.jit(forward)(artifact.params, x), jax.jit(forward)(params, x), atol=1e-5)
    with pytest.raises(ConfigError, match="separable.rank"):
        C.separable_params(Compressed.from_params(params), include="conv_1", kind="spatial", rank=13)
    with pytest.raises(ConfigError, match="separable.include"):
        get_method("separable")(Compressed.from_params(params), {"include": "hidden"})


def _accuracy(model, params, split="validation"):
    source = data_lib.load_split("digits", split)
    records = source.read(np.arange(len(source)))

    def forward(params, x):
        with factored_layers():
            return model.apply({"params": params}, x)

    logits = jax.jit(forward)(params, records["image"])
    return float((np.asarray(logits).argmax(-1) == records["label"]).mean())


def test_compressed_student_is_distilled_from_the_original(tmp_path):
    """Separable conv_1 + SVD hidden layer + 3-bit k-means logits, then a short distillation
    through the real loop (the way compressed models are fine-tuned)."""
    teacher_dir, _ = trained_cnn_teacher()
    teacher_params = restore_params(teacher_dir)
    artifact = C.separable_params(Compressed.from_params(teacher_params), include="conv_1")
    artifact = L.lowrank_params(artifact, rank=8, include="hidden")
    artifact = S.kmeans_params(artifact, bits=3, include="logits")
    artifact.save(tmp_path / "student")
    model = CNNClassifier(channels=(16, 32), num_classes=10, hidden_size=64)
    before = _accuracy(model, artifact.params)

    # Logit KD plus FitNets hints and attention transfer, teacher and student in one jitted step.
    distill = D.DistillConfig(teacher=CNNConfig(), student=CNNConfig(), teacher_workdir=str(teacher_dir),
                              student_init=str(tmp_path / "student"), temperature=2.0, alpha=0.5,
                              hidden_pairs=("hidden:hidden",), hidden_weight=0.1,
                              attention_pairs=("conv_1:conv_1",), attention_weight=1.0)
    config = Config(name="compact-distill", task="distill", model=distill, data=DataConfig(batch_size=32),
                    optim=OptimConfig(learning_rate=3e-3), steps=60, eval_every=0, checkpoint_every=0,
                    log_every=20)
    summary = train(config, tmp_path / "run", quiet=True)
    assert {"accuracy", "agreement", "loss"} <= set(summary["eval_metrics"])
    assert {"kd", "ce", "hidden", "attention"} <= set(read_metrics(tmp_path / "run")[0])
    trained = restore_params(tmp_path / "run")
    for a, b in zip(jax.tree.leaves(trained["teacher"]), jax.tree.leaves(teacher_params)):
        np.testing.assert_array_equal(a, b)  # the teacher is frozen
    student = trained["student"]
    after = _accuracy(model, student)
    assert after > before + 0.02, (before, after)
    # The structure stayed compressed: factors, not kernels, and 8 shared logits values.
    assert set(student["conv_1"]) == {"bias", "depthwise", "pointwise"}
    assert set(student["hidden"]) == {"bias", "U", "V"}
    assert np.unique(student["logits"]["kernel"]).size <= 8
