"""Look-into-Object targets and losses as pure functions: OEL pseudo-masks and SCL polar coordinates.

Object-extent learning (OEL) builds, for every image, a pseudo-mask from how
well each of its feature-map positions matches *some* position of the other
images of its group (same-class positives); the mask predictor regresses it.
Spatial-context learning (SCL) predicts, for every position, its polar
coordinates (distance and angle) relative to an anchor position inside the
object; the angle term is centred per image, so a global rotation of all
predicted angles costs nothing.

Shapes: a group holds ``G = P + 1`` images (an anchor and its P positives),
``S = N * N`` feature-map positions, ``C`` channels.

References:
  Zhou, Bai, Zhang, Zhao & Mei, "Look-into-Object: Self-supervised Structure
  Modeling for Object Recognition", CVPR 2020 (arXiv 2003.14142).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GROUPINGS = ("anchor", "reference")


def oel_targets(features: jax.Array) -> jax.Array:
    """OEL pseudo-masks of one group: mean over the other images of the best dot-product match.

    ``M[a, i] = 1/(G-1) * sum_{b != a} max_j <f[a, i], f[b, j]> / C``.

    Args:
      features: float [G, S, C], G >= 2 images of one group (flattened maps).

    Returns:
      float [G, S], every image's pseudo-mask (every member takes its turn as
      the main image).

    References:
      Zhou et al., CVPR 2020, sec. 3.2 (object-extent learning).
    """
    group, _, channels = features.shape
    similarity = jnp.einsum("asc,btc->abst", features, features) / channels  # [G, G, S, S]
    best = similarity.max(-1)  # [G, G, S]: best match of position s of a anywhere in b
    others = 1.0 - jnp.eye(group, dtype=features.dtype)
    return jnp.einsum("abs,ab->as", best, others) / (group - 1)


def regroup(values: jax.Array, grouping: str) -> jax.Array:
    """Arranges per-image arrays [B, G, ...] (anchor b with its positives) into OEL groups.

    ``anchor``: unchanged, each group is one anchor and its same-class positives.
    ``reference``: the grouping of the reference code, which stacks the images
    as ``[all anchors; all 1st positives; ...]`` and then takes G consecutive
    rows per group, so groups mix anchors of different classes.

    Args:
      values: [B, G, ...] per-image values in anchor-major order.
      grouping: one of :data:`GROUPINGS`.

    Returns:
      [B, G, ...]: group k, member g.

    References:
      Zhou et al., CVPR 2020; JDAI-CV/LIO ``utils/rela/rela_cal.py`` (reference grouping).
    """
    if grouping == "anchor":
        return values
    if grouping != "reference":
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    b, g = values.shape[:2]
    return jnp.swapaxes(values, 0, 1).reshape((b, g) + values.shape[2:])


def ungroup(values: jax.Array, grouping: str) -> jax.Array:
    """The inverse of :func:`regroup`: [B, G, ...] per group member back to anchor-major order."""
    if grouping == "anchor":
        return values
    if grouping != "reference":
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    b, g = values.shape[:2]
    return jnp.swapaxes(values.reshape((g, b) + values.shape[2:]), 0, 1)


def grouped_oel_targets(features: jax.Array, grouping: str = "anchor", stop_gradient: bool = False) -> jax.Array:
    """OEL pseudo-masks of a batch of groups.

    Args:
      features: float [B, G, S, C] in anchor-major order (anchor b, member g).
      grouping: ``anchor`` (groups of same-class images, the paper) or
        ``reference`` (the reference code's grouping, see :func:`regroup`).
      stop_gradient: detach the target (the reference code lets gradients flow
        into the features through it).

    Returns:
      float [B, G, S], aligned with ``features`` image for image.

    References:
      Zhou et al., CVPR 2020, eq. for M(I) in sec. 3.2.
    """
    targets = ungroup(jax.vmap(oel_targets)(regroup(features, grouping)), grouping)
    return jax.lax.stop_gradient(targets) if stop_gradient else targets


def oel_loss(predicted: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error between predicted masks and pseudo-masks (any equal shapes)."""
    return jnp.mean(jnp.square(predicted - targets))


def object_region(mask: jax.Array) -> jax.Array:
    """Binary object region ``m > mean(m)`` per image; float [B, S] from float [B, S] (no gradient)."""
    mask = jax.lax.stop_gradient(mask)
    return (mask > mask.mean(-1, keepdims=True)).astype(mask.dtype)


def anchor_position(structure: jax.Array, region: jax.Array) -> jax.Array:
    """The SCL anchor: argmax over positions of the channel-mean structure response inside the object.

    Args:
      structure: float [B, S, C'] structure features h.
      region: float [B, S] binary object region (all ones: no mask, as the detection variant).

    Returns:
      int32 [B] flat position index of the anchor (no gradient).
    """
    score = jax.lax.stop_gradient(structure.mean(-1) * region)
    return jnp.argmax(score, axis=-1).astype(jnp.int32)


def polar_targets(anchor: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Polar coordinates of every grid cell relative to the anchor cell.

    With row r and column c, ``delta = ((r - r_o) / N, (c - c_o) / N)``,
    ``d = ||delta||`` and ``theta = (atan2(delta_col, delta_row) / pi + 1) / 2``
    in (0, 1] (0.5 at the anchor itself, where atan2(0, 0) = 0).

    Args:
      anchor: int [B] flat anchor index in [0, N*N).
      size: N, the side of the square grid.

    Returns:
      ``(distance, angle)``, each float32 [B, N*N].

    References:
      Zhou et al., CVPR 2020, sec. 3.3 (spatial context learning).
    """
    cells = jnp.arange(size * size)
    rows, cols = cells // size, cells % size
    d_row = (rows[None, :] - (anchor // size)[:, None]).astype(jnp.float32) / size
    d_col = (cols[None, :] - (anchor % size)[:, None]).astype(jnp.float32) / size
    distance = jnp.sqrt(d_row ** 2 + d_col ** 2)
    angle = (jnp.arctan2(d_col, d_row) / jnp.pi + 1.0) / 2.0
    return distance, angle


def scl_loss(predicted: jax.Array, anchor: jax.Array, region: jax.Array, size: int
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Spatial-context loss: squared distance error plus the rotation-centred angle error, on the object.

    Per cell i: ``(d_hat - d)^2 + (g - mean_i g)^2`` with ``g = (theta_hat -
    theta) mod 1`` (wrapped into [0, 1)) and the mean over all N*N cells of
    the image; masked by the object region and averaged over all B*N*N cells.
    Adding a constant to every predicted angle of an image (mod 1) leaves the
    angle term unchanged.

    Args:
      predicted: float [B, S, 2] predicted (distance, angle) per cell.
      anchor: int [B] anchor cell.
      region: float [B, S] binary object region.
      size: N with S = N*N.

    Returns:
      ``(loss, {"scl_distance": ..., "scl_angle": ...})`` scalars.

    References:
      Zhou et al., CVPR 2020, sec. 3.3; JDAI-CV/LIO ``models/coord_predict.py``.
    """
    distance, angle = polar_targets(anchor, size)
    dist_term = jnp.square(predicted[..., 0] - distance)
    gap = predicted[..., 1] - angle
    gap = jnp.where(gap < 0, gap + 1.0, gap)
    angle_term = jnp.square(gap - gap.mean(-1, keepdims=True))
    dist_part = jnp.mean(dist_term * region)
    angle_part = jnp.mean(angle_term * region)
    return dist_part + angle_part, {"scl_distance": dist_part, "scl_angle": angle_part}
