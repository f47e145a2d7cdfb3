"""Quantized vs float inference: latency, weight bytes and accuracy, side by side in one run.

For a trained MLP and a trained CNN (digits, trained here through the core
loop) the same evaluation batch goes through:

* ``float``: the float32 model;
* ``qwix w8``: qwix PTQ, int8 weights per channel, float activations (Dense
  layers only on the CNN: qwix 0.1.8 refuses weight-only conv PTQ);
* ``qwix w8a8``: qwix PTQ, int8 weights and dynamic int8 activations (the
  matmuls/convs run int8 x int8 -> int32);
* ``qwix w4``: qwix PTQ, int4 weights (Dense layers only);
* ``ours int4``: weights held as packed nibbles (two per byte) and per-channel
  scales, dequantised inside the jitted forward pass.

Latency is the median over ``--repeats`` interleaved rounds (each round times
every variant once) of the jitted forward on one ``--batch``-row batch after a
warm-up; ratios are against ``float`` in the same run. Weight bytes count the kernels and biases as held in memory.

The third default model is a 1024-wide MLP, where the weights, not the
per-call overhead, dominate.

Run: python benchmarks/quantized_inference.py [--batch 1024] [--repeats 50] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.compress import quantize as Q
from jaxcompress.compress import qwix_quant as QW
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.nn.classifiers import build_classifier
from jaxcompress.train import train
from jaxcompress.train.checkpoint import restore_params


def interleaved_latencies(calls: dict[str, tuple[Callable[..., Any], tuple]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds.

    Every round times each variant once, so load changes on a shared machine
    hit all variants alike instead of whichever happened to run then.
    """
    for fn, args in calls.values():  # compile + warm-up
        jax.block_until_ready(fn(*args))
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def nbytes(tree: Any) -> int:
    total = 0.0
    for leaf in jax.tree.leaves(tree):
        bits = jnp.iinfo(leaf.dtype).bits if jnp.issubdtype(leaf.dtype, jnp.integer) else leaf.dtype.itemsize * 8
        total += leaf.size * bits / 8
    return int(np.ceil(total))


def variants(model: Any, params: Any, x: jax.Array, is_cnn: bool) -> dict[str, tuple[Callable, Any, str]]:
    """name -> (jitted forward, its params, note)."""
    out: dict[str, tuple[Callable, Any, str]] = {}
    out["float"] = (jax.jit(lambda p, v: model.apply({"params": p}, v)), params, "")
    dense_only = "hidden.*|logits" if is_cnn else ".*"
    for name, bits, act, path, note in (
            ("qwix w8", 8, None, dense_only, "Dense layers only (qwix 0.1.8: no weight-only conv PTQ)" if is_cnn else ""),
            ("qwix w8a8", 8, 8, ".*", ""),
            ("qwix w4", 4, None, dense_only, "Dense layers only" if is_cnn else "")):
        try:
            qmodel, qparams = QW.ptq_model(model, params, x[:1], weight_bits=bits, act_bits=act, module_path=path)
            fn = jax.jit(lambda p, v, m=qmodel: m.apply({"params": p}, v))
            jax.block_until_ready(fn(qparams, x))
            out[name] = (fn, qparams, note)
        except (ConfigError, Exception) as exc:  # report what qwix cannot do here, keep going
            out[name] = (None, None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    packed = Q.pack_int4(params)
    out["ours int4"] = (jax.jit(lambda p, v: model.apply({"params": Q.unpack_int4(p)}, v)), packed,
                        "packed nibbles, dequantised in the jitted forward")
    return out


def bench_model(spec: str, steps: int, batch: int, repeats: int) -> list[dict[str, Any]]:
    """``spec`` is a preset name, optionally with overrides: ``digits-mlp:model.hidden_sizes=[1024,1024]``."""
    preset, _, overrides = spec.partition(":")
    config = apply_overrides(get_preset(preset), [f"steps={steps}", "eval_every=0", "checkpoint_every=0",
                                                  *filter(None, overrides.split(";"))])
    preset = spec if not overrides else f"{preset} ({overrides.split('=')[-1]})"
    with tempfile.TemporaryDirectory() as workdir:
        train(config, workdir, quiet=True)
        params = jax.tree.map(jnp.asarray, restore_params(workdir))
    model = build_classifier(config.model, 10)
    source = data_lib.load_split("digits", "validation")
    records = source.read(np.arange(len(source)))
    images, labels = jnp.asarray(records["image"]), np.asarray(records["label"])
    x = jnp.resize(images, (batch,) + images.shape[1:])  # one fixed batch for timing
    is_cnn = hasattr(config.model, "channels")
    rows = []
    runnable = variants(model, params, x, is_cnn)
    latency = interleaved_latencies({name: (fn, (p, x)) for name, (fn, p, _) in runnable.items() if fn is not None},
                                    repeats)
    for name, (fn, p, note) in runnable.items():
        if fn is None:
            rows.append({"model": preset, "variant": name, "note": note})
            continue
        accuracy = float((np.asarray(fn(p, images)).argmax(-1) == labels).mean())
        rows.append({"model": preset, "variant": name, "weight_bytes": nbytes(p), "accuracy": accuracy,
                     "latency_ms": 1e3 * latency[name], "note": note})
    base = rows[0]
    for row in rows:
        if "latency_ms" in row:
            row["speedup_vs_float"] = base["latency_ms"] / row["latency_ms"]
            row["bytes_vs_float"] = row["weight_bytes"] / base["weight_bytes"]
            row["accuracy_change"] = row["accuracy"] - base["accuracy"]
    return rows


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
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--steps", type=int, default=600, help="training steps of each model")
    parser.add_argument("--presets", default="digits-mlp,digits-cnn,digits-mlp:model.hidden_sizes=[1024,1024]",
                        help="comma-separated PRESET[:key=value;...] models")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write the rows as JSON to PATH (--json alone: stdout)")
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind} ({jax.device_count()} devices); batch {args.batch}")
    rows = []
    for preset in re.split(r",(?![^\[]*\])", args.presets):  # commas inside [...] belong to a value
        rows += bench_model(preset, args.steps, args.batch, args.repeats)
    print(f"{'model':<20} {'variant':<10} {'weight bytes':>12} {'bytes x':>8} {'accuracy':>8} {'d acc':>7} "
          f"{'latency ms':>10} {'speedup':>8}  note")
    for r in rows:
        if "latency_ms" not in r:
            print(f"{r['model']:<20} {r['variant']:<10} {'-':>12} {'-':>8} {'-':>8} {'-':>7} {'-':>10} {'-':>8}  "
                  f"{r['note']}")
            continue
        print(f"{r['model']:<20} {r['variant']:<10} {r['weight_bytes']:>12,} {r['bytes_vs_float']:>8.3f} "
              f"{r['accuracy']:>8.4f} {r['accuracy_change']:>+7.4f} {r['latency_ms']:>10.3f} "
              f"{r['speedup_vs_float']:>8.2f}  {r['note']}")
    if args.json:
        _write_json({"device": f"{device.platform} {device.device_kind}", "jax": jax.__version__,
                     "batch": args.batch, "repeats": args.repeats, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
