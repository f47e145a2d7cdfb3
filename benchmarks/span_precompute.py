"""SPAN precompute: our batched, jitted, bucketed JAX version vs per-graph loops in the reference style.

The same graphs (default 1,000 graphs of 20 to 100 nodes from four networkx
generators), the same hyper-parameters (both views, T projected-gradient
steps each, budget 0.2 |E|, GCN-normalised adjacency, normalised steps) and the
same starting points are run by:

* ``jax`` (the default, ``spectrum="auto"``): ``jaxcompress.ssl.span_cache.compute``
  with the library's default chunking and node buckets: graphs sorted by size
  into buckets, ``jit(vmap(...))`` over chunks of graphs, the exact Frobenius
  form of the objective (||eig(M)||_2 = ||M||_F for symmetric M) and the
  Newton projection; timed once including compilation and once compiled;
* ``jax-eigvalsh`` (``--eigvalsh``): the same with ``spectrum="eigvalsh"`` (the
  reference's eigendecomposition every step, autodiff through it). Opt-in:
  with two virtual CPU devices present and the Eigen pool off, a 100-graph
  run of it hung here (jaxlib 0.10.2's CPU ``eigh`` waits on the shared
  intra-op pool, see ``span_cache._unsafe_cpu_mesh``);
* ``numpy``: one graph at a time in a Python loop, ``np.linalg.eigh`` every step
  with the hand-derived gradient, bisection projection (as the reference);
* ``torch``: the reference code's structure: one graph at a time,
  ``torch.linalg.eigvalsh`` + autograd every step, bisection projection
  (needs the ``bench`` extra; skipped when PyTorch is missing).

Per-graph loops are timed on ``--loop-graphs`` graphs (default: all) and
extrapolated to the full set, with the ratio to ours.

Threads: BLAS/LAPACK run single-threaded in every implementation
(``OPENBLAS_NUM_THREADS=1``, ``torch.set_num_threads(1)``): at these sizes a
multi-threaded ``eigh`` is slower, badly so on a shared machine (n = 100 took
25 ms instead of 1.7 ms here). XLA's intra-op Eigen pool is off for the same
reason (``--xla_cpu_multi_thread_eigen=false``; set the flag in ``XLA_FLAGS`` to
override). Ours runs on one CPU device and, with ``--devices K`` (K > 1), also
sharded over K virtual CPU devices along the mesh ``data`` axis, one device
per core, which is how the batched version uses a multi-core host; the
per-graph loops have no such axis. The default is 1 device.

Run: python benchmarks/span_precompute.py [--graphs 1000] [--iterations 20] [--loop-graphs 100] [--devices 2] [--eigvalsh] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys
import time


def _early_setup() -> None:
    """Thread and device settings must be in place before numpy and JAX start."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    devices = 1
    if "--devices" in sys.argv:
        devices = int(sys.argv[sys.argv.index("--devices") + 1])
    flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    if "xla_cpu_multi_thread_eigen" not in flags:
        # Work spreads over cores through the sharded ``data`` axis; the loops' BLAS is single-threaded too.
        flags += " --xla_cpu_multi_thread_eigen=false"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


_early_setup()

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from jaxcompress.data.graphs import batching as gb  # noqa: E402
from jaxcompress.ssl import span, span_cache  # noqa: E402
from tests.ssl import span_numpy_reference as ref  # noqa: E402


