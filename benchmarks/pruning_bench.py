"""Pruning costs and pay-offs, side by side in one run.

1. Mask overhead: the jitted train step with the pruning wrapper (gradual
   magnitude schedule, masks recomputed every ``--frequency`` steps) vs the
   same dense step, in alternating rounds. Target: <= 1.10x.
2. Surgery speed-up: the forward pass of a model with 50% of its hidden
   neurons removed by surgery vs the same model with those neurons masked
   (zeroed but still computed).

Run: python benchmarks/pruning_bench.py [--width 1024] [--batch 256] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress.pruning import Pruner, wrap
from jaxcompress.compress.structured import choose_units, importance, mask_units, shrink, unit_groups
from jaxcompress.nn import MLPClassifier
from jaxcompress.nn.mlp import MLPConfig


def _unboxed_params(model: MLPClassifier, x: jax.Array):
    params = model.init(jax.random.key(0), x)["params"]
    return jax.tree.map(lambda v: v.unbox() if hasattr(v, "unbox") else v, params,
                        is_leaf=lambda v: hasattr(v, "unbox"))


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_stepper(model, params, tx, x, y):
    """A function running ``n`` consecutive train steps (state carried, as in training)."""

    @jax.jit
    def step(params, state):
        def loss_fn(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    carry = [params, tx.init(params)]

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            carry[0], carry[1] = step(carry[0], carry[1])
        jax.block_until_ready(carry[0])
        return (time.perf_counter() - start) / n

    run(20)  # compile and warm up, past the first mask update
    return run


def interleaved_ratio(reference, ours, steps: int, rounds: int = 5) -> tuple[float, float, float]:
    """Median per-step times and median ratio over rounds that alternate the two,
    so load from other processes hits both alike."""
    pairs = [(reference(steps), ours(steps)) for _ in range(rounds)]
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            statistics.median(p[1] / p[0] for p in pairs))


def _write_json(payload: object, path: str) -> None:
    """Prints ``payload`` as JSON (path ``-``) or writes it to ``path``."""
    text = json.dumps(payload, indent=2)
    if path == "-":
        print(text)
    else:
        with open(path, "w") as f:
            f.write(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed round (5 rounds)")
    parser.add_argument("--frequency", type=int, default=10, help="steps between mask updates")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write the results as JSON to PATH (--json alone: stdout)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(args.batch, 64)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, size=args.batch))
    hidden = (args.width, args.width)
    model = MLPClassifier(hidden_sizes=hidden, num_classes=10)
    params = _unboxed_params(model, x)

    dense_tx = optax.adamw(1e-3)
    pruner = Pruner(method="magnitude", sparsity=0.9, schedule="gradual", end_step=100 * args.steps,
                    frequency=args.frequency)
    dense_time, pruned_time, overhead = interleaved_ratio(
        make_stepper(model, params, dense_tx, x, y), make_stepper(model, params, wrap(dense_tx, pruner), x, y),
        args.steps)

    groups = unit_groups(MLPConfig(hidden_sizes=hidden), params)
    keep = choose_units(importance(params, groups), 0.5)
    masked = jax.tree.map(jnp.asarray, mask_units(params, groups, keep))
    small, changes = shrink(params, groups, keep)
    small_model = MLPClassifier(hidden_sizes=tuple(changes[f"model.hidden_sizes.{i}"] for i in range(2)),
                                num_classes=10)
    forward = jax.jit(lambda p, inputs: model.apply({"params": p}, inputs))
    small_forward = jax.jit(lambda p, inputs: small_model.apply({"params": p}, inputs))
    small = jax.tree.map(jnp.asarray, small)
    masked_latency = _median_time(forward, masked, x, repeats=50)
    shrunk_latency = _median_time(small_forward, small, x, repeats=50)
    np.testing.assert_allclose(small_forward(small, x), forward(masked, x), rtol=1e-4, atol=1e-4)

    rows = {
        "device": jax.devices()[0].device_kind,
        "mlp": f"64-{args.width}-{args.width}-10, batch {args.batch}",
        "dense_train_step_ms": dense_time * 1e3, "pruned_train_step_ms": pruned_time * 1e3,
        "mask_update_frequency": args.frequency, "mask_overhead_ratio": overhead,
        "masked_forward_ms": masked_latency * 1e3, "shrunk_forward_ms": shrunk_latency * 1e3,
        "surgery_speedup": masked_latency / shrunk_latency,
    }
    if args.json == "-":
        _write_json(rows, "-")
        return
    if args.json:
        _write_json(rows, args.json)
    print(f"device: {rows['device']}; model: {rows['mlp']}")
    print("| measurement | reference (ms) | ours (ms) | ratio |")
    print("|---|---|---|---|")
    print(f"| train step: dense vs pruning wrapper (masks every {args.frequency} steps) | "
          f"{rows['dense_train_step_ms']:.3f} | "
          f"{rows['pruned_train_step_ms']:.3f} | {rows['mask_overhead_ratio']:.3f}x (overhead) |")
    print(f"| forward: 50% neurons masked vs removed | {rows['masked_forward_ms']:.3f} | "
          f"{rows['shrunk_forward_ms']:.3f} | {rows['surgery_speedup']:.2f}x (speed-up) |")


if __name__ == "__main__":
    main()
