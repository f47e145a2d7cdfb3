"""Custom ops: CIF pooling (reference XLA path and Pallas kernels for TPU and GPU) and point-cloud ops.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020; Qi et al., PointNet++, NeurIPS 2017 and Pang et al., Point-MAE,
ECCV 2022 (point ops: FPS, kNN grouping, Chamfer distance).
"""

from __future__ import annotations

from jaxcompress.ops._cif_pool import IMPLEMENTATIONS as IMPLEMENTATIONS
from jaxcompress.ops._cif_pool import CifPoolOutput as CifPoolOutput
from jaxcompress.ops._cif_pool import CifWeights as CifWeights
from jaxcompress.ops._cif_pool import cif_pool as cif_pool
from jaxcompress.ops._cif_pool import cif_pool_sharded as cif_pool_sharded
from jaxcompress.ops._cif_pool import cif_weights as cif_weights
from jaxcompress.ops._cif_pool import mix_alpha as mix_alpha
from jaxcompress.ops._cif_pool import pool_like as pool_like
from jaxcompress.ops._cif_pool import shard_over_batch as shard_over_batch
from jaxcompress.ops._cif_pool import upsample as upsample
from jaxcompress.ops._points import chamfer_distance as chamfer_distance
from jaxcompress.ops._points import farthest_point_sampling as farthest_point_sampling
from jaxcompress.ops._points import gather_points as gather_points
from jaxcompress.ops._points import group_points as group_points
from jaxcompress.ops._points import knn_group as knn_group
from jaxcompress.ops._points import knn_indices as knn_indices
from jaxcompress.ops._points import pairwise_sq_distances as pairwise_sq_distances

__all__ = [
    "IMPLEMENTATIONS",
    "CifPoolOutput",
    "CifWeights",
    "cif_pool",
    "cif_pool_sharded",
    "chamfer_distance",
    "cif_weights",
    "farthest_point_sampling",
    "gather_points",
    "group_points",
    "knn_group",
    "knn_indices",
    "mix_alpha",
    "pairwise_sq_distances",
    "pool_like",
    "shard_over_batch",
    "upsample",
]
