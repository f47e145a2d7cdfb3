"""Point ops (FPS, kNN grouping, Chamfer) against NumPy/SciPy references; jit, vmap and accelerator lowering.

References: Qi et al., PointNet++, NeurIPS 2017; Pang et al., Point-MAE, ECCV 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

from jaxcompress.ops import chamfer_distance, farthest_point_sampling, group_points, knn_group, knn_indices


def fps_numpy(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """A slow loop: distances to the chosen set, recomputed from scratch each step."""
    chosen = [start]
    for _ in range(1, n):
        d = np.min(((points[:, None, :] - points[chosen][None]) ** 2).sum(-1), axis=1)
        chosen.append(int(np.argmax(d)))
    return np.asarray(chosen)


def chamfer_numpy(p: np.ndarray, q: np.ndarray, norm: str) -> float:
    dp, _ = cKDTree(q).query(p)
    dq, _ = cKDTree(p).query(q)
    if norm == "l2":
        return float(np.mean(dp**2) + np.mean(dq**2))
    return float(0.5 * (np.mean(dp) + np.mean(dq)))


@pytest.fixture(scope="module")
def clouds() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 200, 3)).astype(np.float32)


def test_fps_matches_numpy_loop_with_batch_and_start(clouds):
    starts = np.array([0, 7, 199])
    got = np.asarray(jax.jit(farthest_point_sampling, static_argnums=1)(clouds, 16, starts))
    for b in range(3):
        np.testing.assert_array_equal(got[b], fps_numpy(clouds[b].astype(np.float64), 16, starts[b]))
    assert got.dtype == np.int32 and got.shape == (3, 16)
    assert len(set(got[0].tolist())) == 16  # distinct points


def test_knn_matches_kdtree_and_center_is_own_neighbour(clouds):
    centers_idx = np.asarray(farthest_point_sampling(clouds, 8))
    centers = np.take_along_axis(clouds, centers_idx[..., None], axis=1)
    idx = np.asarray(knn_indices(clouds, centers, 10))
    patches, idx2 = knn_group(clouds, centers, 10)
    np.testing.assert_array_equal(idx, np.asarray(idx2))
    for b in range(3):
        _, want = cKDTree(clouds[b]).query(centers[b], k=10)
        np.testing.assert_array_equal(idx[b], want)
        np.testing.assert_array_equal(idx[b][:, 0], centers_idx[b])
        np.testing.assert_allclose(np.asarray(patches[b]), clouds[b][want] - centers[b][:, None], atol=1e-6)


def test_group_points_shapes_and_vmap():
    pts = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 4, 128, 3)).astype(np.float32))
    centers, patches = jax.jit(group_points, static_argnums=(1, 2))(pts, 16, 8)
    assert centers.shape == (2, 4, 16, 3) and patches.shape == (2, 4, 16, 8, 3)
    vm_centers, _ = jax.vmap(lambda p: group_points(p, 16, 8))(pts)
    np.testing.assert_allclose(np.asarray(vm_centers), np.asarray(centers))
    np.testing.assert_allclose(np.asarray(patches[..., 0, :]), 0.0, atol=1e-7)  # the center itself


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_chamfer_matches_kdtree(norm):
    rng = np.random.default_rng(2)
    p = rng.normal(size=(4, 50, 3)).astype(np.float32)
    q = rng.normal(size=(4, 37, 3)).astype(np.float32)
    got = np.asarray(jax.jit(chamfer_distance, static_argnames="norm")(p, q, norm=norm))
    want = [chamfer_numpy(p[i].astype(np.float64), q[i].astype(np.float64), norm) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_chamfer_identity_symmetry_permutation_and_finite_grad(norm):
    rng = np.random.default_rng(3)
    p = rng.normal(size=(20, 3)).astype(np.float32)
    q = rng.normal(size=(20, 3)).astype(np.float32)
    assert float(chamfer_distance(p, p, norm)) == 0.0
    np.testing.assert_allclose(chamfer_distance(p, q, norm), chamfer_distance(q, p, norm), rtol=1e-6)
    np.testing.assert_allclose(chamfer_distance(p[rng.permutation(20)], q, norm), chamfer_distance(p, q, norm),
                               rtol=1e-6)
    grad = jax.grad(lambda x: chamfer_distance(x, p, norm))(p)  # coincident points: sqrt at 0
    assert np.all(np.isfinite(np.asarray(grad)))


def test_bad_arguments_are_refused():
    pts = jnp.zeros((10, 3))
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(pts, 11)
    with pytest.raises(ValueError, match="k must be"):
        knn_indices(pts, pts[:2], 0)
    with pytest.raises(ValueError, match="norm"):
        chamfer_distance(pts, pts, "l3")
    with pytest.raises(ValueError, match="floating-point"):
        farthest_point_sampling(jnp.zeros((10, 3), jnp.int32), 2)


def _mae_grouping_and_loss(points, target):
    centers, patches = group_points(points, 16, 8)
    return jnp.mean(chamfer_distance(patches, target, "l2")) + jnp.sum(centers)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_ops_lower_for_accelerators(platform):
    specs = (jax.ShapeDtypeStruct((4, 256, 3), jnp.float32), jax.ShapeDtypeStruct((4, 16, 8, 3), jnp.float32))
    fn = jax.jit(jax.value_and_grad(_mae_grouping_and_loss, argnums=1))
    text = jax.export.export(fn, platforms=[platform])(*specs).mlir_module()
    assert "stablehlo.while" in text  # the FPS loop
    assert "custom_call" not in text or "Sharding" in text  # pure XLA: no kernel calls


def test_exported_module_runs_on_cpu():
    pts = np.random.default_rng(4).normal(size=(2, 64, 3)).astype(np.float32)
    exported = jax.export.export(jax.jit(lambda p: farthest_point_sampling(p, 8)), platforms=["cpu", "cuda", "tpu"])(
        jax.ShapeDtypeStruct(pts.shape, jnp.float32))
    np.testing.assert_array_equal(np.asarray(exported.call(pts)), np.stack([fps_numpy(p, 8) for p in pts]))
