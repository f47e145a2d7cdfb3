"""ResNet-18/50: parameter counts of the standard layout, feature-map strides, a basic block against NumPy."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.configlib import validate
from jaxcompress.errors import ConfigError
from jaxcompress.nn.resnet import ResidualBlock, ResNetClassifier, ResNetConfig

# torchvision's resnet18 / resnet50 (1000 classes, RGB): 11,689,512 and 25,557,032 trainable parameters.
# GroupNorm has the same affine parameters as BatchNorm (running statistics are buffers, not parameters).
TORCHVISION_COUNTS = {18: 11_689_512, 50: 25_557_032}


@pytest.mark.parametrize("depth", [18, 50])
def test_parameter_count_matches_the_standard_layout(depth):
    model = ResNetClassifier(depth=depth, num_classes=1000, width=64, groups=32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
    count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes["params"]))
    assert count == TORCHVISION_COUNTS[depth]
    logits, features = jax.eval_shape(
        lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))), jnp.zeros((2, 224, 224, 3)),
                            return_features=True))
    assert logits.shape == (2, 1000)
    assert features.shape == (2, 7, 7, 2048 if depth == 50 else 512)


def test_small_input_stem_keeps_an_eighth_of_the_resolution():
    model = ResNetClassifier(depth=18, num_classes=4, width=8, small_input=True)
    x = jnp.zeros((1, 48, 48, 1))
    _, features = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x, return_features=True))
    assert features.shape == (1, 6, 6, 64)


def _group_norm(x, scale, bias, groups, eps=1e-6):
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    mean = g.mean((1, 2, 4), keepdims=True)
    var = g.var((1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape) * scale + bias


def _conv_same(x, kernel, stride):
    kh, kw, _, cout = kernel.shape
    b, h, w, _ = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    pad_h = max((oh - 1) * stride + kh - h, 0)
    pad_w = max((ow - 1) * stride + kw - w, 0)
    xp = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((b, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, i, j] = np.einsum("bhwc,hwcd->bd", patch, kernel)
    return out


def test_basic_block_with_projection_matches_numpy():
    block = ResidualBlock(width=8, stride=2, kind="basic", groups=2)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(np.float32)
    params = nn.unbox(block.init(jax.random.key(1), jnp.asarray(x))["params"])
    # Non-zero last scale so the residual branch counts.
    params["norm_1"]["scale"] = jnp.full((8,), 0.7)
    got = np.asarray(block.apply({"params": params}, jnp.asarray(x)))
    p = jax.tree.map(np.asarray, params)
    y = np.maximum(_group_norm(_conv_same(x, p["conv_0"]["kernel"], 2), p["norm_0"]["scale"], p["norm_0"]["bias"], 2), 0)
    y = _group_norm(_conv_same(y, p["conv_1"]["kernel"], 1), p["norm_1"]["scale"], p["norm_1"]["bias"], 2)
    s = _group_norm(_conv_same(x, p["shortcut"]["kernel"], 2), p["shortcut_norm"]["scale"],
                    p["shortcut_norm"]["bias"], 2)
    np.testing.assert_allclose(got, np.maximum(s + y, 0), rtol=1e-4, atol=1e-4)


def test_groups_must_divide_the_widths():
    with pytest.raises(ConfigError, match="groups"):
        validate(ResNetConfig(width=12, groups=8))
