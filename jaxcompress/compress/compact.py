"""Compact filters: replace a conv by a depthwise-separable (or 1xk + kx1) one, initialised from it.

* **Depthwise-separable** (MobileNet, Xception): ``W [kh, kw, C_in, C_out]``
  becomes a depthwise kernel ``[kh, kw, 1, C_in]`` and a pointwise matrix
  ``[C_in, C_out]``; parameters ``kh·kw·C_in·C_out -> C_in·(kh·kw + C_out)``.
  Initialisation: for every input channel c, the best rank-1 fit of the slice
  ``W[:, :, c, :]`` (``[kh·kw, C_out]``) by SVD, so a kernel whose slices are
  rank 1 is reproduced exactly; otherwise it is the closest separable kernel
  in Frobenius norm per channel, a starting point for a short distillation.
* **Spatially separable** (Jaderberg et al.'s scheme 2): ``kh x 1`` conv
  ``C_in -> r`` then ``1 x kw`` conv ``r -> C_out``, from the rank-r SVD of
  ``W`` reshaped to ``[kh·C_in, kw·C_out]`` (exact at full rank).

The factors replace ``kernel`` in the param tree and run inside
:func:`jaxcompress.compress.factored.factored_layers`. Distil the result from
the original with the ``distill`` task (``model.student_init`` = the saved
compact model, the original as teacher).

References:
  Howard et al., "MobileNets", arXiv 1704.04861; Chollet, "Xception", CVPR
  2017; Jaderberg, Vedaldi & Zisserman, "Speeding up Convolutional Neural
  Networks with Low Rank Expansions", BMVC 2014.
"""

from __future__ import annotations

from typing import Any

import flax.traverse_util as traverse
import numpy as np

from jaxcompress.compress import options as opt
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import register_method
from jaxcompress.compress.paths import leaf_paths, select
from jaxcompress.compress.storage import LeafStorage
from jaxcompress.errors import ConfigError

KINDS = ("depthwise", "spatial")


def depthwise_separable_factors(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W [kh, kw, C_in, C_out] -> (depthwise [kh, kw, 1, C_in], pointwise [C_in, C_out])``.

    ``W ≈ einsum('hwc,co->hwco', depthwise[:, :, 0], pointwise)`` with each
    input channel's slice replaced by its best rank-1 approximation.
    """
    if kernel.ndim != 4:
        raise ConfigError(f"depthwise-separable replacement needs a 2-D conv kernel [kh, kw, C_in, C_out]; "
                          f"got shape {kernel.shape}")
    kh, kw, c_in, c_out = kernel.shape
    depthwise = np.zeros((kh, kw, 1, c_in), np.float64)
    pointwise = np.zeros((c_in, c_out), np.float64)
    for c in range(c_in):
        u, s, vt = np.linalg.svd(np.asarray(kernel[:, :, c, :], np.float64).reshape(kh * kw, c_out),
                                 full_matrices=False)
        root = np.sqrt(s[0])
        depthwise[:, :, 0, c] = (u[:, 0] * root).reshape(kh, kw)
        pointwise[c] = vt[0] * root
    return depthwise.astype(kernel.dtype), pointwise.astype(kernel.dtype)


def spatial_separable_factors(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``W [kh, kw, C_in, C_out] -> (vertical [kh, 1, C_in, r], horizontal [1, kw, r, C_out])``.

    Raises:
      ConfigError: if ``rank`` exceeds ``min(kh·C_in, kw·C_out)``.
    """
    kh, kw, c_in, c_out = kernel.shape
    limit = min(kh * c_in, kw * c_out)
    if not 1 <= rank <= limit:
        raise ConfigError(f"separable.rank = {rank} is not possible for a {list(kernel.shape)} conv; "
                          f"allowed: 1..{limit}")
    matrix = np.asarray(kernel, np.float64).transpose(0, 2, 1, 3).reshape(kh * c_in, kw * c_out)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:rank])
    vertical = (u[:, :rank] * root).reshape(kh, c_in, rank)[:, None]
    horizontal = (root[:, None] * vt[:rank]).reshape(rank, kw, c_out).transpose(1, 0, 2)[None]
    return vertical.astype(kernel.dtype), horizontal.astype(kernel.dtype)


def separable_params(artifact: Compressed, *, include: Any, exclude: Any = (), kind: str = "depthwise",
                     rank: int | None = None) -> Compressed:
    """Replaces the selected conv kernels by separable factors (see the module docstring).

    Args:
      artifact: the model so far.
      include, exclude: regexes over parameter paths; only ``kernel`` leaves
        of rank 4 are replaced.
      kind: ``depthwise`` or ``spatial``.
      rank: the spatial kind's rank (default: the smallest that saves
        parameters, halved: ``min(kh·C_in, kw·C_out) // 2``).
    """
    if kind not in KINDS:
        raise ConfigError(f"separable.kind must be one of {', '.join(KINDS)}; got {kind!r}")
    selection = select(artifact.params, include, exclude, field="separable.include")
    chosen = dict(zip(leaf_paths(artifact.params), map(bool, _leaves(selection))))
    flat = traverse.flatten_dict(artifact.params, sep="/")
    updates: dict[str, tuple] = {}
    layers: dict[str, Any] = {}
    for path in list(flat):
        w = np.asarray(flat[path])
        if not chosen.get(path) or not path.endswith("kernel") or w.ndim != 4:
            continue
        prefix = path[: -len("kernel")]
        if kind == "depthwise":
            factors = dict(zip(("depthwise", "pointwise"), depthwise_separable_factors(w)))
            layers[path] = {"kind": kind}
        else:
            r = rank or max(1, min(w.shape[0] * w.shape[2], w.shape[1] * w.shape[3]) // 2)
            factors = dict(zip(("vertical", "horizontal"), spatial_separable_factors(w, r)))
            layers[path] = {"kind": kind, "rank": r}
        del flat[path]
        for name, value in factors.items():
            flat[prefix + name] = value
            updates[prefix + name] = (LeafStorage(prefix + name, value.shape, "low_rank", value.nbytes,
                                                  nonzeros=int(np.count_nonzero(value))),
                                      ("dense", {"values": value}))
    if not layers:
        raise ConfigError(f"separable.include {include!r} selects no 2-D conv kernel")
    params = traverse.unflatten_dict(flat, sep="/")
    return artifact.with_leaves({"method": "separable", "kind": kind, "layers": layers,
                                 "run_with": "factored_layers"}, params, updates)


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree.leaves(tree)


@register_method("separable")
def separable_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: include (required: which convs), exclude, kind (depthwise|spatial), rank (spatial)."""
    m = "separable"
    opt.check_known(m, options, ("include", "exclude", "kind", "rank"))
    if "include" not in options:
        raise ConfigError("separable.include must name the conv layers to replace (e.g. conv_1)")
    return separable_params(artifact, include=opt.rules(m, options, "include", ""),
                            exclude=opt.rules(m, options, "exclude", ""),
                            kind=opt.choice(m, options, "kind", "depthwise", KINDS),
                            rank=opt.integer(m, options, "rank", None, low=1))
