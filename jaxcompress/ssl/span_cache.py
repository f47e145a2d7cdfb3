"""The SPAN precompute over a whole dataset: bucketed, batched, jitted, sharded, cached.

Graphs are sorted by size and cut into chunks of ``chunk`` graphs; each
chunk is padded to the smallest node bucket (a multiple of ``bucket``) that
holds its largest graph, so small graphs do not pay the O(N^3)
eigendecomposition of the dataset's largest budget, and each bucket size
compiles once. A chunk runs as one ``jit(vmap(...))`` call whose graph axis is
sharded over the mesh ``data`` axis when a mesh is given. The random start of
every graph is a function of its ``graph_id`` and of the node pair only, so the
result does not depend on chunking, bucketing, padding or sharding.

Results are cached as ``.npz`` files under
``<data_dir>/jaxcompress_span_cache/<dataset>/<split>-<hyper-parameters>-<content>.npz``,
keyed by the SPAN hyper-parameters and a digest of the graphs themselves, so a
changed dataset or setting never reuses stale probabilities.

References:
  Lin, Chen & Wang, "Spectral Augmentation for Self-Supervised Learning on
  Graphs", ICLR 2023.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcompress.data._paths import resolve_data_dir
from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import DataError
from jaxcompress.ssl import span

CACHE_FOLDER = "jaxcompress_span_cache"


@dataclasses.dataclass
class SpanResult:
    """Flip probabilities of both views for G graphs padded to N nodes.

    Attributes:
      graph_id: int64 [G].
      p_max, p_min: float32 [G, N, N] symmetric (view 1 raises the spectral norm, view 2 lowers it).
      expected_flips: float32 [G, 2] sum of the upper triangles (expected flipped pairs per view).
      objective: float32 [G, 2] f(P) of each view (1 = unchanged spectrum norm).
      budget: float32 [G] ratio * |E|.
      seconds: wall time of the computation (recorded in the cache file too).
      from_cache: whether this result was read from the cache.
    """

    graph_id: np.ndarray
    p_max: np.ndarray
    p_min: np.ndarray
    expected_flips: np.ndarray
    objective: np.ndarray
    budget: np.ndarray
    seconds: float = 0.0
    from_cache: bool = False

    def rows_for(self, graph_ids: np.ndarray) -> np.ndarray:
        """Row of each id in this result, -1 for ids it does not hold (padding records)."""
        order = np.argsort(self.graph_id)
        sorted_ids = self.graph_id[order]
        pos = np.clip(np.searchsorted(sorted_ids, graph_ids), 0, max(len(sorted_ids) - 1, 0))
        found = (len(sorted_ids) > 0) & (sorted_ids[pos] == graph_ids) if len(sorted_ids) else np.zeros_like(
            graph_ids, bool)
        return np.where(found, order[pos], -1)


@functools.lru_cache(maxsize=32)
def _compiled(config: span.SpanConfig, size: int, mesh: Mesh | None) -> Any:
    """jit(vmap) of both views for graphs padded to ``size`` nodes (one compile per bucket)."""

    def both(edges, edges_mask, num_nodes, num_edges, graph_ids):
        nodes_mask = gb.node_mask(num_nodes, size)
        adjacency = gb.dense_adjacency(edges, edges_mask, size)
        keys = span.graph_keys(config.seed, graph_ids)

        views = jax.vmap(lambda a, m, e, k: span.both_views(a, m, e, k, config))(
            adjacency, nodes_mask, num_edges.astype(jnp.float32), keys)
        p_up, p_down = views[:, 0], views[:, 1]
        f_up = span.view_objective(p_up, adjacency, nodes_mask, config)
        f_down = span.view_objective(p_down, adjacency, nodes_mask, config)
        return p_up, p_down, jnp.stack([f_up, f_down], 1)

    if mesh is None:
        return jax.jit(both)
    rows = NamedSharding(mesh, P("data"))
    return jax.jit(both, in_shardings=(rows,) * 5, out_shardings=(rows, rows, rows))


def _unsafe_cpu_mesh(mesh: Mesh | None, config: span.SpanConfig) -> bool:
    """Whether ``mesh`` spans several CPU devices and ``config`` needs ``eigvalsh``.

    jaxlib 0.10.2's CPU LAPACK kernels split a batched ``eigh`` over the
    process-wide intra-op thread pool and block a pool thread until the parts
    finish (``ParallelBatchMap``); with the graph axis sharded over several CPU
    devices, every device's ``eigh`` can hold a pool thread while its parts
    wait in the queue of the same exhausted pool, and the precompute may never
    return (on a 2-core host: 400 graphs of up to 36 nodes over 8 virtual
    devices hung in one try of four). The default configuration computes no
    eigendecomposition (``spectrum="auto"`` takes the exact Frobenius form of
    the "norm" objective), so it shards over CPU devices; only the
    eigendecomposition paths run such meshes on one device.
    """
    return config.needs_eigendecomposition and mesh is not None and mesh.devices.size > 1 and all(d.platform == "cpu" for d in mesh.devices.flat)


def compute(padded: dict[str, np.ndarray], config: span.SpanConfig, *, chunk: int = 32, bucket: int = 8,
            mesh: Mesh | None = None, progress: bool = True, desc: str = "SPAN",
            cpu_sharding: bool = False) -> SpanResult:
    """SPAN probabilities for every graph of a padded array dict.

    Args:
      padded: ``edges`` [G, E, 2], ``num_nodes`` [G], ``num_edges`` [G],
        ``graph_id`` [G] (as records of a padded graph dataset).
      config: SPAN hyper-parameters.
      chunk: graphs per jitted call (rounded up to a multiple of the mesh ``data`` size).
      bucket: node buckets are multiples of this (padding waste vs compiles).
      mesh: shard each chunk's graph axis over ``data`` (None: default device).
        With an eigendecomposition in the objective, a mesh of several CPU
        devices runs on one device instead unless ``cpu_sharding`` is set:
        see :func:`_unsafe_cpu_mesh` (a CPU's cores are used by the LAPACK
        calls either way).
      progress: tqdm bar over graphs.
      cpu_sharding: shard over a multi-device CPU mesh anyway (small graphs, tests).

    Returns:
      A :class:`SpanResult` with probabilities padded to the input's N.
    """
    from tqdm.auto import tqdm

    edges = np.asarray(padded[gb.EDGES], np.int32)
    num_nodes = np.asarray(padded[gb.NUM_NODES], np.int32)
    num_edges = np.asarray(padded[gb.NUM_EDGES], np.int32)
    ids = np.asarray(padded[gb.GRAPH_ID], np.int64)
    count, max_edges = edges.shape[0], edges.shape[1]
    max_nodes = int(padded[gb.NODE_FEATURES].shape[1]) if gb.NODE_FEATURES in padded else int(
        max(num_nodes.max(initial=1), 1))
    if _unsafe_cpu_mesh(mesh, config) and not cpu_sharding:
        mesh = None
    if mesh is not None:
        chunk = int(np.ceil(chunk / mesh.shape["data"]) * mesh.shape["data"])
    p_max = np.zeros((count, max_nodes, max_nodes), np.float32)
    p_min = np.zeros_like(p_max)
    objective = np.ones((count, 2), np.float32)
    start = time.perf_counter()
    order = np.argsort(num_nodes, kind="stable")
    bar = tqdm(total=count, desc=desc, unit="graph", disable=not progress, leave=False)
    for first in range(0, count, chunk):
        rows = order[first:first + chunk]
        size = int(min(max_nodes, bucket * int(np.ceil(max(num_nodes[rows].max(), 1) / bucket))))
        pad = chunk - len(rows)
        take = np.concatenate([rows, np.full(pad, rows[0])]) if pad else rows
        e_mask = (np.arange(max_edges)[None, :] < num_edges[take][:, None]).astype(np.float32)
        n_used = np.where(np.arange(len(take)) < len(rows), num_nodes[take], 0)  # padding rows: empty graphs
        fn = _compiled(config, size, mesh)
        up, down, f = fn(edges[take], e_mask, n_used.astype(np.int32), num_edges[take] * (n_used > 0),
                         ids[take])
        up, down, f = jax.device_get((up, down, f))
        p_max[rows, :size, :size] = up[:len(rows)]
        p_min[rows, :size, :size] = down[:len(rows)]
        objective[rows] = f[:len(rows)]
        bar.update(len(rows))
    bar.close()
    seconds = time.perf_counter() - start
    flips = np.stack([np.triu(p_max, 1).sum((1, 2)), np.triu(p_min, 1).sum((1, 2))], 1).astype(np.float32)
    return SpanResult(ids, p_max, p_min, flips, objective, (config.ratio * num_edges).astype(np.float32), seconds)


def content_digest(padded: dict[str, np.ndarray]) -> str:
    """Digest of the graphs' structure (ids, sizes, edges): part of the cache key."""
    h = hashlib.blake2b(digest_size=8)
    for key in (gb.GRAPH_ID, gb.NUM_NODES, gb.NUM_EDGES, gb.EDGES):
        h.update(np.ascontiguousarray(padded[key]).tobytes())
    return h.hexdigest()


