"""Structured pruning that really shrinks the model: neurons, channels, heads, vocabulary rows.

Models declare their prunable unit groups instead of having them traced (the
lesson of NNI's and Torch-Pruning's users): a :class:`UnitGroup` lists every
parameter slice that belongs to one unit (a hidden neuron's incoming column,
bias entry and outgoing row; an attention head's query/key/value columns and
output rows), and the config key whose value counts the units. Pruning a group
either zeroes the units' slices (the masked model) or takes them out
(:func:`shrink`, the surgery), and the two give the same outputs.

References:
  Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (L1/L2 unit
  importance); Molchanov et al., "Importance Estimation for Neural Network
  Pruning", CVPR 2019 (Taylor importance); Michel, Levy & Neubig, "Are Sixteen
  Heads Really Better than One?", NeurIPS 2019 (head pruning).
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcompress.compress import model_groups  # noqa: F401  (registers the built-in models' groups)
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import register_method
from jaxcompress.compress.paths import map_with_path
from jaxcompress.compress.unit_groups import UnitGroup, unit_groups
from jaxcompress.configlib import copy_config
from jaxcompress.errors import ConfigError

IMPORTANCE = ("magnitude", "taylor")


def _leaves(params: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    map_with_path(lambda path, leaf: found.__setitem__(path, leaf), params)
    return found


def _member(member: tuple) -> tuple[str, int, int, int]:
    path, axis, width, *rest = member
    return path, axis, width, (rest[0] if rest else 1)


def _unit_view(leaf: Any, axis: int, num_units: int, width: int, repeat: int = 1) -> Any:
    """``leaf`` as ``[num_units, everything else]`` for the group's axis."""
    moved = jnp.moveaxis(jnp.asarray(leaf), axis, 0)
    blocks = moved.reshape(repeat, num_units, width, -1)
    return jnp.moveaxis(blocks, 1, 0).reshape(num_units, -1)


def importance(params: Any, groups: list[UnitGroup], kind: str = "magnitude",
               grads: Any | None = None) -> dict[str, np.ndarray]:
    """Per-unit importance of each group: L2 norm of its slices, or first-order Taylor ``|sum w * g|``."""
    if kind not in IMPORTANCE:
        raise ConfigError(f"structured.importance must be one of {', '.join(IMPORTANCE)}, got {kind!r}")
    if kind == "taylor" and grads is None:
        raise ConfigError("taylor importance needs gradients from a batch")
    leaves = _leaves(params)
    grad_leaves = _leaves(grads) if grads is not None else {}
    scores = {}
    for group in groups:
        total = jnp.zeros(group.num_units)
        for path, axis, width, repeat in map(_member, group.members):
            w = _unit_view(leaves[path], axis, group.num_units, width, repeat)
            if kind == "magnitude":
                total = total + jnp.sum(w.astype(jnp.float32) ** 2, axis=1)
            else:
                g = _unit_view(grad_leaves[path], axis, group.num_units, width, repeat)
                total = total + jnp.sum(w * g, axis=1)
        scores[group.name] = np.asarray(jnp.sqrt(total) if kind == "magnitude" else jnp.abs(total))
    return scores


