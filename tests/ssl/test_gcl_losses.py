"""Contrastive losses against slow NumPy loops written from the papers' formulas."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.ssl import gcl_losses


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _graphcl_loop(z1, z2, t, valid):
    losses = []
    for i in range(len(z1)):
        if not valid[i]:
            continue
        denominator = sum(math.exp(_cos(z1[i], z2[j]) / t) for j in range(len(z1)) if j != i and valid[j])
        losses.append(-math.log(math.exp(_cos(z1[i], z2[i]) / t) / denominator))
    return float(np.mean(losses))


def _simclr_loop(z1, z2, t, valid):
    def one_way(a, b):
        out = []
        for i in range(len(a)):
            if not valid[i]:
                continue
            terms = [math.exp(_cos(a[i], b[j]) / t) for j in range(len(a)) if valid[j]]
            terms += [math.exp(_cos(a[i], a[j]) / t) for j in range(len(a)) if valid[j] and j != i]
            out.append(-math.log(math.exp(_cos(a[i], b[i]) / t) / sum(terms)))
        return out

    forward, backward = one_way(z1, z2), one_way(z2, z1)
    return float(np.mean([(f + b) / 2 for f, b in zip(forward, backward)]))


@pytest.mark.parametrize("symmetric", [False, True])
def test_nt_xent_matches_numpy_loop_and_ignores_padding(symmetric):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    valid = np.array([1, 1, 1, 1, 0, 1], np.float32)
    z1[4] = 0.0  # a padded row: zero embedding, must not produce NaN
    loss, per = jax.jit(gcl_losses.nt_xent, static_argnums=(2, 4))(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), 0.3,
                                   jnp.asarray(valid), symmetric)
    expected = (_simclr_loop if symmetric else _graphcl_loop)(z1, z2, 0.3, valid)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(per[4]) == 0.0 and np.all(np.isfinite(np.asarray(per)))
    grads = jax.jit(jax.grad(lambda a: gcl_losses.nt_xent(a, jnp.asarray(z2, jnp.float32), 0.3, jnp.asarray(valid),
                                                  symmetric)[0]))(jnp.asarray(z1, jnp.float32))
    assert np.all(np.isfinite(np.asarray(grads)))


def test_grace_loss_matches_numpy_loop_with_masked_nodes():
    rng = np.random.default_rng(1)
    h1, h2 = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    mask = np.array([1, 1, 0, 1, 1, 1, 0], np.float32)
    h1[6] = h2[6] = 0.0
    t = 0.5

    def l(u, v, i):
        pos = math.exp(_cos(u[i], v[i]) / t)
        inter = sum(math.exp(_cos(u[i], v[k]) / t) for k in range(7) if k != i and mask[k])
        intra = sum(math.exp(_cos(u[i], u[k]) / t) for k in range(7) if k != i and mask[k])
        return -math.log(pos / (pos + inter + intra))

    expected = np.mean([(l(h1, h2, i) + l(h2, h1, i)) / 2 for i in range(7) if mask[i]])
    loss, per = jax.jit(gcl_losses.grace_loss, static_argnums=2)(jnp.asarray(h1, jnp.float32), jnp.asarray(h2, jnp.float32), t,
                                      jnp.asarray(mask))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(per[2]) == 0.0 and float(per[6]) == 0.0


def test_local_global_jsd_matches_numpy_loop():
    rng = np.random.default_rng(2)
    nodes, graphs = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 5))
    nodes_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    valid = np.array([1, 1, 1], np.float32)
    softplus = lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)  # noqa: E731
    pos, neg = [], []
    for b in range(3):
        for i in range(4):
            if not nodes_mask[b, i]:
                continue
            for c in range(3):
                s = float(nodes[b, i] @ graphs[c])
                if c == b:
                    pos.append(math.log(2) - softplus(-s))
                else:
                    neg.append(softplus(-s) + s - math.log(2))
    loss, per = jax.jit(gcl_losses.local_global_jsd)(jnp.asarray(nodes, jnp.float32), jnp.asarray(graphs, jnp.float32),
                                            jnp.asarray(nodes_mask), jnp.asarray(valid))
    assert float(loss) == pytest.approx(np.mean(neg) - np.mean(pos), rel=1e-5)
    assert per.shape == (3,) and np.all(np.isfinite(np.asarray(per)))
