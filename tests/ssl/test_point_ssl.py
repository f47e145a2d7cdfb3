"""Point-MAE / MoCo pieces, fine-tuning optimiser regimes and the analysis tools against NumPy references.

References: Pang et al., Point-MAE, ECCV 2022; He et al., MoCo, CVPR 2020; Kornblith et al., ICML 2019;
Romanelis et al., ExpPoint-MAE, IEEE Access 2024.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcompress.ssl import explain
from jaxcompress.ssl import point_ssl as ps
from jaxcompress.tasks.point import label_smoothed_ce, regime_groups
from jaxcompress.train.config import OptimConfig
from jaxcompress.train.freeze import NEVER, staged_optimizer
from jaxcompress.train.optim import learning_rate_schedule

TINY = ps.PointSSLConfig(num_groups=8, group_size=4, width=16, depth=2, num_heads=2, decoder_depth=1,
                         pointnet_width=4, head_hidden=16, proj_dim=8, queue_size=8, drop_path=0.0)


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """CKA through the centred Gram matrices (HSIC form), a different route from the feature form."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)))


def test_linear_cka_matches_gram_form_and_invariances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(40, 9))
    np.testing.assert_allclose(float(explain.linear_cka(x, y)), cka_numpy(x, y), rtol=1e-4)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    np.testing.assert_allclose(float(explain.linear_cka(x, 3.0 * x @ q + 1.0)), 1.0, rtol=1e-5)
    z = rng.normal(size=(40, 6))
    mat = np.asarray(explain.cka_matrix(jnp.stack([x, x ** 2]), jnp.stack([z, x, x ** 3])))
    np.testing.assert_allclose(mat[0], [cka_numpy(x, z), 1.0, cka_numpy(x, x ** 3)], rtol=1e-4)
    np.testing.assert_allclose(mat[1, 1], cka_numpy(x ** 2, x), rtol=1e-4)


def test_mean_attention_distance_matches_loop():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 2, 6, 6))  # L, B, H, S (5 patches + cls), S
    attn = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    centers = rng.normal(size=(3, 5, 3))
    got = np.asarray(explain.mean_attention_distance(jnp.asarray(attn), jnp.asarray(centers)))
    want = np.zeros((2, 2))
    for layer in range(2):
        for head in range(2):
            total = 0.0
            for b in range(3):
                for i in range(5):
                    w = attn[layer, b, head, i, :5] / attn[layer, b, head, i, :5].sum()
                    total += sum(w[j] * np.linalg.norm(centers[b, i] - centers[b, j]) for j in range(5))
            want[layer, head] = total / 15
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_attention_to_points_takes_patch_weights():
    row = jnp.array([0.2, 0.8])
    idx = jnp.array([[0, 1], [1, 3]])
    np.testing.assert_allclose(np.asarray(explain.attention_to_points(row, idx, 5)), [0.2, 0.8, 0, 0.8, 0])


def test_random_mask_has_exact_counts_and_partitions():
    vis, mask = ps.random_mask(jax.random.key(0), 4, 10, 6)
    assert vis.shape == (4, 4) and mask.shape == (4, 6)
    for b in range(4):
        assert sorted(np.concatenate([vis[b], mask[b]]).tolist()) == list(range(10))
    assert ps.PointSSLConfig(num_groups=64).num_masked == 38  # the paper's int(0.6 * 64)


def test_info_nce_matches_numpy():
    rng = np.random.default_rng(2)
    q, k, queue = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(7, 5))
    queue /= np.linalg.norm(queue, axis=1, keepdims=True)
    got = np.asarray(ps.info_nce(jnp.asarray(q), jnp.asarray(k), jnp.asarray(queue), 0.2))
    qn, kn = q / np.linalg.norm(q, axis=1, keepdims=True), k / np.linalg.norm(k, axis=1, keepdims=True)
    for i in range(4):
        logits = np.concatenate([[qn[i] @ kn[i]], queue @ qn[i]]) / 0.2
        np.testing.assert_allclose(got[i], -logits[0] + np.log(np.exp(logits).sum()), rtol=1e-5)


def test_label_smoothing_spreads_over_wrong_classes():
    logits = jnp.array([[2.0, 0.0, -1.0, 0.5]])
    logp = np.asarray(jax.nn.log_softmax(logits))[0]
    want = -(0.8 * logp[1] + 0.2 / 3 * (logp[0] + logp[2] + logp[3]))
    np.testing.assert_allclose(float(label_smoothed_ce(logits, jnp.array([1]), 0.2)[0]), want, rtol=1e-6)


def test_mae_loss_is_chamfer_of_masked_patches():
    import flax.linen as nn

    model = ps.PointSSLModel(ps.PointSSLConfig(**{**TINY.__dict__, "method": "mae"}))
    points = jax.random.normal(jax.random.key(1), (2, 64, 3))
    centers, patches = jax.jit(lambda p: ps.tokenize(model.cfg, p, None))(points)
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), patches, centers)["params"])
    loss = jax.jit(lambda p, x: ps.mae_per_example(model, p, x, jax.random.key(3), deterministic=True))(params, points)
    # Recompute by hand: same masks (same key split), brute-force Chamfer in NumPy.
    _, k_mask, _ = jax.random.split(jax.random.key(3), 3)
    vis, mask = ps.random_mask(k_mask, 2, TINY.num_groups, TINY.num_masked)
    apply = jax.jit(lambda p, *a: model.apply({"params": p}, *a, True, method=ps.PointSSLModel.reconstruct))
    pred = np.asarray(apply(params, ps.take_groups(patches, vis), ps.take_groups(centers, vis),
                            ps.take_groups(centers, mask)))
    target = np.asarray(ps.take_groups(patches, mask))
    d = ((pred[:, :, :, None] - target[:, :, None]) ** 2).sum(-1)
    want = (d.min(3).mean(2) + d.min(2).mean(2)).mean(1)
    np.testing.assert_allclose(np.asarray(loss), want, rtol=1e-5)
    assert pred.shape == (2, TINY.num_masked, TINY.group_size, 3)


