"""Our ALBERT/BERT encoder vs transformers' FlaxAlbertModel / FlaxBertModel, side by side.

Same sizes, same batch, same dtype, same parameters (the reference's random
weights are imported into ours with ``jaxcompress.convert``), dropout off in
both so both compute the same function. For each model and each
implementation, in one process:

* compile time of the forward pass and of the train step (lower + compile);
* forward throughput and train-step throughput (forward + backward + AdamW
  update, donated state) in tokens per second: median of ``--repeats`` timed
  calls after warm-up, the implementations timed in turns so machine noise
  hits both alike;
* peak memory of the compiled train step from XLA's ``memory_analysis()``
  (arguments + outputs + temporaries - aliased donations), and those parts in
  the JSON (``train_temp_mib`` is what the step itself allocates: gradients,
  saved activations, optimiser intermediates).

The loss is the mean square of the sequence output plus the pooled output
(the encoder only; heads would be the same code in both).

Our encoder runs its layers under ``nn.scan`` (one compiled body); the
reference unrolls a Python loop over its layers (ALBERT re-applies one layer
group module). Shared parameters therefore cost the reference a full-depth
program while ours compiles one layer.

Run (from the repository root; needs the ``bench`` extra):

    python benchmarks/albert_vs_hf.py                      # H=256, 12 layers, seq 128, batch 8
    python benchmarks/albert_vs_hf.py --hidden 128 --repeats 5 --json out.json

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.convert import load_hf_checkpoint
from jaxcompress.nn.albert import AlbertEncoder
from jaxcompress.nn.transformer import REMAT_POLICIES

warnings.filterwarnings("ignore", message=".*TensorFlow and JAX classes are deprecated.*")


def _reference(family: str, args: argparse.Namespace) -> Any:
    import transformers

    common = dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                  num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                  max_position_embeddings=max(512, args.seq), hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    if family == "albert":
        config = transformers.AlbertConfig(embedding_size=args.embedding, classifier_dropout_prob=0.0, **common)
        return transformers.FlaxAlbertModel(config, seed=0, dtype=_DTYPES[args.dtype])
    return transformers.FlaxBertModel(transformers.BertConfig(**common), seed=0, dtype=_DTYPES[args.dtype])


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _implementations(family: str, args: argparse.Namespace) -> dict[str, tuple[Callable, Any]]:
    """name -> (forward(params, ids, types, mask) -> (sequence, pooled), params); ours once per remat policy."""
    reference = _reference(family, args)
    with tempfile.TemporaryDirectory() as tmp:
        reference.save_pretrained(tmp, safe_serialization=True)
        config, params = load_hf_checkpoint(tmp)
    config.dtype = args.dtype
    config.scan_unroll = args.unroll
    impls = {}
    for policy in args.remat:
        model = AlbertEncoder(dataclasses.replace(config, remat=policy))

        def ours_forward(p, ids, types, mask, model=model):
            return model.apply({"params": p}, ids, types, mask)

        impls[f"ours remat={policy}"] = (ours_forward, jax.tree.map(jnp.asarray, params["encoder"]))

    def hf_forward(p, ids, types, mask):
        out = reference.module.apply({"params": p}, ids, mask, types, jnp.broadcast_to(jnp.arange(ids.shape[1]),
                                                                                      ids.shape),
                                     deterministic=True, return_dict=False)
        return out[0], out[1]

    return {**impls, "transformers": (hf_forward, reference.params)}


def _loss(forward: Callable) -> Callable:
    def loss(params, ids, types, mask):
        sequence, pooled = forward(params, ids, types, mask)
        return jnp.mean(sequence.astype(jnp.float32) ** 2) + jnp.mean(pooled.astype(jnp.float32) ** 2)

    return loss


def _compile(fn: Callable, *args, donate: tuple[int, ...] = ()) -> tuple[Any, float]:
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _memory_mib(compiled: Any) -> dict[str, float]:
    """XLA's memory analysis of ``compiled`` in MiB: its parts and the peak (arguments + outputs +
    temporaries - outputs aliased to donated arguments)."""
    stats = compiled.memory_analysis()
    if stats is None:
        return {"peak": float("nan")}
    parts = {part: getattr(stats, f"{part}_size_in_bytes") / 2 ** 20
             for part in ("argument", "output", "temp", "alias")}
    return {"peak": parts["argument"] + parts["output"] + parts["temp"] - parts["alias"], **parts}


def _warm_up_compiler() -> None:
    """One throwaway train-step compile, so one-time process costs are not charged to whichever model compiles first."""
    tx = optax.adamw(1e-4)
    w = {"w": jnp.ones((64, 64)), "b": jnp.zeros(64)}

    def step(p, o, x):
        g = jax.grad(lambda p: jnp.mean(jnp.tanh(x @ p["w"] + p["b"]) ** 2))(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    _compile(step, w, tx.init(w), jnp.ones((8, 64)))


def sgemm_flops_per_s(n: int = 1024, repeats: int = 5) -> float:
    """This CPU's float32 matrix-multiply rate through NumPy's BLAS (median of ``repeats``)."""
    a, b = (np.random.default_rng(i).standard_normal((n, n)).astype(np.float32) for i in (0, 1))
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)


def train_model_flops(args: argparse.Namespace) -> float:
    """Matmul FLOPs of one train step (forward x 3), the same count for every implementation.

    Per token and layer: QKV and output projections 8H^2, feed-forward 16H^2
    (I = 4H), scores and context 4SH, doubled for multiply-add; ALBERT's E -> H
    projection 2EH per token; recomputation is not counted (model FLOPs, not
    hardware FLOPs).
    """
    per_token = args.layers * (24 * args.hidden ** 2 + 4 * args.seq * args.hidden) + 2 * args.embedding * args.hidden
    return 3.0 * args.batch * args.seq * per_token


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    _warm_up_compiler()
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(0, args.vocab, (args.batch, args.seq)), jnp.int32)
    types = jnp.asarray(np.repeat([[0] * (args.seq // 2) + [1] * (args.seq - args.seq // 2)], args.batch, 0),
                        jnp.int32)
    mask = np.ones((args.batch, args.seq), np.int32)
    mask[::2, 3 * args.seq // 4:] = 0  # half the rows padded by a quarter
    mask = jnp.asarray(mask)
    tokens = args.batch * args.seq
    tx = optax.adamw(1e-4)
    sgemm = sgemm_flops_per_s()
    model_flops = train_model_flops(args)
    print(f"  numpy sgemm: {sgemm / 1e9:.1f} GFLOP/s; model FLOPs per train step: {model_flops / 1e9:.1f} G",
          file=sys.stderr)
    rows = []
    for family in args.models:
        impls = _implementations(family, args)
        compiled: dict[str, dict[str, Any]] = {}
        for name, (forward, params) in impls.items():
            fwd, fwd_compile = _compile(forward, params, ids, types, mask)
            loss = _loss(forward)

            def step(params, opt_state, ids, types, mask, loss=loss):
                value, grads = jax.value_and_grad(loss)(params, ids, types, mask)
                updates, opt_state = tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, value

            opt_state = tx.init(params)
            train, train_compile = _compile(step, params, opt_state, ids, types, mask, donate=(0, 1))
            compiled[name] = {"fwd": fwd, "train": train, "params": params, "opt_state": opt_state,
                              "fwd_compile_s": fwd_compile, "train_compile_s": train_compile,
                              "memory_mib": _memory_mib(train), "fwd_s": [], "train_s": []}
            print(f"  {family}/{name}: compiled forward in {fwd_compile:.2f} s, train step in "
                  f"{train_compile:.2f} s", file=sys.stderr)
        # Same function: check before timing.
        outs = {name: c["fwd"](c["params"], ids, types, mask)[0].astype(jnp.float32) for name, c in compiled.items()}
        diffs = {name: float(jnp.max(jnp.abs(out - outs["transformers"]))) for name, out in outs.items()}
        for _ in range(args.warmup):
            for c in compiled.values():
                c["fwd"](c["params"], ids, types, mask)[0].block_until_ready()
                c["params"], c["opt_state"], value = c["train"](c["params"], c["opt_state"], ids, types, mask)
                value.block_until_ready()
        for _ in range(args.repeats):
            for c in compiled.values():  # in turns
                start = time.perf_counter()
                c["fwd"](c["params"], ids, types, mask)[0].block_until_ready()
                c["fwd_s"].append(time.perf_counter() - start)
                start = time.perf_counter()
                c["params"], c["opt_state"], value = c["train"](c["params"], c["opt_state"], ids, types, mask)
                value.block_until_ready()
                c["train_s"].append(time.perf_counter() - start)
        for name, c in compiled.items():
            train_s = statistics.median(c["train_s"])
            rows.append({"model": family, "impl": name, "max_abs_diff_vs_reference": diffs[name],
                         "fwd_compile_s": c["fwd_compile_s"], "train_compile_s": c["train_compile_s"],
                         "fwd_tokens_per_s": tokens / statistics.median(c["fwd_s"]),
                         "train_tokens_per_s": tokens / train_s,
                         "model_flops_per_step": model_flops, "mfu_vs_sgemm": model_flops / train_s / sgemm,
                         "train_peak_mib": c["memory_mib"]["peak"],
                         **{f"train_{part}_mib": mib for part, mib in c["memory_mib"].items() if part != "peak"}})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | impl | fwd compile s | train compile s | fwd tok/s | train tok/s | train peak MiB | "
             "MFU (vs numpy sgemm) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['impl']} | {r['fwd_compile_s']:.2f} | {r['train_compile_s']:.2f} | "
                     f"{r['fwd_tokens_per_s']:,.0f} | {r['train_tokens_per_s']:,.0f} | {r['train_peak_mib']:.1f} | "
                     f"{r['mfu_vs_sgemm']:.0%} |")
    lines += ["", "| model | impl | compile speed-up (train) | compile speed-up (fwd) | train throughput ratio | "
                  "fwd throughput ratio | peak memory ratio | max abs diff |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["impl"] == "transformers":
            continue
        model, ours = r["model"], r
        ref = next(r for r in rows if r["model"] == model and r["impl"] == "transformers")
        lines.append(f"| {model} | {ours['impl']} | {ref['train_compile_s'] / ours['train_compile_s']:.2f}x | "
                     f"{ref['fwd_compile_s'] / ours['fwd_compile_s']:.2f}x | "
                     f"{ours['train_tokens_per_s'] / ref['train_tokens_per_s']:.2f}x | "
                     f"{ours['fwd_tokens_per_s'] / ref['fwd_tokens_per_s']:.2f}x | "
                     f"{ours['train_peak_mib'] / ref['train_peak_mib']:.2f}x | {ours['max_abs_diff_vs_reference']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["albert", "bert"], choices=["albert", "bert"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=128, help="ALBERT's E")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    parser.add_argument("--unroll", type=int, default=1, help="our model.scan_unroll (layers per scan iteration)")
    parser.add_argument("--remat", nargs="+", default=["none", "dots_no_batch"], choices=sorted(REMAT_POLICIES),
                        help="our model.remat policies, one row each")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", nargs="?", const="-", help="also write the rows as JSON (to stdout with no path)")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}; H={args.hidden} L={args.layers} "
          f"heads={args.heads} E={args.embedding} (ALBERT) V={args.vocab} batch={args.batch} seq={args.seq} "
          f"{args.dtype}; ours: scan_unroll={args.unroll}, remat={args.remat}", file=sys.stderr)
    rows = run(args)
    print(_table(rows))
    if args.json:
        text = json.dumps({"args": vars(args), "rows": rows}, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")


if __name__ == "__main__":
    main()
