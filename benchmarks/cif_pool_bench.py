"""CIF sequence pooling: dense vs XLA vs Pallas vs a per-frame loop, forward and forward+backward.

All implementations of ``jaxcompress.ops.cif_pool`` run the same inputs in one
process: the dense overlap-matrix reference (O(S*T)), the XLA two-bin path
(O(S), custom VJP), the same path differentiated by plain autodiff (to show
what the custom VJP buys), and the Pallas kernel (compiled on TPU/GPU; on CPU
it only runs in the Pallas interpreter, a correctness check, so it is left out
of the timing unless asked for). Beside them: ``loop``, a straightforward
per-frame integrate-and-fire recurrence (a ``lax.scan`` over frames, like the
reference PyTorch implementation's Python loop), and ``elementwise``, one
plain read-and-write pass over ``x`` (the bandwidth limit of a streaming op);
the table gives each forward's effective bandwidth, counted as reading ``x``
and writing the pooled frames. Each cell is the median wall time of several
runs after a warm-up, with the implementations timed in turns; ratios are
relative to ``dense`` in the same run.

Run: python benchmarks/cif_pool_bench.py [--sizes 8x256x128,8x1024x256]
                                         [--repeats 7] [--impls dense,xla,pallas]
                                         [--json [PATH]]

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.ops import cif_pool, mix_alpha

DEFAULT_SIZES = "8x500x768,8x1600x768,8x4000x768"
DEFAULT_IMPLS = "dense,xla,xla_autodiff,loop,pallas"


def _parse_sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(
                f"error: --sizes items must look like BxSxD (e.g. 8x1024x256); got {item!r}"
            )
        sizes.append(tuple(int(p) for p in parts))
    return sizes


def _round_robin_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median seconds of every function, timed in turns.

    Taking turns (rather than all runs of one, then all of the next) spreads
    any change in machine load evenly over the implementations, so the ratios
    stay fair on a shared machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _inputs(b: int, s: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(b, s, d)), jnp.float32)
    # A learned alpha mixed at lambda = 0.6: about 0.45 outputs per frame.
    alpha = jnp.asarray(rng.uniform(0.05, 0.35, size=(b, s)), jnp.float32)
    lengths = rng.integers(s // 2, s + 1, size=b)
    lengths[0] = s
    mask = jnp.asarray(np.arange(s)[None, :] < lengths[:, None])
    return x, alpha, mask


def loop_cif(x: jax.Array, alpha: jax.Array, mask: jax.Array, num_frames: int, beta: float = 1.0) -> jax.Array:
    """Integrate-and-fire frame by frame: [B, S, D] -> [B, num_frames, D] (training mode).

    The recurrence of Dong & Xu's CIF as a scan over frames: accumulate
    ``alpha_t * x_t``; when the accumulated weight reaches ``beta``, the part of
    ``alpha_t`` that completes it closes the current output and the rest starts
    the next. Fired frames are scan outputs scattered into place afterwards, so
    the backward pass stores O(S * D), not the output buffer per step.
    """
    alpha = jnp.where(mask, alpha, 0.0).astype(jnp.float32)
    batch = x.shape[0]

    def step(carry, inputs):
        weight, state, count = carry
        a, h = inputs
        total = weight + a
        fire = total >= beta
        closing = jnp.where(fire, beta - weight, a)
        frame = state + closing[:, None] * h
        rest = a - closing
        carry = (jnp.where(fire, rest, total), jnp.where(fire[:, None], rest[:, None] * h, frame),
                 count + fire.astype(jnp.int32))
        return carry, (frame, fire, count)

    init = (jnp.zeros(batch), jnp.zeros((batch, x.shape[2]), jnp.float32), jnp.zeros(batch, jnp.int32))
    _, (frames, fired, slots) = jax.lax.scan(step, init, (alpha.T, jnp.swapaxes(x, 0, 1).astype(jnp.float32)))
    rows = jnp.broadcast_to(jnp.arange(batch)[None, :], slots.shape)
    slots = jnp.where(fired, slots, num_frames)  # unfired steps land out of range and are dropped
    out = jnp.zeros((batch, num_frames, x.shape[2]), jnp.float32)
    return out.at[rows, slots].add(frames, mode="drop").astype(x.dtype)


def bench_size(b: int, s: int, d: int, impls: list[str], repeats: int) -> dict:
    """Median seconds per implementation for one size, forward and fwd+bwd."""
    x, alpha, mask = _inputs(b, s, d)
    num_frames = s // 2 + 8  # static, comfortably above the expected ~0.45 * S
    lam = jnp.float32(0.6)
    row: dict = {"B": b, "S": s, "D": d, "T": num_frames}
    fwd_fns, grad_fns = {}, {}
    for impl in impls:

        def pooled(x, alpha, lam, impl=impl):
            if impl == "loop":
                return loop_cif(x, mix_alpha(alpha, lam), mask, num_frames)
            out = cif_pool(x, mix_alpha(alpha, lam), mask, num_frames=num_frames,
                           implementation=impl)
            return out.frames

        fwd = jax.jit(pooled)
        grad = jax.jit(jax.grad(lambda x, a, l, f=pooled: jnp.sum(f(x, a, l) ** 2),
                                argnums=(0, 1, 2)))
        fwd_fns[impl] = functools.partial(fwd, x, alpha, lam)
        grad_fns[impl] = functools.partial(grad, x, alpha, lam)
    fwd_fns["elementwise"] = functools.partial(jax.jit(lambda x: x * 2.0), x)
    row["forward"] = _round_robin_medians(fwd_fns, repeats)
    row["forward_backward"] = _round_robin_medians(grad_fns, repeats)
    # Effective bandwidth: bytes of x read plus pooled frames written, per second.
    moved = {name: x.nbytes + b * num_frames * d * x.dtype.itemsize for name in impls}
    moved["elementwise"] = 2 * x.nbytes
    row["forward_gb_per_s"] = {name: moved[name] / t / 1e9 for name, t in row["forward"].items()}
    if "loop" in impls and "xla" in impls:  # the loop is an independent check of the op's values
        reference = cif_pool(x, mix_alpha(alpha, lam), mask, num_frames=num_frames, implementation="xla")
        valid = np.asarray(reference.mask)[..., None]
        diff = np.abs(np.asarray(fwd_fns["loop"]()) - np.asarray(reference.frames)) * valid
        row["loop_vs_xla_max_abs_diff"] = float(diff.max())
    print(f"  measured B={b} S={s} D={d}", file=sys.stderr, flush=True)
    return row


def _table(rows: list[dict], impls: list[str]) -> str:
    base = "dense" if "dense" in impls else impls[0]
    head = ["B x S x D", "pass"] + [f"{i} ms" for i in impls] + [
        f"{i}/{base}" for i in impls if i != base
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for row in rows:
        for kind in ("forward", "forward_backward"):
            t = row[kind]
            cells = [f"{row['B']}x{row['S']}x{row['D']}", "fwd" if kind == "forward" else "fwd+bwd"]
            cells += [f"{1e3 * t[i]:.2f}" for i in impls]
            cells += [f"{t[i] / t[base]:.3f}" for i in impls if i != base]
            lines.append(" | ".join(cells))
    table = "\n".join("| " + line + " |" for line in lines)
    names = impls + ["elementwise"]
    bw = [" | ".join(["B x S x D"] + [f"{i} GB/s" for i in names]), " | ".join("---" for _ in range(len(names) + 1))]
    for row in rows:
        bw.append(" | ".join([f"{row['B']}x{row['S']}x{row['D']}"]
                             + [f"{row['forward_gb_per_s'][i]:.2f}" for i in names]))
    return table + "\n\nForward effective bandwidth (x read + frames written):\n\n" + \
        "\n".join("| " + line + " |" for line in bw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated BxSxD")
    parser.add_argument("--impls", default=DEFAULT_IMPLS,
                        help="comma-separated: dense, xla, xla_autodiff, pallas, auto")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per cell (median)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write the results as JSON to PATH (or stdout)")
    args = parser.parse_args(argv)
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    allowed = {"dense", "xla", "xla_autodiff", "pallas", "auto", "loop"}
    if not impls or set(impls) - allowed:
        raise SystemExit(
            f"error: --impls must be a subset of {sorted(allowed)}; got {args.impls!r}"
        )
    if args.repeats < 1:
        raise SystemExit(f"error: --repeats must be >= 1; got {args.repeats}")
    sizes = _parse_sizes(args.sizes)
    if jax.default_backend() == "cpu" and args.impls == DEFAULT_IMPLS:
        impls.remove("pallas")  # the interpreter is a correctness check, not a timing

    rows = [bench_size(b, s, d, impls, args.repeats) for b, s, d in sizes]
    backend = jax.default_backend()
    note = " (pallas runs in the Pallas interpreter)" if backend == "cpu" and "pallas" in impls else ""
    print(f"cif_pool on {backend}: {jax.devices()[0].device_kind}{note}; "
          f"median of {args.repeats} runs after warm-up; ratios vs dense (lower is faster)")
    print(_table(rows, impls))
    for row in rows:
        if "loop_vs_xla_max_abs_diff" in row:
            print(f"loop vs xla at {row['B']}x{row['S']}x{row['D']}: max |diff| over valid frames "
                  f"{row['loop_vs_xla_max_abs_diff']:.2e}")
    if args.json is not None:
        payload = {
            "benchmark": "cif_pool",
            "backend": backend,
            "device_kind": jax.devices()[0].device_kind,
            "jax": jax.__version__,
            "python": platform.python_version(),
            "repeats": args.repeats,
            "unit": "seconds (median)",
            "results": rows,
        }
        text = json.dumps(payload, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
