"""The small CNN: forward pass against a NumPy port, logical axes, config.

Training through the loop on a tensor-parallel mesh is covered by the QAT test
(tests/compress/test_quantize.py) and the distillation teacher.
"""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxcompress.configlib import apply_overrides, validate
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.nn import CNNClassifier
from jaxcompress.nn.classifiers import build_classifier
from jaxcompress.nn.cnn import CNNConfig


def numpy_conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Slow-loop SAME cross-correlation, NHWC x HWIO (what Flax's Conv computes)."""
    kh, kw, _, cout = kernel.shape
    b, h, w, _ = x.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    out = np.zeros((b, h, w, cout))
    for i in range(h):
        for j in range(w):
            patch = padded[:, i:i + kh, j:j + kw, :]
            out[:, i, j, :] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out + bias


def numpy_cnn(params: dict, x: np.ndarray, channels: int) -> np.ndarray:
    x = x.astype(np.float64)
    for i in range(channels):
        x = np.maximum(numpy_conv_same(x, params[f"conv_{i}"]["kernel"], params[f"conv_{i}"]["bias"]), 0)
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    x = x.reshape(x.shape[0], -1)
    x = np.maximum(x @ params["hidden"]["kernel"] + params["hidden"]["bias"], 0)
    return x @ params["logits"]["kernel"] + params["logits"]["bias"]


def test_forward_matches_numpy_port():
    model = CNNClassifier(channels=(4, 6), num_classes=10, hidden_size=12)
    x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 1))
    params = nn.unbox(jax.jit(model.init)(jax.random.key(1), x))["params"]
    forward = jax.jit(model.apply)
    ours = forward({"params": params}, x)
    ref = numpy_cnn(jax.tree.map(np.asarray, params), np.asarray(x), 2)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)
    # [B, H, W] inputs get a channel axis.
    np.testing.assert_allclose(forward({"params": params}, x[..., 0]), ours, rtol=1e-6)


def test_parameters_carry_logical_axis_names():
    model = CNNClassifier(channels=(4, 6), num_classes=10, hidden_size=12)
    boxed = jax.eval_shape(model.init, jax.random.key(1), np.zeros((1, 8, 8, 1), np.float32))["params"]
    specs = nn.get_partition_spec(boxed)
    assert tuple(specs["conv_1"]["kernel"]) == (None, None, "conv_in", "conv_out")
    assert tuple(specs["conv_1"]["bias"]) == ("conv_out",)
    assert tuple(specs["hidden"]["kernel"]) == ("embed", "mlp")
    assert tuple(specs["logits"]["kernel"]) == ("mlp", "classes")


def test_config_validation_and_builder():
    with pytest.raises(ConfigError, match="channels"):
        validate(apply_overrides(get_preset("digits-cnn-tiny"), ["model.channels=[8,0]"]))
    assert isinstance(build_classifier(CNNConfig(), 10), CNNClassifier)
    with pytest.raises(ConfigError, match="'model'"):
        build_classifier(object(), 10)
