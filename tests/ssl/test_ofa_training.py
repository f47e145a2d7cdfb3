"""OFA pretraining pieces: lambda sampling, frame periods, alpha supervision, and the gradient to lambda."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.nn.speech import SpeechEncoder, SpeechEncoderConfig
from jaxcompress.speech.boundaries import pseudo_alpha
from jaxcompress.ssl import ofa


def test_frame_period_of_lambda_and_back():
    assert float(ofa.frame_period_ms(0.0, 2 / 9)) == pytest.approx(20.0)
    assert float(ofa.frame_period_ms(1.0, 2 / 9)) == pytest.approx(90.0)  # the reference's "20-90 ms"
    for fp in (20.0, 37.5, 90.0):
        lam = ofa.lambda_for_frame_period(fp, 2 / 9)
        assert float(ofa.frame_period_ms(lam, 2 / 9)) == pytest.approx(fp, rel=1e-6)


def test_lambda_sampling_modes():
    key = jax.random.key(0)
    fixed = ofa.OFASpeechConfig(lambda_mode="fixed", fixed_lambda=0.3)
    np.testing.assert_allclose(ofa.sample_lambda(key, fixed, 4), 0.3)
    keys = jax.random.split(key, 4000)
    uniform = ofa.OFASpeechConfig(lambda_mode="uniform", lambda_upper=0.5)
    lam = np.array(jax.vmap(lambda k: ofa.sample_lambda(k, uniform, 1))(keys))
    assert lam.shape == (4000,) and lam.min() >= 0 and lam.max() <= 0.5
    assert abs(lam.mean() - 0.25) < 0.01
    per_example = ofa.OFASpeechConfig(lambda_mode="uniform", lambda_per_example=True)
    assert ofa.sample_lambda(key, per_example, 8).shape == (8,)
    # uniform_fr: the frame period, not lambda, is uniform on [20, fp_max]
    fr = ofa.OFASpeechConfig(lambda_mode="uniform_fr", fp_max_ms=90.0)
    lam = np.array(jax.vmap(lambda k: ofa.sample_lambda(k, fr, 1))(keys))
    fp = 20.0 / (1.0 - lam * (1.0 - fr.fr_mean_alpha))
    np.testing.assert_allclose(np.quantile(fp, [0.1, 0.5, 0.9]), [27.0, 55.0, 83.0], atol=2.0)


def test_alpha_losses_vanish_on_the_pseudo_weights():
    b = np.array([3, 5, 9], np.int32)
    target = pseudo_alpha(b, 9, total_frames=12)[None]
    mask = (np.arange(12) < 9)[None]
    bounds = np.array([[3, 5, 9, -1]], np.int32)
    zero = ofa.alpha_losses(jnp.asarray(target), jnp.asarray(target), jnp.asarray(mask), jnp.asarray(bounds))
    for v in zero.values():
        assert float(v[0]) == pytest.approx(0.0, abs=1e-6)
    flat = np.where(mask, 0.5, 0.0).astype(np.float32)  # 4.5 fires for 3 segments
    losses = ofa.alpha_losses(jnp.asarray(flat), jnp.asarray(target), jnp.asarray(mask), jnp.asarray(bounds))
    assert float(losses["quantity"][0]) == pytest.approx(0.5)
    # cumsum at frames 3, 5, 9 is 1.5, 2.5, 4.5 against 1, 2, 3
    assert float(losses["seg"][0]) == pytest.approx((0.5 + 0.5 + 1.5) / 3)
    assert float(losses["frame"][0]) == pytest.approx(np.abs(flat - target)[mask].mean(), rel=1e-6)


def test_task_loss_has_a_gradient_in_lambda():
    """Adaptive rate learning needs d(loss)/d(lambda) through CIF's soft weights; check it by finite differences."""
    cfg = SpeechEncoderConfig(frontend_size=16, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                              dropout=0.0)
    encoder = SpeechEncoder(cfg, deterministic=True)
    rng = np.random.default_rng(0)
    logmel = jnp.asarray(rng.standard_normal((2, 64, 40)).astype(np.float32))
    mask = jnp.asarray(np.arange(64)[None] < np.array([[64], [50]]))
    params = encoder.init(jax.random.key(0), logmel, mask, 0.0)["params"]
    probe = jnp.asarray(rng.standard_normal(16).astype(np.float32))

    def loss(lam):
        out = encoder.apply({"params": params}, logmel, mask, lam)
        m = out.mask[..., None]
        pooled = (out.hidden * m).sum(1) / jnp.maximum(m.sum(1), 1)
        return jnp.sum((pooled @ probe) ** 2), out.lengths

    lam = 0.6
    grad = float(jax.grad(lambda v: loss(v)[0])(jnp.float32(lam)))
    eps = 1e-3
    (up, len_up), (down, len_down) = loss(lam + eps), loss(lam - eps)
    np.testing.assert_array_equal(len_up, len_down)  # no output appears or vanishes inside the step
    finite = (float(up) - float(down)) / (2 * eps)
    assert np.isfinite(grad) and grad != 0.0
    assert grad == pytest.approx(finite, rel=0.05, abs=1e-3 * abs(finite) + 1e-6)