def cache_path(dataset: str, split: str, config: span.SpanConfig, padded: dict[str, np.ndarray],
               data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{dataset}")
    safe_split = "".join(c if c.isalnum() or c in "-_." else "_" for c in split)
    return (resolve_data_dir(data_dir) / CACHE_FOLDER / safe /
            f"{safe_split}-{config.fingerprint()}-{content_digest(padded)}.npz")


def default_bucket(max_nodes: int) -> int:
    """Node bucket width: about four buckets up to the budget, a multiple of 8.

    Narrower buckets save padded work but each compiles once (~1-2 s on CPU):
    on 1,000 graphs of 20-100 nodes eight buckets cut the compiled time's CPU
    seconds by ~20% but doubled compilation, so the first (uncached) run was
    slower (31 s vs 16 s).
    """
    return max(8, 8 * math.ceil(max_nodes / 4 / 8))


def load_or_compute(dataset: str, split: str, padded: dict[str, np.ndarray], config: span.SpanConfig, *,
                    data_dir: str | os.PathLike | None = None, mesh: Mesh | None = None, chunk: int = 32,
                    bucket: int | None = None, progress: bool = True) -> SpanResult:
    """The cached SPAN result of one split, computed (and saved atomically) on first use."""
    path = cache_path(dataset, split, config, padded, data_dir)
    if path.exists():
        try:
            with np.load(path) as f:
                return SpanResult(f["graph_id"], f["p_max"], f["p_min"], f["expected_flips"], f["objective"],
                                  f["budget"], float(f["seconds"]), True)
        except Exception:  # A damaged cache file is recomputed, not trusted.
            path.unlink(missing_ok=True)
    bucket = bucket or default_bucket(int(padded[gb.NODE_FEATURES].shape[1]) if gb.NODE_FEATURES in padded
                                      else int(np.max(padded[gb.NUM_NODES])))
    result = compute(padded, config, chunk=chunk, bucket=bucket, mesh=mesh, progress=progress,
                     desc=f"SPAN {dataset}/{split}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        np.savez_compressed(tmp, graph_id=result.graph_id, p_max=result.p_max.astype(np.float32),
                            p_min=result.p_min.astype(np.float32), expected_flips=result.expected_flips,
                            objective=result.objective, budget=result.budget, seconds=result.seconds)
        os.replace(tmp, path)
    except OSError as error:
        raise DataError(f"cannot write the SPAN cache {path}: {error.strerror or error}") from None
    return result
