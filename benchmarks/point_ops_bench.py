"""Point ops side by side: jaxcompress.ops (jitted JAX) vs NumPy / SciPy (cKDTree) at 1k-8k points.

Ops, per batch of B clouds of N points:

* ``fps``: farthest point sampling of G centers (NumPy: the incremental loop
  with a running minimum distance, the standard CPU implementation);
* ``knn``: k nearest points of each of the G centers (SciPy: ``cKDTree`` built
  per cloud and queried; the build is counted, as each cloud is new);
* ``chamfer``: Chamfer-L2 between two clouds of N points (SciPy: two
  ``cKDTree`` queries per pair).

Each cell is the median of ``--repeats`` runs after one warm-up (which compiles
the JAX side); the two sides are timed in turns. Ratios are JAX / reference
(< 1 means JAX is faster). CPU only here; on an accelerator the JAX side runs
on the device.

Run: python benchmarks/point_ops_bench.py [--sizes 1024,2048,4096,8192] [--batch 8] [--repeats 5] [--json [PATH]]

References: Qi et al., PointNet++, NeurIPS 2017; Pang et al., Point-MAE, ECCV 2022.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np
from scipy.spatial import cKDTree

from jaxcompress.ops import chamfer_distance, farthest_point_sampling, knn_indices


def fps_numpy(points: np.ndarray, n: int) -> np.ndarray:
    """Incremental FPS over one cloud [N, 3] -> [n] indices (start 0)."""
    idx = np.zeros(n, np.int64)
    dmin = np.full(points.shape[0], np.inf)
    for i in range(1, n):
        dmin = np.minimum(dmin, ((points - points[idx[i - 1]]) ** 2).sum(-1))
        idx[i] = int(np.argmax(dmin))
    return idx


def _reference(op: str, clouds: np.ndarray, other: np.ndarray, centers: np.ndarray, groups: int, k: int) -> None:
    for b in range(clouds.shape[0]):
        if op == "fps":
            fps_numpy(clouds[b], groups)
        elif op == "knn":
            cKDTree(clouds[b]).query(centers[b], k=k)
        else:
            d1, _ = cKDTree(other[b]).query(clouds[b])
            d2, _ = cKDTree(clouds[b]).query(other[b])
            float(np.mean(d1 ** 2) + np.mean(d2 ** 2))


def _ours(op: str, groups: int, k: int):
    if op == "fps":
        return jax.jit(lambda p, q, c: farthest_point_sampling(p, groups))
    if op == "knn":
        return jax.jit(lambda p, q, c: knn_indices(p, c, k))
    return jax.jit(lambda p, q, c: chamfer_distance(p, q, "l2"))


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(sizes: list[int], batch: int, groups: int, k: int, repeats: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        clouds = rng.normal(size=(batch, n, 3)).astype(np.float32)
        other = rng.normal(size=(batch, n, 3)).astype(np.float32)
        centers = clouds[:, :groups]
        args = tuple(jax.device_put(a) for a in (clouds, other, centers))
        for op in ("fps", "knn", "chamfer"):
            fn = _ours(op, groups, k)
            jax.block_until_ready(fn(*args))  # compile
            ours, ref = [], []
            for _ in range(repeats):  # in turns, so background load hits both alike
                ours.append(_median(lambda: jax.block_until_ready(fn(*args)), 1))
                ref.append(_median(lambda: _reference(op, clouds, other, centers, groups, k), 1))
            row = {"op": op, "points": n, "batch": batch, "groups": groups, "k": k,
                   "jax_ms": 1e3 * statistics.median(ours), "reference_ms": 1e3 * statistics.median(ref)}
            row["ratio"] = row["jax_ms"] / row["reference_ms"]
            rows.append(row)
            print(f"{op:8s} N={n:5d}  jax {row['jax_ms']:9.2f} ms  numpy/scipy {row['reference_ms']:9.2f} ms  "
                  f"ratio {row['ratio']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", nargs="?", const="-", default=None, help="write results as JSON (PATH or stdout)")
    args = parser.parse_args()
    rows = bench([int(s) for s in args.sizes.split(",")], args.batch, args.groups, args.k, args.repeats)
    payload = {"benchmark": "point_ops_bench", "backend": jax.default_backend(), "jax_version": jax.__version__,
               "repeats": args.repeats, "rows": rows}
    if args.json == "-":
        print(json.dumps(payload, indent=2))
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
