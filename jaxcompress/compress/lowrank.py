"""Low-rank factorisation: truncated SVD of Dense kernels, Tucker-2 of conv kernels.

A Dense kernel ``W [m, n]`` becomes ``U [m, r] = U_r sqrt(S_r)`` and
``V [r, n] = sqrt(S_r) V_r^T`` (m·n -> r·(m + n) parameters); a conv kernel
``W [kh, kw, C_in, C_out]`` becomes the Tucker-2 chain ``first [C_in, r_in]``,
``core [kh, kw, r_in, r_out]``, ``last [r_out, C_out]`` (HOSVD on the two
channel modes). The factored params replace ``kernel`` in the same param
tree; the unchanged model runs them inside
:func:`jaxcompress.compress.factored.factored_layers`.

The rank of each layer comes from one of: a fixed ``rank``, the retained
spectral ``energy`` (smallest r with ``sum_{i<r} s_i^2 >= energy * sum s_i^2``),
or a parameter ``budget`` (the largest r whose factors use at most that
fraction of the layer's parameters). A layer whose factors would not be
smaller than its kernel stays dense (listed under ``kept_dense`` in the step's
history). A fixed rank larger than a Dense kernel's ``min(m, n)`` is an error;
for a conv each channel mode takes ``min(rank, channels)``.

References:
  Denton et al., "Exploiting Linear Structure Within Convolutional Networks
  for Efficient Evaluation", NeurIPS 2014; Sainath et al., "Low-rank matrix
  factorization for deep neural network training with high-dimensional output
  targets", ICASSP 2013; Kim et al., "Compression of Deep Convolutional
  Neural Networks for Fast and Low Power Mobile Applications", ICLR 2016.
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

# ----------------------------------------------------------------------------
# Rank choice


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest r keeping at least ``energy`` of ``sum s_i^2`` (1 <= r <= len(s))."""
    power = np.asarray(singular_values, np.float64) ** 2
    total = power.sum()
    if total == 0:
        return 1
    kept = np.cumsum(power) / total
    return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(power)))


def rank_for_budget(m: int, n: int, budget: float) -> int:
    """Largest r with ``r (m + n) <= budget * m n`` (at least 1)."""
    return max(1, int(np.floor(budget * m * n / (m + n))))


def dense_factor_params(m: int, n: int, rank: int) -> int:
    return rank * (m + n)


def tucker_params(kh: int, kw: int, c_in: int, c_out: int, r_in: int, r_out: int) -> int:
    return c_in * r_in + kh * kw * r_in * r_out + r_out * c_out


# ----------------------------------------------------------------------------
# Factorisations


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD ``W [m, n] ≈ U [m, r] @ V [r, n]``, singular values split evenly.

    Raises:
      ConfigError: if ``rank`` exceeds ``min(m, n)``.
    """
    m, n = w.shape
    if not 1 <= rank <= min(m, n):
        raise ConfigError(f"lowrank.rank = {rank} is not possible for a [{m}, {n}] matrix; "
                          f"allowed: 1..{min(m, n)}")
    u, s, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root).astype(w.dtype), (root[:, None] * vt[:rank]).astype(w.dtype)


def _mode_basis(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and values of the mode-``axis`` unfolding of ``w``."""
    unfolded = np.moveaxis(np.asarray(w, np.float64), axis, 0).reshape(w.shape[axis], -1)
    u, s, _ = np.linalg.svd(unfolded, full_matrices=False)
    return u, s


