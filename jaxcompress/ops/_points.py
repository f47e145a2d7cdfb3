"""Point-cloud ops in pure JAX: farthest point sampling, kNN grouping, Chamfer distance.

Every op has static output sizes (the number of samples, the neighbourhood
size), so it jits, vmaps and lowers for any backend through plain XLA (no
custom calls, no CUDA extension). Leading batch dimensions are handled by
``jax.vmap`` inside the public functions, so callers pass ``[N, 3]`` or
``[B, N, 3]`` alike.

References: Qi et al., "PointNet++: Deep Hierarchical Feature Learning on Point
Sets in a Metric Space", NeurIPS 2017 (FPS + kNN grouping); Pang et al.,
"Masked Autoencoders for Point Cloud Self-supervised Learning", ECCV 2022
(Point-MAE: grouping and Chamfer loss); Fan, Su, Guibas, "A Point Set
Generation Network for 3D Object Reconstruction", CVPR 2017 (Chamfer distance).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

ChamferNorm = Literal["l1", "l2"]


def _check_points(points: jax.Array, name: str, min_ndim: int = 2) -> None:
    shape = jnp.shape(points)
    if len(shape) < min_ndim or shape[-1] < 1:
        raise ValueError(f"{name} must have shape [..., num_points, dims]; got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(points), jnp.floating):
        raise ValueError(f"{name} must be a floating-point array; got dtype {jnp.result_type(points)}")


def _batched(fn, *args, core_ndims: tuple[int, ...]):
    """Applies ``fn`` to args whose leading dims (beyond ``core_ndims``) are vmapped together."""
    extra = jnp.ndim(args[0]) - core_ndims[0]
    for _ in range(extra):
        fn = jax.vmap(fn)
    return fn(*args)


def _fps_single(points: jax.Array, start: jax.Array, num_samples: int) -> jax.Array:
    n = points.shape[0]
    first = jnp.clip(start.astype(jnp.int32), 0, n - 1)

    def body(i, state):
        idx, dmin = state
        last = points[idx[i - 1]]
        dmin = jnp.minimum(dmin, jnp.sum((points - last) ** 2, axis=-1))
        return idx.at[i].set(jnp.argmax(dmin).astype(jnp.int32)), dmin

    idx0 = jnp.zeros((num_samples,), jnp.int32).at[0].set(first)
    dmin0 = jnp.full((n,), jnp.inf, points.dtype)
    idx, _ = jax.lax.fori_loop(1, num_samples, body, (idx0, dmin0))
    return idx


def farthest_point_sampling(points: jax.Array, num_samples: int, start: jax.Array | int = 0) -> jax.Array:
    """Indices of ``num_samples`` points chosen by farthest point sampling.

    Greedy: begin at ``start``; each next point is the one whose squared
    distance to the chosen set is largest (the first such point on ties, as
    ``argmax`` does).

    Args:
        points: [..., N, D] float (D = 3 for point clouds).
        num_samples: S <= N, static.
        start: index of the first point: an int or an int array of the leading
            shape ``[...]`` (random starts in training, 0 in tests).

    Returns:
        [..., S] int32 indices into the N axis.

    References: Qi et al., PointNet++, NeurIPS 2017 (sampling layer).
    """
    _check_points(points, "points")
    n = jnp.shape(points)[-2]
    if not (isinstance(num_samples, int) and 1 <= num_samples <= n):
        raise ValueError(f"num_samples must be an int in [1, num_points={n}]; got {num_samples!r}")
    start = jnp.broadcast_to(jnp.asarray(start, jnp.int32), jnp.shape(points)[:-2])
    return _batched(lambda p, s: _fps_single(p, s, num_samples), points, start, core_ndims=(2, 0))


def pairwise_sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared Euclidean distances ``[..., M, K]`` between ``a [..., M, D]`` and ``b [..., K, D]``.

    Computed as a sum of squared differences (not ``|a|^2 + |b|^2 - 2ab``),
    which is exact to rounding and never negative.

    References: Fan, Su, Guibas, CVPR 2017.
    """
    return jnp.sum((a[..., :, None, :] - b[..., None, :, :]) ** 2, axis=-1)


