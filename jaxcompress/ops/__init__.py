"""Custom ops with a reference XLA path and Pallas kernels for TPU and GPU.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
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

__all__ = [
    "IMPLEMENTATIONS",
    "CifPoolOutput",
    "CifWeights",
    "cif_pool",
    "cif_pool_sharded",
    "cif_weights",
    "mix_alpha",
    "pool_like",
    "shard_over_batch",
    "upsample",
]
