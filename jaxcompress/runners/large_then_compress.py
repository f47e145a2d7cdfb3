"""Train large, then compress: the main job (``jaxcompress demo``).

1. Pretrain a grid of encoder sizes (depth x width, BERT and ALBERT style)
   with MLM + SOP on the embedded English corpus, every size under the same
   compute budget in FLOPs (so larger models take fewer steps); wall-clock is
   recorded beside it.
2. Fine-tune each on a downstream task of the same corpus (topic classification).
3. Compress each fine-tuned model at several levels: magnitude pruning,
   int8/int4 quantization and their combinations.
4. Evaluate, and write ``results.json``, ``report.md`` and plots: loss vs FLOPs
   and vs wall-clock per size (claim 1), accuracy vs compressed bytes (claim 2),
   with a verdict on each claim from this run's numbers.

Every stage writes into its own work directory and is skipped when its
``summary.json`` / ``report.json`` exists, so an interrupted run resumes where
it stopped (and each training resumes from its newest checkpoint).

References:
  Li et al., "Train Large, Then Compress: Rethinking Model Size for Efficient
  Training and Inference of Transformers", ICML 2020.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import time
from typing import Any, Sequence

import numpy as np

from jaxcompress.configlib import apply_overrides, option, validate
from jaxcompress.configs import get_preset, load_config
from jaxcompress.errors import ConfigError
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.runners.workspace import check_output, finished
from jaxcompress.train.metrics import read_metrics

SIZE_PATTERN = re.compile(r"^(bert|albert)-(\d+)x(\d+)$")


@dataclasses.dataclass
class LargeThenCompressConfig:
    """The demo's grid and budgets. Sizes are ``STYLE-LAYERSxWIDTH`` (``bert-4x128``,
    ``albert-4x128``): heads of width 32, feed-forward 4x the width, ALBERT sharing
    all layers with embeddings of width min(64, H)."""

    sizes: tuple[str, ...] = option(("bert-2x64", "bert-4x128", "bert-6x192", "albert-4x128"),
                                    help="encoder grid, STYLE-LAYERSxWIDTH")
    pretrain_preset: str = option("bert-tiny", help="pretraining preset the sizes modify (data, optimiser)")
    finetune_preset: str = option("bert-tiny-topic", help="downstream preset the sizes modify")
    budget_tflops: float = option(1.2, help="training FLOPs per size (10^12): XLA's count of the compiled "
                                  "train step (forward, backward, heads, update) at the run's shapes",
                                  min=0.0, min_exclusive=True)
    min_steps: int = option(20, help="a size that the budget gives fewer steps is refused", min=1)
    pretrain_learning_rate: float = option(5e-4, help="peak pretraining learning rate (AdamW) at width 64, "
                                           "scaled by 64/width for the other sizes; larger rates map every token "
                                           "of the wider sizes to one vector within a few dozen steps, which then "
                                           "fine-tunes to the majority class", min=0.0, min_exclusive=True)
    finetune_learning_rate: float = option(3e-3, help="peak fine-tuning learning rate at width 64, scaled by "
                                           "64/width like pretraining's (bert-6x192 at 3e-3 stays at the majority "
                                           "class, at 1e-3 it learns)", min=0.0, min_exclusive=True)
    finetune_steps: int = option(300, help="fine-tuning steps per size", min=1)
    batch_size: int = option(32, help="pretraining and fine-tuning batch size", min=1)
    seq_length: int = option(64, help="tokens per example in pretraining and fine-tuning", min=8)
    prune_levels: tuple[float, ...] = option((0.5, 0.7, 0.9), help="magnitude pruning sparsities")
    quant_bits: tuple[int, ...] = option((8, 4), help="weight quantization bits")
    include: str = option("encoder|word_embeddings|embedding", help="regex of the weights compression acts on")
    seed: int = option(0, help="seed of every run", min=0)
    pretrain_overrides: tuple[str, ...] = option((), help="extra KEY=VALUE settings of every pretraining run "
                                                 "(a TFDS corpus, the mesh, ...)")
    finetune_overrides: tuple[str, ...] = option((), help="extra KEY=VALUE settings of every fine-tuning run")


QUICK = {"sizes": ("bert-2x64", "bert-4x128"), "budget_tflops": 0.25, "finetune_steps": 150,
         "prune_levels": (0.5, 0.9), "quant_bits": (8, 4)}


def model_overrides(size: str) -> list[str]:
    """``--set`` overrides that turn a tiny preset into the named size."""
    match = SIZE_PATTERN.match(size)
    if not match:
        raise ConfigError(f"size {size!r} must look like bert-LAYERSxWIDTH or albert-LAYERSxWIDTH "
                          f"(e.g. bert-4x128)")
    style, layers, width = match.group(1), int(match.group(2)), int(match.group(3))
    if width % 32:
        raise ConfigError(f"size {size!r}: the width must be a multiple of 32 (heads of width 32)")
    embedding = min(64, width) if style == "albert" else width
    return [f"model.num_layers={layers}", f"model.hidden_size={width}", f"model.num_heads={width // 32}",
            f"model.intermediate_size={4 * width}", f"model.embedding_size={embedding}",
            f"model.sharing={'all' if style == 'albert' else 'none'}", "model.dropout=0.0"]


def _memory_bytes() -> int:
    """Memory one replica of the model may use: an accelerator's own, else the host's RAM."""
    from jaxcompress.train.sharding import device_memory_bytes

    return device_memory_bytes()


def plan(cfg: LargeThenCompressConfig) -> list[dict[str, Any]]:
    """Per size: configs, parameters, FLOPs per step and steps under the budget.

    Raises:
      ConfigError: a size the budget cannot train, or a grid that cannot fit in memory,
        before any training starts.
    """
    from jaxcompress.model_info import model_info
    from jaxcompress.train.loop import train_step_flops

    rows = []
    for size in cfg.sizes:
        overrides = model_overrides(size) + [f"data.batch_size={cfg.batch_size}", f"seed={cfg.seed}",
                                             f"text.max_seq_length={cfg.seq_length}"]
        pretrain = apply_overrides(get_preset(cfg.pretrain_preset), overrides + list(cfg.pretrain_overrides))
        validate(pretrain)
        validate(apply_overrides(get_preset(cfg.finetune_preset), overrides + list(cfg.finetune_overrides)))
        info = model_info(pretrain)
        # What the step really runs: XLA's count of the lowered train step at the run's batch and sequence
        # length, masked-LM and sentence heads, backward pass and optimiser included.
        flops_per_step = train_step_flops(pretrain)
        steps = int(cfg.budget_tflops * 1e12 // flops_per_step)
        if steps < cfg.min_steps:
            raise ConfigError(f"budget_tflops={cfg.budget_tflops} gives {size} only {steps} steps "
                              f"({flops_per_step / 1e9:.2f} GFLOPs each); at least {cfg.min_steps} are needed: "
                              f"raise budget_tflops to {cfg.min_steps * flops_per_step / 1e12:.2f} or drop the size")
        rows.append({"size": size, "overrides": overrides, "params": info["total_params"],
                     "flops_per_step": flops_per_step, "steps": steps})
    # float32 params, gradients and Adam's two moments (16 bytes a parameter), plus half
    # again for activations; sharding over fsdp/tensor divides it, which this ignores.
    need = max(r["params"] for r in rows) * 16 * 1.5
    available = _memory_bytes()
    if available and need > 0.9 * available:
        raise ConfigError(f"the largest size needs about {need / 2**30:.1f} GiB but one device has "
                          f"{available / 2**30:.1f} GiB: drop the largest sizes or shard them (mesh.fsdp)")
    return rows


def pretrain_learning_rate(cfg: LargeThenCompressConfig, size: str) -> float:
    """``cfg.pretrain_learning_rate`` x 64 / width: AdamW moves every weight by about the learning rate per
    step, and the wider a matrix the sooner that coherent update outweighs its random init (std 0.02)."""
    return cfg.pretrain_learning_rate * 64 / _width(size)


def _width(size: str) -> int:
    return int(SIZE_PATTERN.match(size).group(3))


def _pretrain(row: dict[str, Any], cfg: LargeThenCompressConfig, out: pathlib.Path, quiet: bool) -> dict:
    from jaxcompress.train import train

    workdir = out / "pretrain" / row["size"]
    done = finished(workdir / "summary.json")
    if done is not None:
        return done
    steps = row["steps"]
    config = apply_overrides(get_preset(cfg.pretrain_preset), row["overrides"] + [
        f"optim.learning_rate={pretrain_learning_rate(cfg, row['size'])}"] + list(cfg.pretrain_overrides) + [
        f"steps={steps}", f"log_every={max(1, steps // 40)}", f"eval_every={max(1, steps // 4)}",
        f"checkpoint_every={max(1, steps // 4)}", f"optim.warmup_steps={max(1, steps // 10)}"])
    config.name = f"pretrain-{row['size']}"
    return train(config, workdir, quiet=quiet)


def _finetune(row: dict[str, Any], cfg: LargeThenCompressConfig, out: pathlib.Path, quiet: bool) -> dict:
    from jaxcompress.train import train

    workdir = out / "finetune" / row["size"]
    done = finished(workdir / "summary.json")
    if done is not None:
        return done
    steps = cfg.finetune_steps
    learning_rate = cfg.finetune_learning_rate * 64 / _width(row["size"])
    config = apply_overrides(get_preset(cfg.finetune_preset), row["overrides"] + [
        f"optim.learning_rate={learning_rate}"] + list(cfg.finetune_overrides) + [
        f"steps={steps}", f"log_every={max(1, steps // 10)}", f"eval_every={steps}", f"checkpoint_every={steps}",
        f"optim.warmup_steps={max(1, steps // 10)}", f"text.init_from={out / 'pretrain' / row['size']}"])
    config.name = f"finetune-{row['size']}"
    return train(config, workdir, quiet=quiet)


#: The sweep's report reads accuracy and bytes; each row's latency (kept in its
#: report.json) is a median of this many forward passes, not the default 30.
LATENCY_REPEATS = 5


def recipes(cfg: LargeThenCompressConfig) -> list[tuple[str, list[str], list[str]]]:
    """(label, methods, settings) for each compression level, lightest first."""
    include = f"prune.include={cfg.include}"
    out: list[tuple[str, list[str], list[str]]] = [("dense", ["prune"], ["prune.sparsity=0.0", include])]
    for bits in cfg.quant_bits:
        out.append((f"int{bits}", ["quantize"], [f"quantize.bits={bits}", f"quantize.include={cfg.include}"]))
    for level in cfg.prune_levels:
        out.append((f"prune {level:.0%}", ["prune"], [f"prune.sparsity={level}", include]))
    for level in cfg.prune_levels:
        bits = min(cfg.quant_bits)
        out.append((f"prune {level:.0%} + int{bits}", ["prune", "quantize"],
                    [f"prune.sparsity={level}", include, f"quantize.bits={bits}", f"quantize.include={cfg.include}"]))
    return out


def _compress(row: dict[str, Any], cfg: LargeThenCompressConfig, out: pathlib.Path, quiet: bool) -> list[dict]:
    from jaxcompress.workflows.compress_workdir import compress_workdir, evaluate_params, load_trained

    reports = []
    trained = baseline = None  # restored and evaluated once per size, when a level needs them
    for label, methods, settings in recipes(cfg):
        slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        target = out / "compress" / row["size"] / slug
        report = finished(target / "report.json")
        if report is None:
            if trained is None:
                trained = load_trained(out / "finetune" / row["size"])
                baseline = evaluate_params(trained.config, trained.params, LATENCY_REPEATS)
            report = compress_workdir(out / "finetune" / row["size"], methods, settings, target,
                                      name=f"{row['size']} {label}", baseline_eval=baseline, trained=trained,
                                      latency_repeats=LATENCY_REPEATS)
        report["size"], report["level"] = row["size"], label
        reports.append(report)
        if not quiet:
            print(f"  {row['size']:14s} {label:18s} accuracy {report['metrics_after'].get('accuracy', math.nan):.4f}"
                  f"  {report['bytes']['after']:>10,} bytes", flush=True)
    return reports


def downstream_baseline(cfg: LargeThenCompressConfig) -> dict[str, Any]:
    """The bag-of-words baseline on the fine-tuning task's splits (train -> the split fine-tuning evaluates)."""
    from jaxcompress.data.text.baseline import bag_of_words_baseline

    config = apply_overrides(get_preset(cfg.finetune_preset), list(cfg.finetune_overrides))
    return bag_of_words_baseline(config.data.name, config.data.train_split, config.data.eval_split,
                                 text_field=config.text.text_field or "text", label_field=config.text.label_field,
                                 data_dir=config.data.data_dir or None)