def knn_indices(points: jax.Array, queries: jax.Array, k: int) -> jax.Array:
    """Indices of the ``k`` nearest ``points`` of every query, nearest first.

    Args:
        points: [..., N, D].
        queries: [..., G, D] with the same leading dims.
        k: neighbours per query, static, ``k <= N``.

    Returns:
        [..., G, k] int32; a query that is one of the points has itself first.

    References: Qi et al., PointNet++, NeurIPS 2017 (grouping layer, kNN variant).
    """
    _check_points(points, "points")
    _check_points(queries, "queries")
    n = jnp.shape(points)[-2]
    if not (isinstance(k, int) and 1 <= k <= n):
        raise ValueError(f"k must be an int in [1, num_points={n}]; got {k!r}")
    if jnp.shape(points)[:-2] != jnp.shape(queries)[:-2]:
        raise ValueError(f"points and queries must share leading dims; got {jnp.shape(points)} and "
                         f"{jnp.shape(queries)}")
    d2 = pairwise_sq_distances(queries, points)
    _, idx = jax.lax.top_k(-d2, k)
    return idx.astype(jnp.int32)


def gather_points(points: jax.Array, idx: jax.Array) -> jax.Array:
    """``points[..., idx, :]`` per batch: ``[..., N, D]`` and ``[..., *I]`` int -> ``[..., *I, D]``.

    References: Qi et al., PointNet++, NeurIPS 2017.
    """
    lead = jnp.ndim(points) - 2
    take = lambda p, i: p[i]
    for _ in range(lead):
        take = jax.vmap(take)
    return take(points, idx)


def knn_group(points: jax.Array, centers: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` nearest points of every center, in the center's local frame.

    Args:
        points: [..., N, 3].
        centers: [..., G, 3].
        k: neighbourhood size, static.

    Returns:
        (neighbourhoods [..., G, k, 3] as ``points[idx] - center``, idx [..., G, k] int32).

    References: Pang et al., Point-MAE, ECCV 2022 (``Group``: FPS centers, kNN patches).
    """
    idx = knn_indices(points, centers, k)
    return gather_points(points, idx) - centers[..., :, None, :], idx


def group_points(points: jax.Array, num_groups: int, group_size: int,
                 start: jax.Array | int = 0) -> tuple[jax.Array, jax.Array]:
    """Point-MAE tokenisation: FPS centers, then kNN patches around them.

    Args:
        points: [..., N, 3].
        num_groups: G centers (static).
        group_size: k points per patch (static); a center is its own neighbour.
        start: FPS start index (int or [...] int array).

    Returns:
        (centers [..., G, 3], neighbourhoods [..., G, k, 3] in local coordinates).

    References: Pang et al., Point-MAE, ECCV 2022, sec. 3.1.
    """
    centers = gather_points(points, farthest_point_sampling(points, num_groups, start))
    patches, _ = knn_group(points, centers, group_size)
    return centers, patches


def _safe_sqrt(x: jax.Array) -> jax.Array:
    # sqrt has an infinite derivative at 0 (coincident points); give it 0 there.
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def chamfer_distance(p: jax.Array, q: jax.Array, norm: ChamferNorm = "l2") -> jax.Array:
    """Chamfer distance between point sets, per leading index.

    ``l2`` (Point-MAE's training loss, squared distances)::

        CD2(P, Q) = mean_p min_q |p - q|^2 + mean_q min_p |p - q|^2

    ``l1`` (Point-MAE's ``ChamferDistanceL1``, plain distances, averaged)::

        CD1(P, Q) = (mean_p min_q |p - q| + mean_q min_p |p - q|) / 2

    Args:
        p: [..., M, D].
        q: [..., K, D] with the same leading dims.
        norm: ``"l2"`` or ``"l1"``.

    Returns:
        [...] float: one distance per leading index (a scalar for unbatched sets).

    References: Fan, Su, Guibas, CVPR 2017; Pang et al., Point-MAE, ECCV 2022.
    """
    _check_points(p, "p")
    _check_points(q, "q")
    if jnp.shape(p)[:-2] != jnp.shape(q)[:-2] or jnp.shape(p)[-1] != jnp.shape(q)[-1]:
        raise ValueError(f"p and q must share leading dims and point dims; got {jnp.shape(p)} and {jnp.shape(q)}")
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2'; got {norm!r}")
    d2 = pairwise_sq_distances(p, q)
    p_to_q, q_to_p = jnp.min(d2, axis=-1), jnp.min(d2, axis=-2)
    if norm == "l2":
        return jnp.mean(p_to_q, axis=-1) + jnp.mean(q_to_p, axis=-1)
    return 0.5 * (jnp.mean(_safe_sqrt(p_to_q), axis=-1) + jnp.mean(_safe_sqrt(q_to_p), axis=-1))
