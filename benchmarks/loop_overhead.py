"""The training loop's overhead: ``jaxcompress.train`` vs a bare hand-written jit loop.

Both train the same MLP on the same digits batches with the same optimiser.
The bare loop keeps the whole dataset in memory and does nothing but step;
ours also reads each batch from the array_record files (in a prefetch thread
that puts ``data.device_prefetch`` steps' batches on the device at a time),
sums metrics on the device and logs them, with checkpoints off.
Steady-state time per step is measured after a warm-up; the bare loop and ours
take turns ``--repeats`` times in one process (a step this small makes single
timings swing with scheduling noise) and the ratio is of the medians.

Run: python benchmarks/loop_overhead.py [--steps 600] [--repeats 5] [--steps-per-call 1 8] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress import data as data_lib
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.nn import MLPClassifier
from jaxcompress.train import train
from jaxcompress.train.optim import make_optimizer


def bare_loop_step_time(config, warmup: int, steps: int) -> float:
    """Seconds per step of the simplest correct jit loop on the same work."""
    source = data_lib.load_split(config.data.name, config.data.train_split)
    everything = source.read(np.arange(len(source)))
    images = jnp.asarray(everything["image"], jnp.float32)
    labels = jnp.asarray(everything["label"], jnp.int32)
    model = MLPClassifier(tuple(config.model.hidden_sizes), 10, config.model.dropout)
    params = jax.tree.map(lambda x: x.unbox() if hasattr(x, "unbox") else x,
                          model.init(jax.random.key(0), images[:1])["params"],
                          is_leaf=lambda x: hasattr(x, "unbox"))
    tx = make_optimizer(config.optim, config.steps)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, idx, rng):
        def loss_fn(p):
            logits = model.apply({"params": p}, images[idx], train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch = config.data.batch_size
    indices = [jnp.asarray(data_lib.global_batch_indices(s, batch, len(source), 0)) for s in range(warmup + steps)]
    key = jax.random.key(0)
    for s in range(warmup):
        params, opt_state, loss = step(params, opt_state, indices[s], jax.random.fold_in(key, s))
    loss.block_until_ready()
    start = time.perf_counter()
    for s in range(warmup, warmup + steps):
        params, opt_state, loss = step(params, opt_state, indices[s], jax.random.fold_in(key, s))
    loss.block_until_ready()
    return (time.perf_counter() - start) / steps


def our_loop_step_time(config, warmup: int, steps: int) -> float:
    """Seconds per step of ``jaxcompress.train`` between two synchronised log steps."""
    marks: dict[int, float] = {}

    def on_step(step: int) -> None:
        if step in (warmup, warmup + steps):
            marks[step] = time.perf_counter()  # metrics were fetched at this step: synchronised

    with tempfile.TemporaryDirectory() as workdir:
        train(config, workdir, quiet=True, on_step=on_step)
    return (marks[warmup + steps] - marks[warmup]) / steps


SIZES = ((64, "128,128"), (512, "1024,1024"))  # (global batch, hidden widths)


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
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="timings of each loop, taken in turns")
    parser.add_argument("--steps-per-call", type=int, nargs="+", default=[1, 8], metavar="K",
                        help="ours at each of these steps_per_call settings (one row each)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write the results as JSON to PATH (--json alone: stdout)")
    args = parser.parse_args()
    # log_every must divide both marks so each is a synchronised point.
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup")
    rows = []
    for batch, hidden in SIZES:
        config = apply_overrides(get_preset("digits-mlp"), [
            f"steps={args.warmup + args.steps}", f"log_every={args.warmup}", "eval_every=0",
            "checkpoint_every=0", "data.eval_split=", f"data.batch_size={batch}", f"model.hidden_sizes={hidden}"])
        bare_s: list[float] = []
        ours_s: dict[int, list[float]] = {per_call: [] for per_call in args.steps_per_call}
        for _ in range(args.repeats):
            bare_s.append(bare_loop_step_time(config, args.warmup, args.steps))
            for per_call in args.steps_per_call:
                ours_s[per_call].append(our_loop_step_time(
                    apply_overrides(config, [f"steps_per_call={per_call}"]), args.warmup, args.steps))
        bare = statistics.median(bare_s)
        for per_call, samples in ours_s.items():
            ours = statistics.median(samples)
            rows.append({"devices": jax.device_count(), "batch": batch, "hidden": hidden, "steps": args.steps,
                         "steps_per_call": per_call, "repeats": args.repeats, "bare_ms_per_step": bare * 1e3,
                         "ours_ms_per_step": ours * 1e3, "ratio_ours_over_bare": ours / bare,
                         "bare_ms_samples": [t * 1e3 for t in bare_s],
                         "ours_ms_samples": [t * 1e3 for t in samples]})
    if args.json == "-":
        _write_json(rows, "-")
        return
    if args.json:
        _write_json(rows, args.json)
    print(f"medians of {args.repeats} turns each")
    print("| devices | batch | hidden | steps_per_call | bare jit loop (ms/step) | jaxcompress.train (ms/step) "
          "| ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['devices']} | {row['batch']} | {row['hidden']} | {row['steps_per_call']} | "
              f"{row['bare_ms_per_step']:.3f} | "
              f"{row['ours_ms_per_step']:.3f} | {row['ratio_ours_over_bare']:.2f}x |")


if __name__ == "__main__":
    main()
