"""Quantization: reference numerics vs NumPy ports, STE, qwix vs reference, compact storage, QAT."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.compress import quantize as Q
from jaxcompress.compress import qwix_quant as QW
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.packing import pack_bits, unpack_bits
from jaxcompress.configlib import apply_overrides, validate
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.nn import CNNClassifier, MLPClassifier
from jaxcompress.train import train

RNG = np.random.default_rng(0)


def numpy_fake_quant(x, bits, symmetric, axis):
    """Textbook port: per-channel min/max grid, round half to even, clip."""
    reduce = tuple(a for a in range(x.ndim) if a != axis % x.ndim) if axis is not None else None
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = np.abs(x).max(axis=reduce, keepdims=True) / qmax
        scale[scale == 0] = 1
        return np.clip(np.round(x / scale), -qmax, qmax) * scale
    lo = np.minimum(x.min(axis=reduce, keepdims=True), 0)
    hi = np.maximum(x.max(axis=reduce, keepdims=True), 0)
    scale = (hi - lo) / (2 ** bits - 1)
    scale[scale == 0] = 1
    zp = np.clip(np.round(-lo / scale), 0, 2 ** bits - 1)
    return (np.clip(np.round(x / scale) + zp, 0, 2 ** bits - 1) - zp) * scale


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [None, -1])
def test_fake_quant_matches_numpy_port(symmetric, axis):
    x = RNG.normal(size=(16, 6)).astype(np.float32) * np.linspace(0.1, 3, 6, dtype=np.float32)
    ours = np.asarray(Q.fake_quant(jnp.asarray(x), 4, symmetric=symmetric, axis=axis))
    np.testing.assert_allclose(ours, numpy_fake_quant(x, 4, symmetric, axis), rtol=1e-5, atol=1e-6)


def test_error_decreases_with_bits_and_per_channel_beats_per_tensor():
    w = RNG.normal(size=(64, 32)).astype(np.float32) * RNG.uniform(0.05, 4, size=32).astype(np.float32)
    errors = {}
    for bits in (2, 3, 4, 6, 8):
        for axis in (None, -1):
            errors[bits, axis] = float(np.mean((Q.fake_quant(jnp.asarray(w), bits, axis=axis) - w) ** 2))
    for axis in (None, -1):
        chain = [errors[b, axis] for b in (2, 3, 4, 6, 8)]
        assert all(a > b for a, b in zip(chain, chain[1:])), chain
    assert all(errors[b, -1] <= errors[b, None] for b in (2, 3, 4, 6, 8))


def test_ste_gradient_is_identity_inside_the_clip_range_and_zero_outside():
    x = jnp.linspace(-2.0, 2.0, 41)
    scale = jnp.asarray(1.0 / 127)  # a fixed grid covering [-1, 1]
    weights = jnp.arange(41.0)
    grad = np.asarray(jax.grad(lambda v: jnp.sum(Q.fake_quant(v, 8, scale=scale) * weights))(x))
    inside, outside = np.abs(np.asarray(x)) < 0.99, np.abs(np.asarray(x)) > 1.01
    np.testing.assert_allclose(grad[inside], np.arange(41.0)[inside], rtol=1e-6)
    np.testing.assert_array_equal(grad[outside], 0.0)
    # Calibrated grids clip nothing: the gradient is the identity everywhere.
    g = jax.grad(lambda v: jnp.sum(Q.fake_quant(v, 4) * 3.0))(x)
    np.testing.assert_allclose(np.asarray(g), 3.0, rtol=1e-6)


def test_stochastic_rounding_is_unbiased_and_on_the_grid():
    x = jnp.full((20000,), 0.3)
    codes = Q.quantize_codes(x, jnp.asarray(1.0), jnp.asarray(0.0), 4, rounding="stochastic",
                             key=jax.random.key(0))
    assert set(np.unique(np.asarray(codes))) == {0.0, 1.0}
    assert abs(float(codes.mean()) - 0.3) < 0.02


def test_binary_and_ternary_match_their_definitions():
    w = RNG.normal(size=(3, 3, 4, 5)).astype(np.float32)
    alpha = np.abs(w).reshape(-1, 5).mean(0)
    np.testing.assert_allclose(Q.binarize(jnp.asarray(w)), np.where(w >= 0, 1, -1) * alpha, rtol=1e-6)
    np.testing.assert_array_equal(Q.binarize(jnp.asarray(w), scaled=False), np.where(w >= 0, 1.0, -1.0))
    delta = 0.7 * np.abs(w).mean()
    keep = np.abs(w) > delta
    ref = np.sign(w) * keep * np.abs(w)[keep].mean()
    np.testing.assert_allclose(Q.ternarize(jnp.asarray(w)), ref, rtol=1e-6)
    # BinaryConnect's STE passes gradients only where |w| <= 1.
    g = jax.grad(lambda v: jnp.sum(Q.binarize_ste(v)))(jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(g), (np.abs(w) <= 1).astype(np.float32))


def test_qwix_int8_ptq_is_close_to_the_reference():
    model = MLPClassifier(hidden_sizes=(48, 32), num_classes=10)
    x = jax.random.uniform(jax.random.key(0), (32, 64))
    params = nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"]
    qmodel, qparams = QW.ptq_model(model, params, x, weight_bits=8)
    ref_params = jax.tree.map(lambda p: Q.fake_quant(p, 8) if p.ndim == 2 else p, params)
    forward = jax.jit(lambda p, v: model.apply({"params": p}, v))
    float_out, ref_out = forward(params, x), forward(ref_params, x)
    qwix_out = jax.jit(lambda p, v: qmodel.apply({"params": p}, v))(qparams, x)
    spread = float(jnp.abs(float_out).max())
    assert float(jnp.abs(qwix_out - ref_out).max()) < 0.02 * spread
    assert float(jnp.abs(qwix_out - float_out).max()) < 0.02 * spread
    # Weight level: qwix's grid (step max|w| / 127.5) stays within half a step of
    # the float weights and within one of our reference grid (step max|w| / 127).
    w = params["hidden_0"]["kernel"]
    w_qwix = QW.dequantize_tree(qparams)["hidden_0"]["kernel"]
    step = jnp.abs(w).max(axis=0) / 127
    assert bool(jnp.all(jnp.abs(w_qwix - w) <= 0.5 * step + 1e-7))
    assert bool(jnp.all(jnp.abs(w_qwix - ref_params["hidden_0"]["kernel"]) <= step + 1e-7))
    # int8 weights really are int8 in qwix's tree.
    assert qparams["hidden_0"]["kernel"].array.qvalue.dtype == jnp.int8
    assert QW.qparams_nbytes(qparams) < 0.3 * sum(p.nbytes for p in jax.tree.leaves(params))


def test_qwix_weight_only_conv_ptq_is_refused_clearly():
    model = CNNClassifier(channels=(4,), num_classes=10, hidden_size=0)
    x = jnp.ones((2, 8, 8, 1))
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), x))["params"]
    with pytest.raises(ConfigError, match="act_bits"):
        QW.ptq_model(model, params, x, weight_bits=8)
    qmodel, qparams = QW.ptq_model(model, params, x, weight_bits=8, act_bits=8)
    quantized = jax.jit(lambda p, v: qmodel.apply({"params": p}, v))(qparams, x)
    assert float(jnp.abs(quantized - jax.jit(model.apply)({"params": params}, x)).max()) < 0.05


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_packing_round_trips_and_int4_is_two_per_byte(bits):
    codes = RNG.integers(0, 2 ** bits, size=37)
    packed = pack_bits(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == -(-37 * bits // 8)
    np.testing.assert_array_equal(unpack_bits(packed, bits, 37), codes)
    if bits == 4:
        assert packed[0] == codes[0] | (codes[1] << 4)


def test_packed_int4_dequantises_on_the_fly_to_the_reference_grid():
    w = RNG.normal(size=(9, 6)).astype(np.float32)
    packed = Q.pack_int4({"dense": {"kernel": w}})
    leaf = packed["dense"]["kernel"]
    assert leaf.packed.dtype == jnp.uint8 and leaf.packed.size == 27  # two codes per byte
    got = jax.jit(Q.unpack_int4)(packed)["dense"]["kernel"]
    np.testing.assert_allclose(got, numpy_fake_quant(w, 4, True, -1), rtol=1e-6, atol=1e-7)


def test_fake_quant_model_applies_the_transform_to_kernels_only():
    model = MLPClassifier(hidden_sizes=(12,), num_classes=10)
    x = jnp.asarray(RNG.normal(size=(3, 20)), jnp.float32)
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), x))["params"]
    wrapped = Q.FakeQuantModel(model, Q.weight_transform("int", 3))
    ref = jax.tree.map(lambda p: numpy_fake_quant(np.asarray(p), 3, True, -1) if p.ndim == 2 else p, params)
    np.testing.assert_allclose(jax.jit(wrapped.apply)({"params": params}, x), jax.jit(model.apply)({"params": ref}, x),
                               rtol=1e-5, atol=1e-6)


@functools.cache
def _cnn_init():
    model = CNNClassifier(channels=(4, 8), num_classes=10, hidden_size=16)
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
    return model, x, jax.tree.map(np.asarray, nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"])


def _cnn_params():
    model, x, params = _cnn_init()
    return model, x, jax.tree.map(np.copy, params)  # tests may edit their copy


@pytest.mark.parametrize("options", [
    {"bits": 8}, {"bits": 4}, {"bits": 4, "backend": "reference", "symmetric": False},
    {"bits": 2, "backend": "reference", "per_channel": False},
])
def test_quantize_step_saves_and_loads_exactly_with_honest_bytes(tmp_path, options):
    _, _, params = _cnn_params()
    artifact = get_method("quantize")(Compressed.from_params(params), options)
    kernel = artifact.storage["hidden/kernel"]
    size, bits = 32 * 16, options["bits"]
    nnz = np.count_nonzero(artifact.params["hidden"]["kernel"])
    dense_bytes, sparse_bytes = -(-size * bits // 8), -(-nnz * bits // 8) + -(-size // 8)
    # Packed codes, or non-zero codes + a bitmask when that is smaller (coarse grids round many weights to 0).
    assert kernel.value_bytes + kernel.index_bytes == min(dense_bytes, sparse_bytes)
    assert kernel.meta_bytes == (16 if options.get("per_channel", True) else 1) * 4 * \
        (1 if options.get("symmetric", True) else 2)
    # Every value is within half a step of the float weight (an independent bound).
    step = np.abs(params["hidden"]["kernel"]).max(0) / (2 ** (options["bits"] - 1) - 1)
    if options.get("symmetric", True) and options.get("per_channel", True):
        assert np.all(np.abs(artifact.params["hidden"]["kernel"] - params["hidden"]["kernel"]) <= step * 0.5 + 1e-6)
    artifact.save(tmp_path)
    codes = np.load(tmp_path / "encodings.npz")["hidden/kernel::codes"]
    assert codes.dtype == np.uint8 and codes.size == kernel.value_bytes  # really packed on disk
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)
    assert loaded.total_bytes == artifact.total_bytes


def test_pruned_then_quantized_stores_nonzero_codes_and_a_bitmask(tmp_path):
    _, _, params = _cnn_params()
    w = params["hidden"]["kernel"].copy()
    w[np.abs(w) < np.quantile(np.abs(w), 0.8)] = 0.0  # 80% zeros
    params["hidden"]["kernel"] = w
    artifact = Q.quantize_params(Compressed.from_params(params), bits=4, include="hidden")
    record = artifact.storage["hidden/kernel"]
    nnz = np.count_nonzero(artifact.params["hidden"]["kernel"])
    assert nnz <= np.count_nonzero(w)
    assert record.index_bytes == -(-w.size // 8) and record.value_bytes == -(-nnz * 4 // 8)
    assert np.all(artifact.params["hidden"]["kernel"][w == 0] == 0)
    artifact.save(tmp_path)
    loaded = Compressed.load(tmp_path, artifact.params)
    np.testing.assert_array_equal(loaded.params["hidden"]["kernel"], artifact.params["hidden"]["kernel"])


def test_prune_step_then_quantize_composes_and_round_trips(tmp_path):
    _, _, params = _cnn_params()
    pruned = get_method("prune")(Compressed.from_params(params), {"sparsity": 0.75, "include": "hidden|conv_1"})
    artifact = get_method("quantize")(pruned, {"bits": 4, "include": "hidden|conv_1"})
    w = artifact.params["hidden"]["kernel"]
    assert np.mean(w == 0) >= 0.75  # pruned zeros survive quantisation
    record = artifact.storage["hidden/kernel"]
    assert record.index_bytes == -(-w.size // 8) and record.value_bytes == -(-np.count_nonzero(w) * 4 // 8)
    assert [h["method"] for h in artifact.history] == ["prune", "quantize"]
    artifact.save(tmp_path)
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["binarize", "ternarize"])
def test_binary_and_ternary_steps_round_trip(tmp_path, method):
    _, _, params = _cnn_params()
    artifact = get_method(method)(Compressed.from_params(params), {})
    w = params["conv_1"]["kernel"]
    got = artifact.params["conv_1"]["kernel"]
    if method == "binarize":
        np.testing.assert_allclose(got, np.asarray(Q.binarize(jnp.asarray(w))), rtol=1e-6)
        assert artifact.storage["conv_1/kernel"].value_bytes == -(-w.size // 8)
    else:
        np.testing.assert_allclose(got, np.asarray(Q.ternarize(jnp.asarray(w))), rtol=1e-6)
        nnz = np.count_nonzero(got)
        assert artifact.storage["conv_1/kernel"].total_bytes == -(-nnz // 8) + -(-w.size // 8) + 4
    artifact.save(tmp_path)
    loaded = Compressed.load(tmp_path, artifact.params)
    for a, b in zip(jax.tree.leaves(artifact.params), jax.tree.leaves(loaded.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options, field", [
    ({"bits": 3}, "quantize.bits"), ({"bits": 8, "colour": 1}, "colour"),
    ({"backend": "qwix", "rounding": "stochastic"}, "rounding"), ({"include": "nothing_here"}, "include"),
    ({"per_channel": "yes"}, "per_channel"),
])
def test_bad_quantize_options_name_the_field(options, field):
    _, _, params = _cnn_params()
    with pytest.raises(ConfigError, match=field):
        get_method("quantize")(Compressed.from_params(params), options)


def test_quant_config_validation():
    with pytest.raises(ConfigError, match="act_bits"):
        validate(apply_overrides(get_preset("digits-cnn-tiny"), ["quant.qat=fake_quant", "quant.act_bits=8"]))
    with pytest.raises(ConfigError, match="weight_bits"):
        validate(apply_overrides(get_preset("digits-cnn-tiny"), ["quant.qat=qwix", "quant.weight_bits=5"]))


def test_qwix_qat_of_the_cnn_trains_through_the_loop_on_a_tensor_parallel_mesh(tmp_path):
    # int8 weights and activations with straight-through gradients; conv output channels split
    # over the tensor axis. (qwix 0.1.8 takes an activation whose shape equals a kernel's for a
    # weight, a shape heuristic in its param lookup; these widths never collide with the batch.)
    config = apply_overrides(get_preset("digits-cnn-tiny"), ["quant.qat=qwix", "quant.weight_bits=8",
                                                             "quant.act_bits=8", "mesh.tensor=2", "steps=40"])
    summary = train(config, tmp_path, quiet=True)
    assert summary["mesh"] == {"data": 4, "fsdp": 1, "tensor": 2}
    assert summary["eval_metrics"]["accuracy"] > 0.25  # 10 classes: chance is 0.1