def choose_units(scores: dict[str, np.ndarray], fraction: float, round_to: int = 1,
                 min_units: int = 1) -> dict[str, np.ndarray]:
    """Sorted indices of the units to keep: the top ``1 - fraction`` of each group.

    The kept count is rounded up to a multiple of ``round_to`` (hardware-friendly
    widths) and is never below ``min_units``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"structured.sparsity must be in [0, 1), got {fraction}")
    keep = {}
    for name, score in scores.items():
        count = max(min_units, math.ceil((1.0 - fraction) * score.size / round_to) * round_to)
        count = min(count, score.size)
        order = np.argsort(-score, kind="stable")[:count]
        keep[name] = np.sort(order)
    return keep


def _unit_index(units: np.ndarray, width: int, num_units: int, repeat: int) -> np.ndarray:
    """Positions along the axis owned by ``units``, in layout order."""
    block = num_units * width
    return (np.arange(repeat)[:, None, None] * block + units[None, :, None] * width
            + np.arange(width)[None, None, :]).ravel()


def mask_units(params: Any, groups: list[UnitGroup], keep: dict[str, np.ndarray]) -> Any:
    """Zeroes the slices of every removed unit (same shapes; the masked model)."""
    zero: dict[str, list[tuple[int, np.ndarray]]] = {}
    for group in groups:
        removed = np.setdiff1d(np.arange(group.num_units), keep[group.name])
        for path, axis, width, repeat in map(_member, group.members):
            zero.setdefault(path, []).append((axis, _unit_index(removed, width, group.num_units, repeat)))

    def apply(path: str, leaf: Any) -> Any:
        leaf = np.array(leaf)
        for axis, index in zero.get(path, []):
            slicer = [slice(None)] * leaf.ndim
            slicer[axis] = index
            leaf[tuple(slicer)] = 0
        return leaf

    return map_with_path(apply, params)


def shrink(params: Any, groups: list[UnitGroup], keep: dict[str, np.ndarray]) -> tuple[Any, dict[str, int]]:
    """Takes removed units out of every member leaf (smaller shapes; the surgery).

    Returns:
      ``(params, {config_key: new unit count})``.
    """
    take: dict[str, list[tuple[int, np.ndarray]]] = {}
    for group in groups:
        for path, axis, width, repeat in map(_member, group.members):
            take.setdefault(path, []).append((axis, _unit_index(keep[group.name], width, group.num_units, repeat)))

    def apply(path: str, leaf: Any) -> Any:
        leaf = np.asarray(leaf)
        for axis, index in take.get(path, []):
            leaf = np.take(leaf, index, axis=axis)
        return leaf

    changes = {group.config_key: int(keep[group.name].size) for group in groups}
    for group in groups:
        changes.update(group.fixed_changes)
        if group.kept_key:
            changes[group.kept_key] = tuple(int(i) for i in keep[group.name])
    return map_with_path(apply, params), changes


def apply_model_changes(config: Any, changes: dict[str, Any]) -> Any:
    """A copy of ``config`` with dotted keys set; a trailing integer indexes a tuple."""
    config = copy_config(config)
    for key, value in changes.items():
        parts = key.split(".")
        index = int(parts.pop()) if parts[-1].isdigit() else None
        node = config
        for part in parts[:-1]:
            node = getattr(node, part)
        if index is None:
            setattr(node, parts[-1], value)
        else:
            items = list(getattr(node, parts[-1]))
            items[index] = value
            setattr(node, parts[-1], tuple(items))
    return config


@register_method("structured")
def structured_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: sparsity (fraction of units removed per group), groups (regex over group
    names), importance (magnitude|taylor; taylor needs ``grads``), round_to, min_units,
    and ``model_config`` (supplied by the caller, not the user)."""
    allowed = {"sparsity", "groups", "importance", "round_to", "min_units", "model_config", "grads"}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"unknown structured option {sorted(unknown)[0]!r}; allowed: "
                          f"{', '.join(sorted(allowed - {'model_config', 'grads'}))}")
    if options.get("model_config") is None:
        raise ConfigError("structured pruning needs the model's config to know its units")
    groups = unit_groups(options["model_config"], artifact.params)
    pattern = options.get("groups", ".*")
    groups = [g for g in groups if re.search(pattern, g.name)]
    if not groups:
        raise ConfigError(f"structured.groups {pattern!r} matches no unit group")
    scores = importance(artifact.params, groups, options.get("importance", "magnitude"), options.get("grads"))
    for group in groups:
        if group.protected:
            scores[group.name] = scores[group.name].copy()
            scores[group.name][list(group.protected)] = np.inf
    keep = choose_units(scores, float(options.get("sparsity", 0.5)), int(options.get("round_to", 1)),
                        int(options.get("min_units", 1)))
    params, changes = shrink(artifact.params, groups, keep)
    from jaxcompress.compress.pruning import encode_sparse

    touched = {member[0] for g in groups for member in g.members}
    # Re-encode what changed shape (keeping a sparse form if an earlier step pruned it).
    updates = {path: encode_sparse(path, leaf) for path, leaf in _leaves(params).items() if path in touched}
    step = {"method": "structured", "sparsity": float(options.get("sparsity", 0.5)), "groups": pattern,
            "importance": options.get("importance", "magnitude"),
            "kept": {name: index.tolist() for name, index in keep.items()}}
    return artifact.with_leaves(step, params, updates, model_changes=changes)