def make_graphs(count: int, seed: int = 0, low: int = 20, high: int = 100) -> list[gb.Graph]:
    """``count`` graphs of ``low``..``high`` nodes: ER, BA, Watts-Strogatz and SBM in turn, mean degree ~5."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(count):
        n, s = int(rng.integers(low, high + 1)), int(rng.integers(0, 2**31 - 1))
        kind = i % 4
        if kind == 0:
            g = nx.gnp_random_graph(n, 5.0 / (n - 1), seed=s)
        elif kind == 1:
            g = nx.barabasi_albert_graph(n, 3, seed=s)
        elif kind == 2:
            g = nx.watts_strogatz_graph(n, 4, 0.2, seed=s)
        else:
            g = nx.stochastic_block_model([n // 2, n - n // 2], [[10 / n, 1 / n], [1 / n, 10 / n]], seed=s)
        graphs.append(gb.from_networkx(g))
    return graphs


def initial_points(ids: np.ndarray, sizes: np.ndarray, config: span.SpanConfig) -> list[tuple[np.ndarray, ...]]:
    """The exact U(1e-5, 1/n) starting points the JAX version uses, for the loops."""
    keys = span.graph_keys(config.seed, jax.numpy.asarray(ids))
    out = []
    for key, n in zip(keys, sizes):
        k_up, k_down = jax.random.split(key)
        out.append(tuple(1e-5 + np.asarray(span.pair_uniform(k, int(n)), np.float64) * (1.0 / n - 1e-5)
                         for k in (k_up, k_down)))
    return out


def numpy_loop(graphs: list[gb.Graph], inits: list, config: span.SpanConfig) -> list[np.ndarray]:
    results = []
    for graph, (up, down) in zip(graphs, inits):
        a = graph.adjacency().astype(np.float64)
        results.append(ref.optimise(a, up, 1.0, config.operator, config.ratio, config.lr, config.iterations))
        results.append(ref.optimise(a, down, -1.0, config.operator, config.ratio, config.lr, config.iterations))
    return results


def torch_loop(graphs: list[gb.Graph], inits: list, config: span.SpanConfig) -> list[np.ndarray] | None:
    """The reference code's structure in PyTorch: autograd through eigvalsh, one graph at a time."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)

    def normalise(x: torch.Tensor) -> torch.Tensor:
        x = x + torch.eye(x.shape[0], dtype=x.dtype)
        d = x.sum(1).pow(-0.5)
        return d[:, None] * x * d[None, :]

    def project(v: torch.Tensor, budget: float) -> torch.Tensor:
        if torch.clamp(v, 0, 1).sum() > budget:
            lo, hi = min(float(v.min()), 0.0), float(v.max())
            while hi - lo > 1e-7:
                mid = 0.5 * (lo + hi)
                if torch.clamp(v - mid, 0, 1).sum() > budget:
                    lo = mid
                else:
                    hi = mid
            return torch.clamp(v - hi, 0, 1)
        return torch.clamp(v, 0, 1)

    results = []
    for graph, starts in zip(graphs, inits):
        a = torch.as_tensor(graph.adjacency(), dtype=torch.float64)
        n = a.shape[0]
        iu = torch.triu_indices(n, n, 1)
        c = (torch.ones(n, n, dtype=a.dtype) - torch.eye(n, dtype=a.dtype) - a) - a
        ref_norm = torch.linalg.eigvalsh(normalise(a)).norm()
        budget = config.ratio * float(a.sum()) / 2
        for sign, start in zip((1.0, -1.0), starts):
            v = project(torch.as_tensor(start[iu[0], iu[1]].copy()), budget)
            for t in range(config.iterations):
                v = v.detach().requires_grad_(True)
                p = torch.zeros(n, n, dtype=a.dtype)
                p = p.index_put((iu[0], iu[1]), v)
                p = p + p.T
                f = torch.linalg.eigvalsh(normalise(a + c * p)).norm() / ref_norm
                (grad,) = torch.autograd.grad(sign * f, v)
                grad = grad / grad.abs().max().clamp_min(1e-12)
                v = project(v.detach() + config.lr / np.sqrt(t + 2.0) * grad, budget)
            p = torch.zeros(n, n, dtype=a.dtype)
            p[iu[0], iu[1]] = v
            results.append((p + p.T).numpy())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--loop-graphs", type=int, default=None, help="graphs timed by the per-graph loops")
    parser.add_argument("--chunk", type=int, default=32, help="graphs per jitted call (the library's default)")
    parser.add_argument("--eigvalsh", action="store_true",
                        help="also time spectrum='eigvalsh' (jaxlib 0.10.2's CPU eigh can deadlock, see above)")
    parser.add_argument("--devices", type=int, default=1,
                        help="virtual CPU devices for the sharded run (set before JAX starts; > 1 adds it)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    graphs = make_graphs(args.graphs)
    budget = gb.GraphBudget.covering(graphs)
    padded = gb.stack_padded(graphs, budget)
    config = span.SpanConfig(iterations=args.iterations)
    rows: dict[str, dict[str, float]] = {}
    results: dict[str, span_cache.SpanResult] = {}
    from jaxcompress.train.config import MeshConfig
    from jaxcompress.train.sharding import build_mesh

    mesh = build_mesh(MeshConfig()) if jax.device_count() > 1 else None
    bucket = span_cache.default_bucket(budget.max_nodes)
    variants = [("jax", config, None)]
    if args.eigvalsh:
        variants.append(("jax-eigvalsh", dataclasses.replace(config, spectrum="eigvalsh"), None))
    if mesh is not None:
        variants.append((f"jax sharded x{jax.device_count()}", config, mesh))
    for name, cfg, where in variants:
        start = time.perf_counter()
        span_cache.compute(padded, cfg, chunk=args.chunk, bucket=bucket, mesh=where, progress=False)
        with_compile = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        results[name] = span_cache.compute(padded, cfg, chunk=args.chunk, bucket=bucket, mesh=where, progress=False)
        rows[name] = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                      "seconds_with_compile": with_compile}
    loop_count = min(args.loop_graphs or args.graphs, args.graphs)
    sizes = np.asarray([g.num_nodes for g in graphs[:loop_count]])
    inits = initial_points(padded[gb.GRAPH_ID][:loop_count], sizes, config)
    check = {}
    for name, loop in (("numpy", numpy_loop), ("torch", torch_loop)):
        start, cpu = time.perf_counter(), time.process_time()
        out = loop(graphs[:loop_count], inits, config)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if out is None:
            rows[name] = {"seconds": float("nan"), "skipped": "PyTorch is not installed (pip install -e .[bench])"}
            continue
        rows[name] = {"seconds": seconds * args.graphs / loop_count, "cpu_seconds": cpu * args.graphs / loop_count,
                      "measured_graphs": loop_count}
        diffs = [np.abs(out[2 * i][:g.num_nodes, :g.num_nodes] - results["jax"].p_max[i][:g.num_nodes, :g.num_nodes]).max()
                 for i, g in enumerate(graphs[:loop_count])]
        check[name] = float(np.max(diffs))
    ours = rows["jax"]["seconds"]
    print(f"threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; loops timed on {loop_count} "
          f"graphs and scaled to {args.graphs}")
    print(f"SPAN precompute: {args.graphs} graphs of {min(g.num_nodes for g in graphs)}-"
          f"{max(g.num_nodes for g in graphs)} nodes, 2 views x {args.iterations} steps, "
          f"{platform.processor() or platform.machine()}, {jax.device_count()} device(s), JAX {jax.__version__}")
    print(f"| implementation | seconds ({args.graphs} graphs) | CPU seconds | with compile | graphs/s | "
          "time / ours (jax default, 1 device) |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        if "skipped" in row:
            print(f"| {name} | skipped: {row['skipped']} | | | | |")
            continue
        compile_cell = f"{row['seconds_with_compile']:.1f}" if "seconds_with_compile" in row else "-"
        print(f"| {name} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {compile_cell} | "
              f"{args.graphs / row['seconds']:.1f} | "
              f"{row['seconds'] / ours:.2f}x |")
    print("max |P_loop - P_jax| over the checked graphs (view 1):",
          ", ".join(f"{k} {v:.2e}" for k, v in check.items()))
    if args.json:
        setup = {"graphs": args.graphs, "iterations": args.iterations, "chunk": args.chunk, "bucket": bucket,
                 "devices": jax.device_count(), "jax": jax.__version__}
        pathlib.Path(args.json).write_text(json.dumps({"setup": setup, "rows": rows, "agreement": check}, indent=2))


if __name__ == "__main__":
    main()
