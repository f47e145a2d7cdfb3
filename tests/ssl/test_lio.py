"""Look-into-Object: OEL pseudo-masks, grouping, polar targets and the SCL loss against NumPy loops;
the heads' invariants; the inference model is the plain backbone (same tree, outputs and cost)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.ssl import lio_targets as targets
from jaxcompress.ssl.lio import LIOClassifier, LIOConfig, SCLHead, build_backbone, lio_objective
from tests.ssl import lio_numpy_reference as ref


def _object_maps(rng: np.random.Generator, images: int, size: int, channels: int, cells: list[list[int]]):
    """Hand-made feature maps: one shared 'object' vector at the given cells, weak noise elsewhere."""
    obj = rng.normal(size=channels)
    maps = 0.1 * rng.normal(size=(images, size * size, channels))
    for k in range(images):
        maps[k, cells[k]] = obj + 0.05 * rng.normal(size=(len(cells[k]), channels))
    return maps.astype(np.float32)


def test_oel_target_matches_loops_and_finds_the_shared_object():
    rng = np.random.default_rng(0)
    cells = [[0, 1, 5], [10, 11, 15], [7, 8]]
    group = _object_maps(rng, 3, 4, 6, cells)
    got = np.asarray(targets.oel_targets(jnp.asarray(group)))
    np.testing.assert_allclose(got, ref.oel_target(group.astype(np.float64)), rtol=1e-5, atol=1e-6)
    for k in range(3):  # The object cells are exactly the top cells of every image's pseudo-mask.
        top = np.argsort(-got[k])[:len(cells[k])]
        assert sorted(top.tolist()) == sorted(cells[k])


def test_oel_target_of_identical_images_is_the_self_match():
    rng = np.random.default_rng(1)
    one = rng.normal(size=(9, 5)).astype(np.float32)
    group = np.stack([one] * 3)
    expected = (one @ one.T / 5).max(-1)
    got = np.asarray(targets.oel_targets(jnp.asarray(group)))
    np.testing.assert_allclose(got, np.stack([expected] * 3), rtol=1e-5)


@pytest.mark.parametrize("grouping", targets.GROUPINGS)
def test_grouped_targets_match_loops_over_the_groups(grouping):
    rng = np.random.default_rng(2)
    b, g, s, c = 3, 3, 4, 5
    feats = rng.normal(size=(b, g, s, c)).astype(np.float32)
    got = np.asarray(targets.grouped_oel_targets(jnp.asarray(feats), grouping))
    ids = [(k, m) for k in range(b) for m in range(g)]  # anchor-major image ids
    groups = [ids[k * g:(k + 1) * g] for k in range(b)] if grouping == "anchor" else ref.reference_groups(ids, g)
    expected = np.zeros((b, g, s))
    for members in groups:
        values = ref.oel_target(np.stack([feats[k, m] for k, m in members]).astype(np.float64))
        for row, (k, m) in enumerate(members):
            expected[k, m] = values[row]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_reference_grouping_reproduces_the_worked_example():
    # B = 2 anchors, P = 3 positives: anchor-major rows a0 p0(a0) p1(a0) p2(a0) a1 p0(a1) p1(a1) p2(a1).
    names = np.array([["a0", "p0(a0)", "p1(a0)", "p2(a0)"], ["a1", "p0(a1)", "p1(a1)", "p2(a1)"]])
    codes = np.arange(8).reshape(2, 4)
    grouped = np.asarray(targets.regroup(jnp.asarray(codes), "reference"))
    assert [sorted(names.reshape(-1)[grouped[k]].tolist()) for k in range(2)] == [
        sorted(["a0", "a1", "p0(a0)", "p0(a1)"]), sorted(["p1(a0)", "p1(a1)", "p2(a0)", "p2(a1)"])]
    np.testing.assert_array_equal(np.asarray(targets.ungroup(jnp.asarray(grouped), "reference")), codes)
    # Anchor grouping keeps every group within one class.
    assert np.array_equal(np.asarray(targets.regroup(jnp.asarray(codes), "anchor")), codes)


def test_polar_targets_match_loops():
    size = 5
    anchors = np.array([0, 12, 24, 7])
    distance, angle = targets.polar_targets(jnp.asarray(anchors), size)
    for k, a in enumerate(anchors):
        d, t = ref.polar(int(a), size)
        np.testing.assert_allclose(np.asarray(distance[k]), d, atol=1e-6)
        np.testing.assert_allclose(np.asarray(angle[k]), t, atol=1e-6)
        assert distance[k, a] == 0.0
    assert float(angle.min()) > 0.0 and float(angle.max()) <= 1.0


def test_scl_loss_matches_loops():
    rng = np.random.default_rng(3)
    b, size = 3, 4
    pred = rng.uniform(0, 1.2, size=(b, size * size, 2)).astype(np.float32)
    anchors = np.array([5, 0, 15])
    region = (rng.random((b, size * size)) > 0.4).astype(np.float32)
    loss, parts = targets.scl_loss(jnp.asarray(pred), jnp.asarray(anchors), jnp.asarray(region), size)
    np.testing.assert_allclose(float(loss), ref.scl_loss(pred.astype(np.float64), anchors, region, size), rtol=1e-5)
    np.testing.assert_allclose(float(parts["scl_distance"] + parts["scl_angle"]), float(loss), rtol=1e-6)


def test_angle_term_ignores_a_global_rotation_of_the_predictions():
    rng = np.random.default_rng(4)
    size = 4
    anchors = jnp.asarray([6])
    _, angle = targets.polar_targets(anchors, size)
    # Predictions a little above the targets, so the gaps stay inside [0, 1) after the shift (no wrap).
    pred = np.stack([rng.uniform(0, 1, size * size), np.asarray(angle[0]) + rng.uniform(0, 0.3, size * size)], -1)
    region = jnp.ones((1, size * size))
    _, before = targets.scl_loss(jnp.asarray(pred[None], jnp.float32), anchors, region, size)
    pred[:, 1] += 0.4
    _, after = targets.scl_loss(jnp.asarray(pred[None], jnp.float32), anchors, region, size)
    np.testing.assert_allclose(float(after["scl_angle"]), float(before["scl_angle"]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(after["scl_distance"]), float(before["scl_distance"]), rtol=1e-6)


def test_scl_head_anchor_matches_loops_and_predicts_zero_there():
    rng = np.random.default_rng(5)
    feats = jnp.asarray(rng.normal(size=(3, 4, 4, 6)), jnp.float32)
    mask = jnp.asarray(rng.normal(size=(3, 16)), jnp.float32)
    head = SCLHead()
    params = head.init(jax.random.key(0), feats, targets.object_region(mask))
    pred, anchor = head.apply(params, feats, targets.object_region(mask))
    kernel = np.asarray(params["params"]["structure"]["kernel"][0, 0])
    bias = np.asarray(params["params"]["structure"]["bias"])
    structure = np.maximum(np.maximum(np.asarray(feats), 0).reshape(3, 16, 6) @ kernel + bias, 0)
    np.testing.assert_array_equal(np.asarray(anchor), ref.anchor_cell(structure, np.asarray(mask)))
    for k in range(3):
        assert np.all(np.asarray(pred[k, int(anchor[k])]) == 0.0)
    assert np.all(np.asarray(pred) >= 0.0)


@pytest.mark.parametrize("backbone", ["cnn", "resnet"])
def test_inference_is_the_plain_backbone(backbone):
    config = LIOConfig(backbone=backbone, channels=(8, 16), hidden_size=16, width=8, positives=1)
    plain = build_backbone(config, 5)
    model = LIOClassifier(plain, config)
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 1))
    params = model.init(jax.random.key(0), x, train=True)["params"]
    assert set(params) == {"backbone", "oel", "scl"}
    deployed = params["backbone"]
    plain_params = plain.init(jax.random.key(0), x)["params"]
    assert jax.tree.structure(deployed) == jax.tree.structure(plain_params)
    assert jax.tree.map(jnp.shape, deployed) == jax.tree.map(jnp.shape, plain_params)

    def lio_forward(p, inputs):
        return model.apply({"params": p}, inputs, train=False)

    def plain_forward(p, inputs):
        return plain.apply({"params": p}, inputs)

    full = jax.jit(lio_forward)(params, x)
    only_backbone = jax.jit(lio_forward)({"backbone": deployed}, x)  # heads' params absent: never read
    np.testing.assert_array_equal(np.asarray(full), np.asarray(jax.jit(plain_forward)(deployed, x)))
    np.testing.assert_array_equal(np.asarray(only_backbone), np.asarray(full))
    cost_lio = jax.jit(lio_forward).lower(params, x).cost_analysis()
    cost_plain = jax.jit(plain_forward).lower(deployed, x).cost_analysis()
    cost_lio, cost_plain = [c[0] if isinstance(c, (list, tuple)) else c for c in (cost_lio, cost_plain)]
    assert cost_lio["flops"] == cost_plain["flops"]


def test_objective_weights_and_missing_heads():
    config = LIOConfig(channels=(8, 16), hidden_size=16, positives=1)
    x = jax.random.normal(jax.random.key(2), (4, 16, 16, 1))
    labels = jnp.asarray([0, 0, 1, 1])
    for oel_w, scl_w in ((0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.3, 0.2)):
        c = LIOConfig(channels=(8, 16), hidden_size=16, positives=1, oel_weight=oel_w, scl_weight=scl_w)
        model = LIOClassifier(build_backbone(c, 3), c)
        params = model.init(jax.random.key(0), x, train=True)["params"]
        assert ("oel" in params) == (oel_w > 0) and ("scl" in params) == (scl_w > 0)
        loss, metrics = lio_objective(c, model.apply({"params": params}, x, train=True), labels)
        expected = metrics["ce"] + oel_w * metrics.get("oel", 0.0) + scl_w * metrics.get("scl", 0.0)
        np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
    assert config.group_size == 2
