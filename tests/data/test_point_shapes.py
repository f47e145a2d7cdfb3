"""Parametric point shapes: normalisation, distinct classes, scan corruptions, D2 features.

References: Osada et al., "Shape Distributions", ACM TOG 2002; Uy et al., ICCV 2019 (ScanObjectNN).
"""

from __future__ import annotations

import numpy as np

from jaxcompress.data.point_shapes import CLASS_NAMES, d2_histogram, sample_shape


def test_every_class_samples_unit_sphere_clouds_deterministically():
    assert len(CLASS_NAMES) >= 10
    for label in range(len(CLASS_NAMES)):
        for scan in (False, True):
            a = sample_shape(np.random.default_rng([label, 1]), label, 256, scan=scan)
            b = sample_shape(np.random.default_rng([label, 1]), label, 256, scan=scan)
            np.testing.assert_array_equal(a, b)
            assert a.shape == (256, 3) and a.dtype == np.float32 and np.all(np.isfinite(a))
            np.testing.assert_allclose(np.linalg.norm(a, axis=1).max(), 1.0, rtol=1e-5)
            np.testing.assert_allclose(a.mean(0), 0.0, atol=1e-5)


def test_sphere_points_lie_on_a_sphere_and_scan_adds_clutter():
    clean = sample_shape(np.random.default_rng(0), CLASS_NAMES.index("sphere"), 512)
    radii = np.linalg.norm(clean, axis=1)
    assert radii.std() < 0.08  # surface samples (jitter 0.01 and mild anisotropy only)
    scan = sample_shape(np.random.default_rng(0), CLASS_NAMES.index("sphere"), 512, scan=True)
    assert np.linalg.norm(scan, axis=1).std() > 2 * radii.std()  # floor, clutter and noise


def test_d2_histograms_are_normalised_and_separate_classes():
    rng = np.random.default_rng(0)
    clouds = np.stack([sample_shape(rng, label, 256) for label in (0, 0, 9, 9)])  # spheres and disks
    feats = d2_histogram(clouds)
    np.testing.assert_allclose(feats[:, :32].sum(1), 1.0, atol=1e-6)
    within = np.abs(feats[0] - feats[1]).sum() + np.abs(feats[2] - feats[3]).sum()
    between = np.abs(feats[0] - feats[2]).sum() + np.abs(feats[1] - feats[3]).sum()
    assert between > within
