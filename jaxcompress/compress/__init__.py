"""Compression methods as pure functions over parameter pytrees and optax transformations.

The families of Cheng et al.'s survey, each importable from here::

    from jaxcompress.compress import wrap, Pruner, fake_quant, lowrank_params, kmeans_params

* pruning and sharing: :class:`Pruner` / :func:`wrap` (masks inside the optimiser;
  magnitude, random, saliency, movement, soft movement, N:M, gradual schedules),
  :func:`prune_params` (one shot), :func:`shrink` (structured surgery to a smaller
  model), :func:`kmeans_params` (k-means sharing), :func:`hash_params` (HashedNets);
* quantization: :func:`fake_quant` and the STE transforms, :func:`quantize_params`
  (int8/int4/int2), :func:`binarize_params`, :func:`ternarize_params`,
  :func:`model_for_training` (QAT);
* low-rank factorisation: :func:`lowrank_params` (SVD, Tucker-2);
* compact filters: :func:`separable_params`;
* knowledge distillation: :func:`hinton_loss`, :func:`hidden_mse`,
  :func:`attention_transfer`, :func:`cosine_distance`;
* reports: :func:`compression_report`, :func:`markdown_table`.

Every step maps a :class:`Compressed` artifact to a new one, so methods compose.

References:
  Cheng et al., "A Survey of Model Compression and Acceleration for Deep
  Neural Networks", IEEE Signal Processing Magazine 2018.
"""

from jaxcompress.compress.artifact import Compressed, register_decoder
from jaxcompress.compress.compact import separable_params
from jaxcompress.compress.distill import (
                                          DistillConfig,
                                          attention_transfer,
                                          cosine_distance,
                                          hidden_mse,
                                          hinton_loss,
                                          soft_kl,
)
from jaxcompress.compress.lowrank import lowrank_params, svd_factors, tucker2_factors
from jaxcompress.compress.masks import apply_masks, sparsity_summary
from jaxcompress.compress.methods import get_method, method_names
from jaxcompress.compress.paths import leaf_paths, map_with_path, path_str, select
from jaxcompress.compress.pruning import Pruner, find_prune_state, prune_params, wrap
from jaxcompress.compress.quantize import (
                                          QuantConfig,
                                          binarize_params,
                                          fake_quant,
                                          model_for_training,
                                          quantize_params,
                                          ternarize_params,
)
from jaxcompress.compress.report import compression_report, markdown_table
from jaxcompress.compress.schedules import Schedule
from jaxcompress.compress.sharing import hash_params, kmeans_params
from jaxcompress.compress.storage import LeafStorage
from jaxcompress.compress.structured import apply_model_changes, shrink

__all__ = [
    "Compressed", "DistillConfig", "LeafStorage", "Pruner", "QuantConfig", "Schedule",
    "apply_masks", "apply_model_changes", "attention_transfer", "binarize_params", "compression_report",
    "cosine_distance", "fake_quant", "find_prune_state", "get_method", "hash_params", "hidden_mse",
    "hinton_loss", "kmeans_params", "leaf_paths", "lowrank_params", "map_with_path", "markdown_table",
    "method_names", "model_for_training", "path_str", "prune_params", "quantize_params",
    "register_decoder", "select", "separable_params", "shrink", "soft_kl", "sparsity_summary", "svd_factors",
    "ternarize_params", "tucker2_factors", "wrap",
]
