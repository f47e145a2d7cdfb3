"""Parametric 3-D shapes sampled as point clouds (ModelNet-like and ScanObjectNN-like), and point-cloud checks.

Every shape is a primitive or a composition of primitives whose surface is
sampled area-proportionally in NumPy. Each sample draws its own dimensions
from a class-specific range, a small anisotropic scale, a rotation about the
up axis (z) and Gaussian jitter, and is normalised to the unit sphere (center
at the origin, farthest point at radius 1) as in Point-MAE's pipeline.

The ScanObjectNN-like variant mimics what a real scan adds: a random half-space
seen from one side is partly removed (occlusion), background points from a
floor patch and clutter blobs are mixed in, and the noise is stronger.

References: Wu et al., "3D ShapeNets", CVPR 2015 (ModelNet); Uy et al.,
"Revisiting Point Cloud Classification: A New Benchmark Dataset and
Classification Model on Real-World Data", ICCV 2019 (ScanObjectNN).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxcompress.errors import DataError

Sampler = Callable[[np.random.Generator, int], np.ndarray]


# ---------------------------------------------------------------------------
# Primitive surfaces: each returns (points [n, 3], area) for a given size.


def _split_counts(rng: np.random.Generator, n: int, areas: list[float]) -> np.ndarray:
    p = np.asarray(areas, np.float64)
    return rng.multinomial(n, p / p.sum())


def _sphere(rng, n, r=1.0, center=(0.0, 0.0, 0.0)):
    v = rng.normal(size=(n, 3))
    return r * v / np.linalg.norm(v, axis=1, keepdims=True) + np.asarray(center)


def _sphere_area(r):
    return 4 * np.pi * r * r


def _box(rng, n, size=(1.0, 1.0, 1.0), center=(0.0, 0.0, 0.0)):
    a, b, c = size
    faces = [(a * b, 2), (a * c, 1), (b * c, 0)]  # (area, fixed axis)
    counts = _split_counts(rng, n, [f[0] for f in faces for _ in range(2)])
    out = []
    for (area, axis), sign_counts in zip(faces, counts.reshape(3, 2)):
        del area
        for sign, m in zip((-1, 1), sign_counts):
            pts = (rng.uniform(-0.5, 0.5, (m, 3))) * np.asarray(size)
            pts[:, axis] = sign * np.asarray(size)[axis] / 2
            out.append(pts)
    return np.concatenate(out) + np.asarray(center)


def _box_area(size):
    a, b, c = size
    return 2 * (a * b + a * c + b * c)


def _cylinder(rng, n, r=1.0, h=1.0, caps=True, axis=2, center=(0.0, 0.0, 0.0)):
    side, cap = 2 * np.pi * r * h, np.pi * r * r
    counts = _split_counts(rng, n, [side, cap, cap] if caps else [side, 0.0, 0.0])
    theta = rng.uniform(0, 2 * np.pi, counts[0])
    parts = [np.stack([r * np.cos(theta), r * np.sin(theta), rng.uniform(-h / 2, h / 2, counts[0])], 1)]
    for sign, m in zip((-1, 1), counts[1:]):
        rad, th = r * np.sqrt(rng.uniform(0, 1, m)), rng.uniform(0, 2 * np.pi, m)
        parts.append(np.stack([rad * np.cos(th), rad * np.sin(th), np.full(m, sign * h / 2)], 1))
    pts = np.concatenate(parts)
    pts = np.roll(pts, axis - 2, axis=1)  # the cylinder's axis becomes `axis`
    return pts + np.asarray(center)


def _cylinder_area(r, h, caps=True):
    return 2 * np.pi * r * h + (2 * np.pi * r * r if caps else 0.0)


def _cone(rng, n, r=1.0, h=1.5):
    slant = np.sqrt(r * r + h * h)
    counts = _split_counts(rng, n, [np.pi * r * slant, np.pi * r * r])
    t = np.sqrt(rng.uniform(0, 1, counts[0]))  # uniform on the lateral surface
    th = rng.uniform(0, 2 * np.pi, counts[0])
    lateral = np.stack([r * t * np.cos(th), r * t * np.sin(th), h / 2 - h * t], 1)
    rad, th2 = r * np.sqrt(rng.uniform(0, 1, counts[1])), rng.uniform(0, 2 * np.pi, counts[1])
    base = np.stack([rad * np.cos(th2), rad * np.sin(th2), np.full(counts[1], -h / 2)], 1)
    return np.concatenate([lateral, base])


def _torus(rng, n, big=1.0, small=0.3):
    u, v = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    # Rejection-free area weighting: keep v with probability ~ (R + r cos v).
    keep = rng.uniform(0, 1, n) < (big + small * np.cos(v)) / (big + small)
    v = np.where(keep, v, rng.uniform(-np.pi / 2, np.pi / 2, n))
    return np.stack([(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u),
                     small * np.sin(v)], 1)


def _triangles(rng, n, tris: np.ndarray) -> np.ndarray:
    """Area-uniform samples on triangles ``tris [T, 3, 3]``."""
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    which = rng.choice(len(tris), size=n, p=areas / areas.sum())
    u, v = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tris[which]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


# ---------------------------------------------------------------------------
# Classes: a sampler per class with its own random dimensions.


def _c_sphere(rng, n):
    return _sphere(rng, n, rng.uniform(0.8, 1.2))


def _c_ellipsoid(rng, n):
    return _sphere(rng, n) * np.array([rng.uniform(1.6, 2.2), rng.uniform(0.9, 1.2), rng.uniform(0.5, 0.8)])


def _c_cube(rng, n):
    return _box(rng, n, (1.0, 1.0, 1.0))


def _c_box(rng, n):
    return _box(rng, n, (rng.uniform(1.8, 2.6), rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.5)))


def _c_cylinder(rng, n):
    return _cylinder(rng, n, rng.uniform(0.4, 0.6), rng.uniform(1.6, 2.2))


def _c_cone(rng, n):
    return _cone(rng, n, rng.uniform(0.6, 0.9), rng.uniform(1.4, 1.9))


def _c_torus(rng, n):
    return _torus(rng, n, 1.0, rng.uniform(0.2, 0.4))


def _c_capsule(rng, n):
    r, h = rng.uniform(0.35, 0.5), rng.uniform(1.2, 1.8)
    counts = _split_counts(rng, n, [_cylinder_area(r, h, caps=False), _sphere_area(r)])
    body = _cylinder(rng, counts[0], r, h, caps=False)
    ends = _sphere(rng, counts[1], r)
    ends[:, 2] += np.where(ends[:, 2] > 0, h / 2, -h / 2)  # hemispheres on both ends
    return np.concatenate([body, ends])


def _c_pyramid(rng, n):
    a, h = rng.uniform(0.9, 1.2), rng.uniform(1.0, 1.6)
    c = np.array([[-a, -a, 0], [a, -a, 0], [a, a, 0], [-a, a, 0]], float)
    apex = np.array([0, 0, h])
    tris = np.array([[c[0], c[1], c[2]], [c[0], c[2], c[3]]] + [[c[i], c[(i + 1) % 4], apex] for i in range(4)])
    return _triangles(rng, n, tris)


def _c_disk(rng, n):
    return _cylinder(rng, n, rng.uniform(0.9, 1.1), rng.uniform(0.06, 0.15))


def _c_dumbbell(rng, n):
    r, gap, bar = rng.uniform(0.35, 0.5), rng.uniform(0.9, 1.3), rng.uniform(0.08, 0.14)
    counts = _split_counts(rng, n, [_sphere_area(r), _sphere_area(r), _cylinder_area(bar, 2 * gap, caps=False)])
    return np.concatenate([_sphere(rng, counts[0], r, (-gap, 0, 0)), _sphere(rng, counts[1], r, (gap, 0, 0)),
                           _cylinder(rng, counts[2], bar, 2 * gap, caps=False, axis=0)])


def _c_lshape(rng, n):
    t, long, short = rng.uniform(0.3, 0.45), rng.uniform(1.6, 2.0), rng.uniform(1.0, 1.4)
    a_size, b_size = (long, t, t), (t, t, short)
    counts = _split_counts(rng, n, [_box_area(a_size), _box_area(b_size)])
    return np.concatenate([_box(rng, counts[0], a_size, (0, 0, 0)),
                           _box(rng, counts[1], b_size, (long / 2 - t / 2, 0, short / 2 + t / 2))])


def _c_table(rng, n):
    w, d, h, leg = rng.uniform(1.4, 1.8), rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1), rng.uniform(0.06, 0.1)
    top = (w, d, 0.08)
    legs = [((leg, leg, h), (sx * (w / 2 - leg), sy * (d / 2 - leg), -h / 2)) for sx in (-1, 1) for sy in (-1, 1)]
    counts = _split_counts(rng, n, [_box_area(top)] + [_box_area(s) for s, _ in legs])
    parts = [_box(rng, counts[0], top, (0, 0, 0.04))]
    parts += [_box(rng, m, s, c) for m, (s, c) in zip(counts[1:], legs)]
    return np.concatenate(parts)


CLASSES: dict[str, Sampler] = {
    "sphere": _c_sphere, "ellipsoid": _c_ellipsoid, "cube": _c_cube, "box": _c_box, "cylinder": _c_cylinder,
    "cone": _c_cone, "torus": _c_torus, "capsule": _c_capsule, "pyramid": _c_pyramid, "disk": _c_disk,
    "dumbbell": _c_dumbbell, "lshape": _c_lshape, "table": _c_table,
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASSES)


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centers ``points [N, 3]`` at their mean and scales the farthest point to radius 1."""
    centered = points - points.mean(0, keepdims=True)
    return centered / max(float(np.linalg.norm(centered, axis=1).max()), 1e-9)


