"""Device meshes and the shardings of parameters, optimiser state and batches.

Models name the axes of their parameters with logical names
(``nn.with_logical_partitioning``); the config's logical rules map those names
to the mesh axes ``data``, ``fsdp`` and ``tensor``. This module turns the
abstract (shape-only) train state into a tree of ``NamedSharding`` that the
jitted init and step use as ``out_shardings``.

Meshes are built with ``AxisType.Auto`` on every axis on purpose: Flax Linen
layers do not pass ``out_sharding`` to their dot products, which the default
Explicit axes of ``jax.make_mesh`` would require.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcompress.errors import MeshError
from jaxcompress.train.config import MeshConfig

MESH_AXES: tuple[str, str, str] = ("data", "fsdp", "tensor")
BATCH_AXES: tuple[str, str] = ("data", "fsdp")


def mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    """Resolves ``data=-1`` and checks that the axis sizes multiply to the devices.

    Raises:
      MeshError: if the sizes do not divide or do not fill ``num_devices``.
    """
    fixed = cfg.fsdp * cfg.tensor
    if cfg.data == -1:
        if num_devices % fixed:
            raise MeshError(
                f"mesh.fsdp x mesh.tensor = {cfg.fsdp} x {cfg.tensor} = {fixed} does not divide the "
                f"{num_devices} devices; choose sizes whose product divides {num_devices}")
        return (num_devices // fixed, cfg.fsdp, cfg.tensor)
    total = cfg.data * fixed
    if total != num_devices:
        raise MeshError(
            f"mesh data x fsdp x tensor = {cfg.data} x {cfg.fsdp} x {cfg.tensor} = {total} but there are "
            f"{num_devices} devices; the product must equal the device count (mesh.data=-1 fills it in)")
    return (cfg.data, cfg.fsdp, cfg.tensor)


def build_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh over all (global) devices, Auto axes."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(cfg, len(devices))
    if devices == list(jax.devices()):
        # make_mesh orders devices for the physical topology (ICI rings on TPU).
        return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``data`` x ``fsdp``; the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    if isinstance(axes, str):
        return mesh.shape[axes]
    return math.prod(mesh.shape[a] for a in axes)


def fit_spec(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Drops the mesh axes of every dimension they do not divide evenly.

    A 10-class output layer cannot split over a tensor axis of 4; rather than
    failing, that dimension is replicated (the usual choice in large-scale
    trainers, and harmless for small leaves).
    """
    entries = list(spec) + [None] * (len(shape) - len(spec))
    fitted = [axes if dim % _axis_size(mesh, axes) == 0 else None for axes, dim in zip(entries, shape)]
    return P(*fitted)


def logical_shardings(abstract_boxed: Any, mesh: Mesh, rules: Sequence[tuple[str, Any]]) -> Any:
    """NamedShardings for a tree whose leaves may be ``nn.LogicallyPartitioned``.

    Args:
      abstract_boxed: the output of ``jax.eval_shape`` on an init function,
        still carrying Flax partitioning boxes.
      mesh: the device mesh.
      rules: logical axis name -> mesh axes.

    Returns:
      A tree shaped like ``nn.unbox(abstract_boxed)`` of ``NamedSharding``.
    """
    def sharding(leaf: Any) -> NamedSharding | None:
        if isinstance(leaf, nn.Partitioned) and leaf.value is None:
            return None  # a box around an empty subtree (e.g. an unpruned leaf's mask)
        if isinstance(leaf, nn.LogicallyPartitioned):
            spec = nn.logical_to_mesh_axes(leaf.names, rules)
            leaf = leaf.value
        elif isinstance(leaf, nn.Partitioned):  # already names mesh axes
            spec = P(*leaf.names)
            leaf = leaf.value
        else:  # unannotated leaves (counters, scalars) are replicated
            spec = P()
        return NamedSharding(mesh, fit_spec(spec, leaf.shape, mesh))

    # Mapping over the boxes (not get_partition_spec) keeps None subtrees,
    # such as the parts of a pruning mask tree that mask nothing.
    return jax.tree.map(sharding, abstract_boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def device_memory_bytes() -> int:
    """Memory one device offers: an accelerator's own limit, else the host's RAM (0 if unknown)."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
