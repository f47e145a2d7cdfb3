"""What a point Transformer learned: linear CKA between layers, attention distance, attention maps.

* :func:`linear_cka` / :func:`cka_matrix`: centred kernel alignment with a
  linear kernel between two representations of the same examples,
  ``||Yᵀ X||_F² / (||Xᵀ X||_F ||Yᵀ Y||_F)`` for column-centred ``X``, ``Y``
  (1 for representations equal up to rotation and isotropic scale).
* :func:`mean_attention_distance`: per layer and head, ``Σ_j A_ij ‖c_i − c_j‖``
  averaged over queries i and clouds, with c the patch centers: how far a
  head looks (the locality measure behind ExpPoint-MAE's data-quantity
  finding). Extra tokens without a center (a cls token) are left out, and the
  remaining weights of each query are renormalised to sum to one.
* :func:`attention_to_points`: one query's attention spread back onto the
  cloud's points (each point takes the weight of its patch), for plots.

References: Kornblith et al., "Similarity of Neural Network Representations
Revisited", ICML 2019 (linear CKA); Dosovitskiy et al., ICLR 2021 (mean
attention distance); Romanelis et al., "ExpPoint-MAE", IEEE Access 2024.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def linear_cka(x: jax.Array, y: jax.Array) -> jax.Array:
    """Linear CKA between ``x [n, d1]`` and ``y [n, d2]`` (rows = the same n examples) -> scalar in [0, 1].

    References: Kornblith et al., ICML 2019, eq. (2) with a linear kernel.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be [n, d] with the same n; got {x.shape} and {y.shape}")
    x = x.astype(jnp.float32) - jnp.mean(x, axis=0, keepdims=True)
    y = y.astype(jnp.float32) - jnp.mean(y, axis=0, keepdims=True)
    cross = jnp.sum((y.T @ x) ** 2)
    return cross / jnp.maximum(jnp.linalg.norm(x.T @ x) * jnp.linalg.norm(y.T @ y), 1e-12)


def cka_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """CKA between every layer of ``a [La, n, d1]`` and every layer of ``b [Lb, n, d2]`` -> ``[La, Lb]``.

    References: Kornblith et al., ICML 2019 (layer-by-layer CKA heat maps).
    """
    return jax.vmap(lambda x: jax.vmap(lambda y: linear_cka(x, y))(b))(a)


def mean_attention_distance(attention: jax.Array, centers: jax.Array) -> jax.Array:
    """Attention-weighted distance between patch centers, per layer and head.

    Args:
        attention: ``[L, B, H, S, S]`` probabilities (rows sum to 1); the first
            G tokens are patches, any others (cls) are ignored.
        centers: ``[B, G, 3]`` patch centers.

    Returns:
        ``[L, H]``: mean over clouds and patch queries of ``Σ_j A_ij ‖c_i − c_j‖``
        with the patch-key weights renormalised per query.

    References: Dosovitskiy et al., ICLR 2021 (appendix D.7); Romanelis et al., ExpPoint-MAE.
    """
    g = centers.shape[1]
    a = attention[..., :g, :g]
    a = a / jnp.maximum(jnp.sum(a, axis=-1, keepdims=True), 1e-12)
    dist = jnp.sqrt(jnp.sum((centers[:, :, None] - centers[:, None]) ** 2, axis=-1))  # [B, G, G]
    per_query = jnp.sum(a * dist[None, :, None], axis=-1)  # [L, B, H, G]
    return jnp.mean(per_query, axis=(1, 3))


def attention_to_points(attention_row: jax.Array, patch_index: jax.Array, num_points: int) -> jax.Array:
    """Per-point weight of one query's attention over patches (a point in several patches takes the largest).

    Args:
        attention_row: ``[G]`` weights of one query over the patches.
        patch_index: ``[G, k]`` indices of each patch's points.
        num_points: N.

    Returns:
        ``[N]`` weights (0 for points in no patch).

    References: Romanelis et al., ExpPoint-MAE (attention rendered on the cloud).
    """
    values = jnp.broadcast_to(attention_row[:, None], patch_index.shape)
    return jnp.zeros((num_points,)).at[patch_index.reshape(-1)].max(values.reshape(-1))