def test_moco_optimizer_ema_and_queue():
    params = {"encoder": {"w": jnp.ones(3)}, "projector": {"w": jnp.full(2, 2.0)},
              "key": {"encoder": {"w": jnp.zeros(3)}, "projector": {"w": jnp.zeros(2)}},
              "queue": jnp.arange(12.0).reshape(6, 2), "queue_ptr": jnp.asarray(4.0), "incoming": jnp.zeros((2, 2))}
    tx = ps.moco_optimizer(optax.adamw(0.1, weight_decay=0.5), momentum=0.9)
    state = tx.init(params)
    keys = jnp.array([[7.0, 7.5], [8.0, 8.5]])
    grads = jax.tree.map(jnp.ones_like, params)
    grads["incoming"] = keys
    updates, state = jax.jit(tx.update)(grads, state, params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["key"]["encoder"]["w"], 0.1 * np.ones(3), rtol=1e-6)  # 0.9*0 + 0.1*1
    np.testing.assert_allclose(new["key"]["projector"]["w"], 0.2 * np.ones(2), rtol=1e-6)
    np.testing.assert_allclose(new["queue"][4:], keys)
    np.testing.assert_allclose(new["queue"][:4], np.arange(8.0).reshape(4, 2))
    assert float(new["queue_ptr"]) == 0.0  # (4 + 2) mod 6
    assert not np.allclose(new["encoder"]["w"], 1.0)  # the query trains
    np.testing.assert_allclose(new["incoming"], 0.0)


def test_staged_optimizer_freezes_without_decay_and_unfreezes_on_the_schedule():
    cfg = OptimConfig(name="adamw", learning_rate=0.1, schedule="cosine", warmup_steps=2, weight_decay=0.5,
                      grad_clip_norm=0.0)
    total, start = 10, 6
    params = {"head": jnp.ones(2), "frozen": jnp.ones(2), "late": jnp.ones(2)}
    labels = lambda p: {k: k for k in p}  # noqa: E731
    tx = staged_optimizer(cfg, total, labels, {"head": 0, "frozen": NEVER, "late": start})
    state = tx.init(params)
    schedule = learning_rate_schedule(cfg, total)
    grads = {k: jnp.full(2, 0.3) for k in params}
    history = []
    update = jax.jit(tx.update)
    for _ in range(total):
        updates, state = update(grads, state, params)
        history.append(jax.tree.map(np.asarray, updates))
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["frozen"], 1.0)  # neither updates nor weight decay
    for step in range(start):
        np.testing.assert_array_equal(history[step]["late"], 0.0)
    assert np.all(history[1]["head"] != 0)
    # First late update: Adam's first step is -lr * (sign(g) + wd * p) with fresh moments, at lr(start).
    lr = float(schedule(start))
    np.testing.assert_allclose(history[start]["late"], -lr * (1.0 + 0.5 * 1.0), rtol=1e-4)
    assert lr < float(schedule(2))  # the schedule went on; it did not restart at the peak


def test_regime_groups_label_the_encoder():
    params = {"encoder": {"patch_embed": {"w": 1}, "pos_embed": {"w": 1}, "blocks": {"w": 1}},
              "head": {"w": 1}, "cls_token": 1}
    embed = regime_groups(params, "embed")
    assert embed["encoder"] == {"patch_embed": {"w": "late"}, "pos_embed": {"w": "late"}, "blocks": {"w": "frozen"}}
    assert embed["head"] == {"w": "train"} and embed["cls_token"] == "train"
    assert regime_groups(params, "probe")["encoder"]["blocks"]["w"] == "frozen"
    assert regime_groups(params, "unfreeze")["encoder"]["blocks"]["w"] == "late"
    assert regime_groups(params, "full")["encoder"]["blocks"]["w"] == "train"


def test_augment_keeps_shape_and_dropout_overwrites_with_first_point():
    pts = jax.random.normal(jax.random.key(0), (3, 50, 3))
    out = jax.jit(lambda p: ps.augment(p, jax.random.key(1), rotate=True, dropout=0.9))(pts)
    assert out.shape == pts.shape
    same_as_first = np.all(np.isclose(np.asarray(out), np.asarray(out[:, :1])), axis=-1)
    assert same_as_first.sum() > 3  # dropped points were overwritten


@pytest.mark.parametrize("bad", ["nan", "few"])
def test_bad_point_clouds_are_refused(bad):
    from jaxcompress.data.point_shapes import check_point_clouds
    from jaxcompress.errors import DataError

    pts = np.zeros((2, 30, 3), np.float32)
    if bad == "nan":
        pts[1, 3, 0] = np.nan
        with pytest.raises(DataError, match="NaN"):
            check_point_clouds(pts, "points", 8)
    else:
        with pytest.raises(DataError, match="at least 32"):
            check_point_clouds(pts, "points", 32)