def tucker2_factors(w: np.ndarray, r_in: int, r_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HOSVD Tucker-2 of a conv kernel ``[kh, kw, C_in, C_out]`` on its channel modes.

    Returns:
      ``first [C_in, r_in]``, ``core [kh, kw, r_in, r_out]``, ``last [r_out, C_out]`` with
      ``W ≈ einsum('hwab,ca,bo->hwco', core, first, last)`` (exact at full ranks).
    """
    kh, kw, c_in, c_out = w.shape
    for name, r, limit in (("r_in", r_in, c_in), ("r_out", r_out, c_out)):
        if not 1 <= r <= limit:
            raise ConfigError(f"lowrank.rank ({name}) = {r} is not possible for a conv with {limit} "
                              f"channels on that side; allowed: 1..{limit}")
    a, _ = _mode_basis(w, 2)
    b, _ = _mode_basis(w, 3)
    first, last_t = a[:, :r_in], b[:, :r_out]
    core = np.einsum("hwco,ca,ob->hwab", np.asarray(w, np.float64), first, last_t)
    return first.astype(w.dtype), core.astype(w.dtype), last_t.T.astype(w.dtype)


def tucker2_reconstruct(first: np.ndarray, core: np.ndarray, last: np.ndarray) -> np.ndarray:
    return np.einsum("hwab,ca,bo->hwco", core, first, last)


# ----------------------------------------------------------------------------
# The step


def _choose_dense_rank(w: np.ndarray, rank: int | None, energy: float | None, budget: float | None) -> int:
    m, n = w.shape
    if rank is not None:
        if rank > min(m, n):
            raise ConfigError(f"lowrank.rank = {rank} is larger than a [{m}, {n}] matrix allows; "
                              f"allowed: 1..{min(m, n)}")
        return rank
    if energy is not None:
        return rank_for_energy(np.linalg.svd(np.asarray(w, np.float64), compute_uv=False), energy)
    return rank_for_budget(m, n, budget)


def _choose_tucker_ranks(w: np.ndarray, rank: int | None, energy: float | None,
                         budget: float | None) -> tuple[int, int]:
    kh, kw, c_in, c_out = w.shape
    if rank is not None:
        if rank > max(c_in, c_out):
            raise ConfigError(f"lowrank.rank = {rank} is larger than the conv kernel {list(w.shape)} allows; "
                              f"allowed: 1..{max(c_in, c_out)}")
        # A channel mode smaller than the rank is kept whole (e.g. the 1-channel input of a first conv).
        return min(rank, c_in), min(rank, c_out)
    if energy is not None:
        return (rank_for_energy(_mode_basis(w, 2)[1], energy), rank_for_energy(_mode_basis(w, 3)[1], energy))
    # Budget: equal fractions of both channel counts, the largest that fits.
    best = (1, 1)
    for r_in in range(1, c_in + 1):
        r_out = max(1, round(r_in * c_out / c_in))
        if tucker_params(kh, kw, c_in, c_out, r_in, r_out) <= budget * w.size:
            best = (r_in, r_out)
    return best


def _storage(path: str, value: np.ndarray) -> tuple[LeafStorage, tuple[str, dict[str, np.ndarray]]]:
    return (LeafStorage(path, value.shape, "low_rank", value.nbytes, nonzeros=int(np.count_nonzero(value))),
            ("dense", {"values": value}))


def lowrank_params(artifact: Compressed, *, rank: int | None = None, energy: float | None = None,
                   budget: float | None = None, include: Any = ".*", exclude: Any = (),
                   conv: bool = True) -> Compressed:
    """Factorises the selected Dense kernels (SVD) and, with ``conv``, conv kernels (Tucker-2).

    Exactly one of ``rank``, ``energy`` (in (0, 1]) or ``budget`` (fraction of
    each layer's parameters, in (0, 1)) chooses the ranks. Only leaves named
    ``kernel`` of rank 2 (Dense) or 4 (2-D conv) are factorised.

    Returns:
      A new artifact whose params hold ``U``/``V`` (or ``first``/``core``/``last``)
      instead of ``kernel`` for the factorised layers; run it inside
      :func:`jaxcompress.compress.factored.factored_layers`.

    Raises:
      ConfigError: if not exactly one rank rule is given, or a fixed rank is
        larger than a selected matrix allows.
    """
    given = [name for name, v in (("rank", rank), ("energy", energy), ("budget", budget)) if v is not None]
    if len(given) != 1:
        raise ConfigError(f"lowrank needs exactly one of lowrank.rank, lowrank.energy, lowrank.budget; "
                          f"got {', '.join(given) or 'none'}")
    selection = select(artifact.params, include, exclude, field="lowrank.include")
    flat = traverse.flatten_dict(artifact.params, sep="/")
    chosen = dict(zip(leaf_paths(artifact.params), [bool(s) for s in _leaves(selection)]))
    updates: dict[str, tuple] = {}
    layers: dict[str, Any] = {}
    kept_dense: list[str] = []
    for path in list(flat):
        w = np.asarray(flat[path])
        if not chosen.get(path) or not path.endswith("kernel") or w.ndim not in (2, 4) or (w.ndim == 4 and not conv):
            continue
        prefix = path[: -len("kernel")]
        if w.ndim == 2:
            r = _choose_dense_rank(w, rank, energy, budget)
            if dense_factor_params(*w.shape, r) >= w.size:
                kept_dense.append(path)  # the factors would not be smaller
                continue
            factors = dict(zip(("U", "V"), svd_factors(w, r)))
            layers[path] = {"kind": "svd", "rank": r, "shape": list(w.shape)}
        else:
            r_in, r_out = _choose_tucker_ranks(w, rank, energy, budget)
            if tucker_params(*w.shape, r_in, r_out) >= w.size:
                kept_dense.append(path)
                continue
            factors = dict(zip(("first", "core", "last"), tucker2_factors(w, r_in, r_out)))
            layers[path] = {"kind": "tucker2", "ranks": [r_in, r_out], "shape": list(w.shape)}
        del flat[path]
        for name, value in factors.items():
            flat[prefix + name] = value
            updates[prefix + name] = _storage(prefix + name, value)
    params = traverse.unflatten_dict(flat, sep="/")
    step = {"method": "lowrank", "rank": rank, "energy": energy, "budget": budget, "conv": conv,
            "layers": layers, "kept_dense": kept_dense, "run_with": "factored_layers"}
    return artifact.with_leaves(step, params, updates)


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree.leaves(tree)


@register_method("lowrank")
def lowrank_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: exactly one of rank (int), energy (0 < e <= 1), budget (0 < b < 1); include,
    exclude, conv (also Tucker-2 on conv kernels, default true)."""
    m = "lowrank"
    opt.check_known(m, options, ("rank", "energy", "budget", "include", "exclude", "conv"))
    return lowrank_params(
        artifact, rank=opt.integer(m, options, "rank", None, low=1),
        energy=opt.number(m, options, "energy", None, low=0.0, high=1.0, low_open=True),
        budget=opt.number(m, options, "budget", None, low=0.0, high=1.0, low_open=True, high_open=True),
        include=opt.rules(m, options, "include", ".*"), exclude=opt.rules(m, options, "exclude", ""),
        conv=opt.boolean(m, options, "conv", True))