def _loss_key(record: dict[str, Any]) -> str:
    return "mlm_loss" if "mlm_loss" in record else "loss"


def claim_one(rows: list[dict[str, Any]], out: pathlib.Path) -> dict[str, Any]:
    """Steps, FLOPs and wall-clock each size needs to reach one loss that every size reaches.

    The target is the highest of the sizes' final losses (each the mean of its last
    three logged values), so every curve crosses it within its budget.
    """
    curves = {r["size"]: read_metrics(out / "pretrain" / r["size"], "train") for r in rows}
    smallest = min(rows, key=lambda r: r["params"])
    target = max(float(np.mean([t[_loss_key(t)] for t in curve[-3:]])) for curve in curves.values())
    reach = {}
    for r in rows:
        curve = curves[r["size"]]
        losses = np.array([c[_loss_key(c)] for c in curve])
        smooth = np.convolve(losses, np.ones(3) / 3, mode="valid") if losses.size >= 3 else losses
        hit = np.nonzero(smooth <= target)[0]
        if hit.size:
            record = curve[hit[0] + (losses.size - smooth.size) // 2]  # the window's centre
            reach[r["size"]] = {"step": record["step"], "flops": record["step"] * r["flops_per_step"],
                                "elapsed_s": record.get("elapsed_s")}
        else:
            reach[r["size"]] = None
    larger = [r for r in rows if r["params"] > smallest["params"]]
    base = reach[smallest["size"]]
    fewer_steps = [r["size"] for r in larger if reach[r["size"]] and reach[r["size"]]["step"] < base["step"]]
    fewer_flops = [r["size"] for r in larger if reach[r["size"]] and reach[r["size"]]["flops"] < base["flops"]]
    less_time = [r["size"] for r in larger if reach[r["size"]] and base["elapsed_s"] is not None
                 and reach[r["size"]]["elapsed_s"] < base["elapsed_s"]]
    return {"target_loss": target, "smallest": smallest["size"], "reach": reach,
            "larger_in_fewer_steps": fewer_steps, "larger_in_fewer_flops": fewer_flops,
            "larger_in_less_wall_clock": less_time,
            "supported_steps": bool(larger) and len(fewer_steps) == len(larger),
            "supported_flops": bool(larger) and len(fewer_flops) == len(larger)}


def pareto(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points not dominated in (smaller bytes, higher accuracy)."""
    ordered = sorted(points, key=lambda p: (p["bytes"], -p["accuracy"]))
    frontier, best = [], -math.inf
    for point in ordered:
        if point["accuracy"] > best:
            frontier.append(point)
            best = point["accuracy"]
    return frontier


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` examples."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / max(n, 1))


def claim_two(rows: list[dict[str, Any]], reports: list[dict[str, Any]], n_eval: int) -> dict[str, Any]:
    """Do heavily compressed large models beat lightly compressed small ones at equal size?

    Each lightly compressed (dense, int8) smallest-size model is compared with the
    most accurate larger model stored in at most as many bytes; a difference counts
    only beyond two standard errors of the difference (``n_eval`` examples each,
    treated as independent, which overstates the noise of a paired comparison).
    """
    params = {r["size"]: r["params"] for r in rows}
    points = [{"size": r["size"], "level": r["level"], "bytes": r["bytes"]["after"],
               "accuracy": r["metrics_after"].get("accuracy", math.nan)} for r in reports]
    smallest = min(rows, key=lambda r: r["params"])["size"]
    light = [p for p in points if p["size"] == smallest and p["level"] in ("dense", "int8")]
    comparisons = []
    for p in light:
        rivals = [q for q in points if params[q["size"]] > params[smallest] and q["bytes"] <= p["bytes"]]
        best = max(rivals, key=lambda q: q["accuracy"], default=None)
        if best is None:
            outcome, diff, se = "no larger model that small", math.nan, math.nan
        else:
            diff = best["accuracy"] - p["accuracy"]
            se = math.hypot(standard_error(best["accuracy"], n_eval), standard_error(p["accuracy"], n_eval))
            outcome = ("larger wins" if diff > 2 * se else "smaller wins" if diff < -2 * se
                       else "within noise")
        comparisons.append({"small": p, "best_larger_at_most_as_big": best, "difference": diff,
                            "difference_se": se, "outcome": outcome})
    outcomes = [c["outcome"] for c in comparisons]
    verdict = ("supported" if outcomes and all(o == "larger wins" for o in outcomes) else
               "contradicted" if "smaller wins" in outcomes else "not shown")
    frontier = pareto(points)
    return {"comparisons": comparisons, "frontier": frontier, "n_eval": n_eval,
            "frontier_from_larger": sum(params[p["size"]] > params[smallest] for p in frontier),
            "verdict": verdict, "supported": verdict == "supported"}


def _plots(rows: list[dict[str, Any]], reports: list[dict[str, Any]], claim: dict[str, Any],
           baseline: dict[str, Any], out: pathlib.Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_flops, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        curve = read_metrics(out / "pretrain" / r["size"], "train")
        loss = [c[_loss_key(c)] for c in curve]
        by_flops.plot([c["step"] * r["flops_per_step"] / 1e12 for c in curve], loss, label=r["size"])
        by_time.plot([c.get("elapsed_s", math.nan) for c in curve], loss, label=r["size"])
    by_flops.set(xlabel="training TFLOPs", ylabel="MLM loss", title="pretraining loss vs compute")
    by_time.set(xlabel="wall-clock seconds (this machine)", ylabel="MLM loss", title="pretraining loss vs time")
    by_flops.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_vs_compute.png", dpi=110)
    plt.close(fig)

    # Points, not lines: pruned and quantized levels of one size interleave in bytes, so a line through them
    # zig-zags. Colour is the size, marker the kind of compression; the dashed line is the Pareto frontier.
    markers = {"dense": "o", "int": "s", "prune": "^", "both": "D"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for colour, r in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], rows):
        for p in (p for p in reports if p["size"] == r["size"]):
            kind = ("both" if "+" in p["level"] else "prune" if "prune" in p["level"]
                    else "int" if "int" in p["level"] else "dense")
            ax.scatter(p["bytes"]["after"], p["metrics_after"].get("accuracy", math.nan), color=colour,
                       marker=markers[kind], s=36)
        ax.scatter([], [], color=colour, marker="o", label=f"{r['size']} ({r['params']:,} params)")
    for kind, marker in markers.items():
        label = {"dense": "dense", "int": "int8 / int4", "prune": "pruned", "both": "pruned + int4"}[kind]
        ax.scatter([], [], color="grey", marker=marker, label=label)
    front = sorted(claim["frontier"], key=lambda p: p["bytes"])
    ax.plot([p["bytes"] for p in front], [p["accuracy"] for p in front], "k--", lw=1, label="Pareto frontier")
    ax.axhline(baseline["accuracy"], color="grey", lw=1, label=f"bag of words {baseline['accuracy']:.3f}")
    ax.axhline(baseline["majority_rate"], color="grey", lw=1, ls=":",
               label=f"majority class {baseline['majority_rate']:.3f}")
    ax.set_xscale("log")
    ax.set(xlabel="bytes as stored (log)", ylabel="downstream accuracy", title="accuracy vs compressed size")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_size.png", dpi=110)
    plt.close(fig)
    return ["loss_vs_compute.png", "accuracy_vs_size.png"]


def _with_se(accuracy: float, n: int) -> str:
    return f"{accuracy:.3f} ± {standard_error(accuracy, n):.3f}"


def _training_minutes(pretrain: dict[str, dict], finetune: dict[str, dict]) -> float:
    return sum(summary["wall_time_s"] for summary in (*pretrain.values(), *finetune.values())) / 60


def _report_md(cfg: LargeThenCompressConfig, rows: list[dict[str, Any]], pretrain: dict[str, dict],
               finetune: dict[str, dict], reports: list[dict[str, Any]], one: dict[str, Any],
               two: dict[str, Any], wall_s: float, baseline: dict[str, Any]) -> str:
    n = baseline["eval_examples"]
    lines = ["# Train large, then compress", "",
             f"Budget: {cfg.budget_tflops} TFLOPs of pretraining per size (XLA's cost analysis of the "
             f"lowered train step at batch {cfg.batch_size} x {cfg.seq_length} tokens, heads and backward "
             f"included) at peak learning rate {cfg.pretrain_learning_rate:g} x 64/width; "
             f"{cfg.finetune_steps} fine-tuning steps at {cfg.finetune_learning_rate:g} x 64/width. Wall time: "
             f"{_training_minutes(pretrain, finetune):.1f} min of pretraining and fine-tuning runs, "
             f"{wall_s / 60:.1f} min for this invocation (which skips stages an earlier one finished).", "",
             "## Sizes", "",
             "| size | params | steps in budget | final MLM loss | SOP acc | wall-clock (s) | downstream acc ± SE |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        p, f = pretrain[r["size"]], finetune[r["size"]]
        lines.append(f"| {r['size']} | {r['params']:,} | {r['steps']} | "
                     f"{p['train_metrics'].get('mlm_loss', math.nan):.3f} | "
                     f"{p['eval_metrics'].get('sop_accuracy', math.nan):.3f} | {p['wall_time_s']:.0f} | "
                     f"{_with_se(f['eval_metrics'].get('accuracy', math.nan), n)} |")
    lines.append(f"| bag of words (baseline) | - | - | - | - | {baseline['wall_time_s']:.0f} | "
                 f"{_with_se(baseline['accuracy'], n)} |")
    lines += ["", f"Downstream: accuracy on the {n} {cfg.finetune_preset} evaluation examples; SE is the "
              f"binomial standard error sqrt(p(1-p)/n); the majority class scores "
              f"{baseline['majority_rate']:.3f}. Baseline: {baseline['recipe']}."]
    lines += ["", "## Compression", "", "| size | level | accuracy | bytes | alpha | nonzeros |", "|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {r['size']} | {r['level']} | {r['metrics_after'].get('accuracy', math.nan):.4f} | "
                     f"{r['bytes']['after']:,} | {r['alpha']:.2f}x | {r['nonzeros']['after']:,} |")

    def reached(v: dict[str, Any] | None) -> str:
        return "never" if v is None else f"step {v['step']} / {v['flops'] / 1e12:.2f} TFLOPs"

    reach = ", ".join(f"{size}: {reached(v)}" for size, v in one["reach"].items())
    verdict1 = "supported" if one["supported_steps"] else "not supported"
    lines += ["", "## Claim 1: larger models reach a given loss in fewer steps and less compute", "",
              f"Target: {one['target_loss']:.3f}, the highest final MLM loss of the sizes (so every size "
              f"reaches it); the smallest is {one['smallest']}. Reached at: {reach}.", "",
              f"- fewer steps: **{verdict1}** (larger sizes that were faster in steps: "
              f"{', '.join(one['larger_in_fewer_steps']) or 'none'});",
              f"- fewer FLOPs: **{'supported' if one['supported_flops'] else 'not supported'}** "
              f"({', '.join(one['larger_in_fewer_flops']) or 'none'});",
              f"- less wall-clock on this machine: {', '.join(one['larger_in_less_wall_clock']) or 'none'} "
              f"(on a CPU, time per step grows with FLOPs, so this is the least likely to hold here).", ""]
    lines += ["## Claim 2: heavily compressed large models beat lightly compressed small ones at equal size", ""]
    for c in two["comparisons"]:
        small, best = c["small"], c["best_larger_at_most_as_big"]
        rival = ("no larger model compresses to that size" if best is None else
                 f"best larger model at <= that size: {best['size']} {best['level']}, accuracy "
                 f"{best['accuracy']:.4f} at {best['bytes']:,} bytes; difference {c['difference']:+.3f} "
                 f"± {c['difference_se']:.3f} (SE)")
        lines.append(f"- {small['size']} {small['level']} ({small['accuracy']:.4f} at {small['bytes']:,} bytes): "
                     f"{rival} -> {c['outcome']}")
    lines += ["", f"Verdict: **{two['verdict']}** by this run (a comparison counts beyond 2 SE of the "
              f"difference); {two['frontier_from_larger']} of the {len(two['frontier'])} Pareto-optimal points "
              f"(bytes vs accuracy) come from models larger than the smallest.", "",
              "Plots: `loss_vs_compute.png` (loss vs FLOPs and wall-clock per size), `accuracy_vs_size.png`."]
    return "\n".join(lines) + "\n"


def run_large_then_compress(cfg: LargeThenCompressConfig, out: pathlib.Path, quiet: bool = False) -> dict:
    """The whole workflow; see the module docstring."""
    start = time.perf_counter()
    validate(cfg)
    check_output(out)
    rows = plan(cfg)
    if not quiet:
        for r in rows:
            print(f"{r['size']:14s} {r['params']:>10,} params  {r['flops_per_step'] / 1e9:8.2f} GFLOPs/step  "
                  f"{r['steps']:>5} steps in the budget", flush=True)
    pretrain, finetune, reports = {}, {}, []
    for r in rows:
        if not quiet:
            print(f"[pretrain] {r['size']} for {r['steps']} steps", flush=True)
        pretrain[r["size"]] = _pretrain(r, cfg, out, quiet)
    for r in rows:
        if not quiet:
            print(f"[fine-tune] {r['size']} for {cfg.finetune_steps} steps", flush=True)
        finetune[r["size"]] = _finetune(r, cfg, out, quiet)
    for r in rows:
        if not quiet:
            print(f"[compress] {r['size']}", flush=True)
        reports += _compress(r, cfg, out, quiet)
    baseline = downstream_baseline(cfg)
    one, two = claim_one(rows, out), claim_two(rows, reports, baseline["eval_examples"])
    if not quiet:
        print(f"[baseline] bag of words: accuracy {baseline['accuracy']:.4f} (majority class "
              f"{baseline['majority_rate']:.4f})", flush=True)
    plots = _plots(rows, reports, two, baseline, out)
    wall = time.perf_counter() - start
    (out / "report.md").write_text(_report_md(cfg, rows, pretrain, finetune, reports, one, two, wall, baseline))
    results = {"config": dataclasses.asdict(cfg), "sizes": rows, "pretrain": pretrain, "finetune": finetune,
               "compression": reports, "baseline": baseline, "claim_1": one, "claim_2": two, "plots": plots,
               "wall_time_s": wall}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def settings_for(quick: bool = False, overrides: Sequence[str] = (), config_file: str | None = None
                 ) -> LargeThenCompressConfig:
    """The workflow's settings: defaults or ``config_file``, then :data:`QUICK`, then ``KEY=VALUE`` overrides."""
    cfg = load_config(config_file, expected=LargeThenCompressConfig) if config_file else LargeThenCompressConfig()
    if quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    return apply_overrides(cfg, list(overrides))


@register_experiment("large-then-compress", "pretrain a grid of sizes at equal FLOPs, fine-tune, compress, report")
def run(request: RunRequest) -> dict[str, Any]:
    return run_large_then_compress(settings_for(request.quick, request.overrides, request.config), request.out,
                                   request.quiet)