def _random_pose(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    scale = rng.uniform(0.9, 1.1, 3)  # mild anisotropy: classes stay distinguishable
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return (points * scale) @ rot.T


def sample_shape(rng: np.random.Generator, label: int, num_points: int, scan: bool = False) -> np.ndarray:
    """One shape of class ``label`` as ``[num_points, 3]`` float32, unit-sphere normalised.

    With ``scan`` the ScanObjectNN-like corruptions apply: occlusion of a
    random half-space, background points (floor patch and clutter) and
    stronger noise.

    References: Uy et al., ICCV 2019 (ScanObjectNN's background and partiality).
    """
    sampler = CLASSES[CLASS_NAMES[label]]
    if not scan:
        pts = _random_pose(rng, sampler(rng, num_points))
        pts = pts + rng.normal(scale=0.01, size=pts.shape)
        return normalize_unit_sphere(pts).astype(np.float32)
    n_background = int(num_points * rng.uniform(0.1, 0.25))
    n_object = num_points - n_background
    pts = normalize_unit_sphere(_random_pose(rng, sampler(rng, 2 * n_object)))
    # Occlusion: remove points beyond a random plane, keeping 55-85 % of the object.
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    proj = pts @ direction
    keep = proj <= np.quantile(proj, rng.uniform(0.55, 0.85))
    visible = pts[keep]
    obj = visible[rng.choice(len(visible), n_object, replace=len(visible) < n_object)]
    floor_z = pts[:, 2].min()
    n_floor = n_background // 2
    floor = np.stack([rng.uniform(-1.3, 1.3, n_floor), rng.uniform(-1.3, 1.3, n_floor),
                      np.full(n_floor, floor_z) + rng.normal(scale=0.01, size=n_floor)], 1)
    blob_center = rng.uniform(-1.2, 1.2, 3)
    clutter = blob_center + rng.normal(scale=0.15, size=(n_background - n_floor, 3))
    pts = np.concatenate([obj, floor, clutter])
    pts = pts + rng.normal(scale=0.02, size=pts.shape)
    return normalize_unit_sphere(pts[rng.permutation(num_points)]).astype(np.float32)


def check_point_clouds(points: np.ndarray, field: str = "points", min_points: int = 1) -> np.ndarray:
    """Returns ``points`` as float32 ``[B, N, 3]`` or raises one clear :class:`DataError`.

    Refused: a shape other than ``[B, N, 3]``, fewer than ``min_points`` points
    per cloud, NaN or infinite coordinates.

    References: Pang et al., Point-MAE, ECCV 2022 (clouds of N points, G groups need N >= G).
    """
    arr = np.asarray(points)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"feature {field!r} must hold point clouds of shape [num_points, 3]; got per-batch shape "
                        f"{arr.shape}")
    if arr.shape[1] < min_points:
        raise DataError(f"feature {field!r} has clouds of {arr.shape[1]} points; at least {min_points} are needed "
                        f"(the model's num_groups and group_size)")
    arr = arr.astype(np.float32)
    bad = ~np.all(np.isfinite(arr), axis=(1, 2))
    if np.any(bad):
        raise DataError(f"feature {field!r}: {int(bad.sum())} point cloud(s) contain NaN or infinite coordinates "
                        f"(first at batch row {int(np.flatnonzero(bad)[0])}); only finite coordinates are allowed")
    return arr


def d2_histogram(points: np.ndarray, bins: int = 32, pairs: int = 2048, seed: int = 0) -> np.ndarray:
    """Shape-distribution features: a normalised histogram of pairwise distances per cloud.

    The "D2" descriptor: distances between random point pairs (sorted into
    ``bins`` bins on [0, 2], the unit sphere's diameter), plus the sorted
    distances of the points to their centroid at fixed quantiles. ``[B, N, 3]
    -> [B, bins + 8]``. A classical hand-crafted baseline for shape classes.

    References: Osada et al., "Shape Distributions", ACM TOG 2002.
    """
    rng = np.random.default_rng(seed)
    b, n, _ = points.shape
    i, j = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    d = np.linalg.norm(points[:, i] - points[:, j], axis=-1)
    hist = np.stack([np.histogram(row, bins=bins, range=(0.0, 2.0))[0] for row in d]).astype(np.float64) / pairs
    radial = np.linalg.norm(points - points.mean(1, keepdims=True), axis=-1)
    quantiles = np.quantile(radial, np.linspace(0.0, 1.0, 8), axis=1).T
    return np.concatenate([hist, quantiles], axis=1).astype(np.float32)
