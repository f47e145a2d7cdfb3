"""Distillation: losses against NumPy, feature taps, and the distill task's jitted step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcompress import data as data_lib
from jaxcompress.compress import distill as D
from jaxcompress.configlib import validate
from jaxcompress.errors import ConfigError
from jaxcompress.nn import MLPClassifier
from jaxcompress.nn.cnn import CNNConfig
from jaxcompress.tasks.distillation import DistillationTask
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import Config, DataConfig, OptimConfig
from tests.compress.teacher_cache import trained_cnn_teacher

RNG = np.random.default_rng(3)
INFO = {"num_classes": 10, "input_key": "image", "label_key": "label", "input_shape": (8, 8, 1)}


def numpy_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_hinton_loss_matches_numpy_and_its_kl_part_vanishes_for_identical_logits():
    s, t = RNG.normal(size=(6, 10)), RNG.normal(size=(6, 10)) * 3
    labels = RNG.integers(0, 10, 6)
    temperature, alpha = 3.0, 0.4
    p_t = np.exp(numpy_log_softmax(t / temperature))
    kl = (p_t * (numpy_log_softmax(t / temperature) - numpy_log_softmax(s / temperature))).sum(-1)
    ce = -numpy_log_softmax(s)[np.arange(6), labels]
    loss, parts = D.hinton_loss(jnp.asarray(s), jnp.asarray(t), jnp.asarray(labels), temperature=temperature,
                                alpha=alpha)
    np.testing.assert_allclose(parts["kd"], temperature ** 2 * kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, temperature ** 2 * kl.mean() + alpha * ce.mean(), rtol=1e-5)
    same, same_parts = D.hinton_loss(jnp.asarray(t), jnp.asarray(t), None, temperature=temperature)
    assert abs(float(same_parts["kd"])) < 1e-6 and abs(float(same)) < 1e-6


def test_attention_and_cosine_losses_match_numpy():
    fs, ft = RNG.normal(size=(3, 4, 4, 5)), RNG.normal(size=(3, 4, 4, 7))

    def at(f):
        q = (f ** 2).mean(-1).reshape(3, -1)
        return q / np.linalg.norm(q, axis=-1, keepdims=True)
    np.testing.assert_allclose(D.attention_transfer(jnp.asarray(fs), jnp.asarray(ft)),
                               np.linalg.norm(at(fs) - at(ft), axis=-1), rtol=1e-5)
    # Normalised maps: scaling the features changes nothing; identical features cost 0.
    np.testing.assert_allclose(D.attention_transfer(jnp.asarray(fs), jnp.asarray(5 * fs)), 0, atol=1e-6)
    a, b = RNG.normal(size=(3, 8)), RNG.normal(size=(3, 8))
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(D.cosine_distance(jnp.asarray(a), jnp.asarray(b)), 1 - cos, rtol=1e-5)
    np.testing.assert_allclose(D.hidden_mse(jnp.asarray(a), jnp.asarray(b)), ((a - b) ** 2).mean(-1), rtol=1e-5)


def test_capture_taps_a_module_output_without_changing_the_model():
    model = MLPClassifier(hidden_sizes=(12, 8), num_classes=10)
    x = RNG.normal(size=(4, 20)).astype(np.float32)
    params = jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(0), x))["params"])
    out, feats = jax.jit(lambda p, v: D.capture(model, {"params": p}, v, ["hidden_0"]))(params, x)
    np.testing.assert_allclose(feats["hidden_0"], x @ params["hidden_0"]["kernel"] + params["hidden_0"]["bias"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, jax.jit(model.apply)({"params": params}, x))
    with pytest.raises(ConfigError, match="hidden_9.*hidden_0"):
        D.capture(model, {"params": params}, x, ["hidden_9"])


def _distill_config(teacher_dir, **changes):
    model = D.DistillConfig(teacher=CNNConfig(), student=CNNConfig(channels=(4, 8), hidden_size=16),
                            teacher_workdir=str(teacher_dir), **changes)
    return Config(name="distill-test", task="distill", model=model, data=DataConfig(batch_size=32),
                  optim=OptimConfig(learning_rate=1e-2), steps=30, eval_every=0, checkpoint_every=0, log_every=10)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="teacher_workdir"):
        validate(_distill_config(""))
    with pytest.raises(ConfigError, match="hidden_pairs"):
        validate(_distill_config(tmp_path, hidden_pairs=("hidden",)))
    with pytest.raises(ConfigError, match="attention_weight"):
        validate(_distill_config(tmp_path, attention_weight=1.0))


def test_distill_step_freezes_the_teacher_and_projects_a_narrower_student():
    """The task's loss and optimiser in a jitted step (the real loop runs in test_compact)."""
    teacher_dir, _ = trained_cnn_teacher()
    config = _distill_config(teacher_dir, hidden_pairs=("hidden:hidden",), hidden_weight=1.0,
                             attention_pairs=("conv_1:conv_1",), attention_weight=10.0)
    task = DistillationTask(config, INFO)
    source = data_lib.load_split("digits", "train")
    batch = jax.tree.map(jnp.asarray, task.prepare_batch(source.read(np.arange(64))))
    params = nn.unbox(jax.jit(task.init)(jax.random.key(0), batch))
    # FitNets projection from the student's 16 hidden units to the teacher's 64.
    assert params["projections"]["pair_0"]["kernel"].shape == (16, 64)
    teacher = restore_params(teacher_dir)
    for a, b in zip(jax.tree.leaves(params["teacher"]), jax.tree.leaves(teacher)):
        np.testing.assert_array_equal(a, b)
    tx = task.wrap_optimizer(optax.adam(1e-2))
    state = tx.init(params)
    trainable = sum(x.size for x in jax.tree.leaves({k: params[k] for k in ("student", "projections")}))
    assert sum(x.size for x in jax.tree.leaves(state)) == 2 * trainable + 1  # Adam moments + count: no teacher

    @jax.jit
    def step(params, state, rng):
        (_, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, rng)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, metrics, grads

    history = []
    for i in range(20):
        params, state, metrics, grads = step(params, state, jax.random.key(i))
        history.append(metrics)
        assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["teacher"]))
    for key in ("loss", "hidden", "attention", "kd"):
        assert float(history[-1][key]) < float(history[0][key]), key
    for a, b in zip(jax.tree.leaves(params["teacher"]), jax.tree.leaves(teacher)):
        np.testing.assert_array_equal(a, b)  # frozen: bit-identical


def test_student_and_teacher_inputs_are_separate_batch_keys():
    teacher_dir, _ = trained_cnn_teacher()
    task = DistillationTask(_distill_config(teacher_dir), INFO)
    raw = {"image": np.zeros((2, 8, 8, 1)), "label": np.array([1, 2]), "teacher_image": np.ones((2, 8, 8, 1))}
    batch = task.prepare_batch(raw)
    assert batch["input"].sum() == 0 and batch["teacher_input"].sum() == 2 * 64
    del raw["teacher_image"]
    np.testing.assert_array_equal(task.prepare_batch(raw)["teacher_input"], batch["input"])
