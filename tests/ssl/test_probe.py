"""Probes on frozen features: the logistic-regression protocol and the trained-head fitter."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from jaxcompress.errors import DataError
from jaxcompress.ssl.probe import HeadFit, fit_head, fit_probe, mean_std


def _digit_splits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order].astype(np.int32)
    return (x[:1000], y[:1000]), (x[1000:1400], y[1000:1400]), (x[1400:], y[1400:])


def test_linear_probe_picks_c_on_validation_and_matches_sklearn():
    (tx, ty), (vx, vy), (sx, sy) = _digit_splits()
    probe = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 1.0))
    mean, scale = tx.mean(0), np.maximum(tx.std(0), 1e-6)
    direct = LogisticRegression(C=probe.c, max_iter=2000).fit((tx - mean) / scale, ty)
    assert probe.accuracy(sx, sy) == pytest.approx(direct.score((sx - mean) / scale, sy))
    assert probe.accuracy(sx, sy) > 0.9
    with pytest.raises(DataError, match="two classes"):
        fit_probe(tx, np.zeros_like(ty), vx, vy)


def test_fit_head_trains_a_linear_head_to_the_logistic_regression_level():
    (tx, ty), (vx, vy), (sx, sy) = _digit_splits()
    head = nn.Dense(10)
    params = head.init(jax.random.key(0), jnp.asarray(tx[:1]))["params"]

    def per_example(p, x, y):
        logits = head.apply({"params": p}, x)
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, y),
                "correct": (logits.argmax(-1) == y).astype(jnp.float32)}

    fit = fit_head(params, per_example, lambda stats: stats["loss"].mean(),
                   lambda stats: float(stats["correct"].mean()), (tx, ty), (vx, vy), (sx, sy),
                   HeadFit(steps=300, learning_rate=1e-2, eval_every=50))
    reference = LogisticRegression(max_iter=2000).fit(tx, ty).score(sx, sy)
    assert fit["best_step"] > 0 and fit["validation"] > 0.9
    assert fit["test"] > reference - 0.04
    # with the lower-is-better direction the untrained head (step 0) has the lowest accuracy and is kept
    worst = fit_head(params, per_example, lambda stats: stats["loss"].mean(),
                     lambda stats: float(stats["correct"].mean()), (tx, ty), (vx, vy), (sx, sy),
                     HeadFit(steps=100, learning_rate=1e-2, eval_every=50), higher_is_better=False)
    assert worst["best_step"] == 0 and worst["validation"] < 0.3


def test_mean_std_over_seeds():
    assert mean_std([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 2}
