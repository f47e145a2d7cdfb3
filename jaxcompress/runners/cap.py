"""``jaxcompress run cap``: contrastive pruning (CAP) vs its base pruners on the embedded English tasks.

1. Pretrain a small BERT (``bert-2x64`` by default) with MLM + SOP on the embedded corpus
   (the ``large-then-compress`` recipe: a FLOPs budget, width-scaled learning rate).
2. Fine-tune a teacher on ``pydocs_topic`` and on ``pydocs_pair`` from it (the ``*-topic`` /
   ``*-pair`` presets: mean pooling for topic, learning rate x 64/width).
3. Fine-prune the *pre-trained* encoder on each task (the paper's setting) to every sparsity
   with movement and magnitude pruning (cubic schedule), with CE + KD from the teacher
   ("without CAP", the paper's baselines) and with the CAP banks added, for several seeds;
   at ``ablation_sparsity`` also without each of PrC, SnC and FiC.
4. Write ``results.json``, ``report.md`` (mean +- std over seeds, measured sparsity, the
   teacher, the bag-of-words baseline and the majority class) and ``accuracy_vs_sparsity.png``.

Every training writes its own work directory and is skipped when its ``summary.json``
exists, so an interrupted run resumes where it stopped.

References:
  Xu et al., "From Dense to Sparse: Contrastive Pruning for Better Pre-trained Language
  Model Compression", AAAI 2022; Sanh, Wolf & Rush, "Movement Pruning", NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Any, Sequence

import numpy as np

from jaxcompress.configlib import apply_overrides, option, validate
from jaxcompress.configs import get_preset, load_config
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.runners.large_then_compress import (
    LargeThenCompressConfig,
    _pretrain,
    _width,
    model_overrides,
    plan,
)
from jaxcompress.runners.workspace import check_output, enable_compilation_cache, finished, map_in_processes

TASK_PRESETS = {"topic": "bert-tiny-topic", "pair": "bert-tiny-pair"}
#: Variant -> which banks it keeps ("kd": none, the CE + KD baseline).
VARIANTS = {"kd": {"use_pre": False, "use_fine": False, "use_snap": False}, "cap": {},
            "cap-no-PrC": {"use_pre": False}, "cap-no-SnC": {"use_snap": False}, "cap-no-FiC": {"use_fine": False}}


@dataclasses.dataclass
class CapExperimentConfig:
    """The grid and budgets of ``jaxcompress run cap``."""

    size: str = option("bert-2x64", help="encoder, STYLE-LAYERSxWIDTH (see large-then-compress)")
    tasks: tuple[str, ...] = option(("topic", "pair"), help="downstream tasks (topic, pair)")
    pretrain_tflops: float = option(1.2, help="pretraining FLOPs (10^12, XLA's count of the train step)",
                                    min=0.0, min_exclusive=True)
    finetune_steps: int = option(300, help="teacher fine-tuning steps", min=1)
    finetune_learning_rate: float = option(3e-3, help="topic fine-tuning and pruning learning rate at width 64 "
                                           "(x 64/width); the pair preset's own 1e-3 is scaled alike",
                                           min=0.0, min_exclusive=True)
    prune_steps: int = option(200, help="steps of every fine-pruning run", min=20)
    sparsities: tuple[float, ...] = option((0.5, 0.8, 0.9, 0.97), help="target sparsities of the encoder's kernels")
    pruners: tuple[str, ...] = option(("movement", "magnitude"), help="base pruners")
    seeds: int = option(3, help="seeds per setting (data order, dropout, classifier init)", min=1)
    ablation_sparsity: float = option(0.9, help="sparsity of the PrC/SnC/FiC ablation")
    ablation_pruners: tuple[str, ...] = option(("movement",), help="pruners the ablation runs with ('' none)")
    extra_examples: int = option(512, help="random bank rows per bank and step (the reference: 4096 of 364k)",
                                 min=0)
    mask_every: int = option(10, help="steps between mask updates during the cubic ramp", min=1)
    snapshots: int = option(3, help="snapshot views per run: the bank refreshes every prune_steps/(snapshots+1) "
                            "steps (the reference: every epoch, 9 views in 10 epochs)", min=1)
    batch_size: int = option(32, help="batch size of every run", min=1)
    seq_length: int = option(64, help="tokens per example", min=8)
    workers: int = option(2, help="pruning runs trained at once, each in its own process (a small encoder's "
                          "step uses about one CPU core)", min=1)


QUICK = {"tasks": ("topic",), "pretrain_tflops": 0.25, "finetune_steps": 150, "prune_steps": 100,
         "sparsities": (0.5, 0.9), "pruners": ("movement",), "seeds": 1, "ablation_pruners": ()}


def _finetune(cfg: CapExperimentConfig, task: str, out: pathlib.Path, quiet: bool) -> dict[str, Any]:
    """The teacher: the task's preset fine-tuned from the pretraining run (the large-then-compress recipe)."""
    from jaxcompress.train import train

    workdir = out / "finetune" / task
    done = finished(workdir / "summary.json")
    if done is not None:
        return done
    steps = cfg.finetune_steps
    config = apply_overrides(get_preset(TASK_PRESETS[task]), model_overrides(cfg.size) + [
        f"optim.learning_rate={_learning_rate(cfg, task)}", f"data.batch_size={cfg.batch_size}",
        f"text.max_seq_length={cfg.seq_length}", f"steps={steps}", f"log_every={max(1, steps // 10)}",
        f"eval_every={steps}", f"checkpoint_every={steps}", f"optim.warmup_steps={max(1, steps // 10)}",
        f"text.init_from={out / 'pretrain' / cfg.size}"])
    config.name = f"teacher-{task}"
    return train(config, workdir, quiet=quiet)


def _learning_rate(cfg: CapExperimentConfig, task: str) -> float:
    """Fine-tuning rate x 64/width (wide encoders collapse at high rates); pair keeps its preset's ratio."""
    preset = get_preset(TASK_PRESETS[task]).optim.learning_rate
    topic = get_preset(TASK_PRESETS["topic"]).optim.learning_rate
    return cfg.finetune_learning_rate * preset / topic * 64 / _width(cfg.size)


def runs(cfg: CapExperimentConfig) -> list[dict[str, Any]]:
    """Every fine-pruning run of the grid: task, pruner, variant, sparsity, seed."""
    grid = []
    for task in cfg.tasks:
        for pruner in cfg.pruners:
            for sparsity in cfg.sparsities:
                for variant in ("kd", "cap"):
                    grid += [dict(task=task, pruner=pruner, variant=variant, sparsity=sparsity, seed=s)
                             for s in range(cfg.seeds)]
        for pruner in (p for p in cfg.ablation_pruners if p):
            for variant in ("cap-no-PrC", "cap-no-SnC", "cap-no-FiC"):
                grid += [dict(task=task, pruner=pruner, variant=variant, sparsity=cfg.ablation_sparsity, seed=s)
                         for s in range(cfg.seeds)]
    return grid


def _prune(cfg: CapExperimentConfig, run: dict[str, Any], out: pathlib.Path, quiet: bool) -> dict[str, Any]:
    """One fine-pruning run through the ``cap`` task (its summary, with measured sparsity)."""
    from jaxcompress.train.config import config_from_dict
    from jaxcompress.workflows.cap import cap_config, train_cap

    teacher = out / "finetune" / run["task"]
    workdir = (out / "prune" / run["task"] / run["pruner"] / run["variant"] / f"{run['sparsity']:g}"
               / f"seed{run['seed']}")
    done = finished(workdir / "summary.json")
    if done is not None:
        return done
    finetuned = config_from_dict(json.loads((teacher / "config.json").read_text()))
    config = cap_config(finetuned, str(teacher), pruner=run["pruner"], sparsity=run["sparsity"],
                        steps=cfg.prune_steps, seed=run["seed"], extra_examples=cfg.extra_examples,
                        refresh_every=max(1, cfg.prune_steps // (cfg.snapshots + 1)), snapshot_slots=cfg.snapshots,
                        **VARIANTS[run["variant"]])
    config.prune.frequency = cfg.mask_every
    config.data.seed = run["seed"]
    config.log_every = max(1, cfg.prune_steps // 10)
    config.eval_every = 0
    config.checkpoint_every = cfg.prune_steps
    _, summary = train_cap(config, workdir, quiet=quiet)
    return summary


def _prune_job(job: tuple[CapExperimentConfig, dict[str, Any], pathlib.Path]) -> dict[str, Any]:
    """One grid cell's row (run in a worker process): the seeds of a setting lower to one program,
    so the compile cache under the output folder compiles it once."""
    cfg, run, out = job
    enable_compilation_cache(out)
    summary = _prune(cfg, run, out, quiet=True)
    return {**run, "accuracy": summary["eval_metrics"]["accuracy"],
            "measured_sparsity": summary["sparsity"]["sparsity"], "wall_time_s": summary["wall_time_s"]}


def task_baselines(task: str) -> dict[str, Any]:
    """Bag-of-words baseline on the task's splits (pair: both passages' words, joined); for the pair
    task also, under ``"overlap"``, the word-overlap baseline (which sees what a joined bag cannot)."""
    from jaxcompress.data.text.baseline import bag_of_words_baseline, word_overlap_baseline

    config = get_preset(TASK_PRESETS[task])
    data = (config.data.name, config.data.train_split, config.data.eval_split)
    if task != "pair":
        return bag_of_words_baseline(*data, text_field="text", label_field=config.text.label_field)
    return {**bag_of_words_baseline(*data, text_field="first", pair_field="second",
                                    label_field=config.text.label_field),
            "overlap": word_overlap_baseline(*data, label_field=config.text.label_field)}


def learned_nothing(accuracy: float, majority_rate: float, eval_examples: int) -> bool:
    """Whether a (teacher's) accuracy is within one binomial standard error of the majority rate, or below it:
    then whatever is distilled or pruned from it measures nothing about the method."""
    return accuracy <= majority_rate + math.sqrt(majority_rate * (1 - majority_rate) / max(eval_examples, 1))


def _stats(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, float)
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return {"mean": float(values.mean()), "std": std, "n": int(values.size)}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean +- std over seeds per (task, pruner, variant, sparsity), and CAP's paired gain over KD."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["task"], row["pruner"], row["variant"], row["sparsity"]), []).append(row)
    table = [{"task": k[0], "pruner": k[1], "variant": k[2], "sparsity": k[3],
              "accuracy": _stats([r["accuracy"] for r in v]),
              "measured_sparsity": _stats([r["measured_sparsity"] for r in v])} for k, v in sorted(cells.items())]
    gains = []
    for (task, pruner, variant, sparsity), cap_rows in sorted(cells.items()):
        base_rows = cells.get((task, pruner, "kd", sparsity))
        if variant != "cap" or not base_rows:
            continue
        base = {r["seed"]: r["accuracy"] for r in base_rows}
        diffs = [r["accuracy"] - base[r["seed"]] for r in cap_rows if r["seed"] in base]
        stats = _stats(diffs)
        stats["se"] = stats["std"] / math.sqrt(stats["n"]) if stats["n"] > 1 else math.nan
        gains.append({"task": task, "pruner": pruner, "sparsity": sparsity, "gain": stats})
    return {"table": table, "gains": gains}


def trend(gains: list[dict[str, Any]], n_eval: dict[str, int]) -> list[dict[str, Any]]:
    """Does CAP's gain grow with sparsity? Gain at the highest minus the lowest sparsity, against its noise.

    The noise of one gain is the larger of its seed-to-seed standard error and the binomial standard
    error of a difference of two accuracies on the evaluation split (about sqrt(2 * 0.25 / n)).
    """
    out = []
    for task in sorted({g["task"] for g in gains}):
        for pruner in sorted({g["pruner"] for g in gains if g["task"] == task}):
            mine = sorted((g for g in gains if g["task"] == task and g["pruner"] == pruner), key=lambda g: g["sparsity"])
            if len(mine) < 2:
                continue
            low, high = mine[0], mine[-1]
            binomial = math.sqrt(2 * 0.25 / max(n_eval[task], 1))
            noise = [max(x if not math.isnan(x) else 0.0, binomial / math.sqrt(g["gain"]["n"]))
                     for g, x in ((low, low["gain"]["se"]), (high, high["gain"]["se"]))]
            growth = high["gain"]["mean"] - low["gain"]["mean"]
            se = math.hypot(*noise)
            out.append({"task": task, "pruner": pruner, "low": low["sparsity"], "high": high["sparsity"],
                        "gain_low": low["gain"]["mean"], "gain_high": high["gain"]["mean"], "growth": growth,
                        "growth_se": se, "gains": {str(g["sparsity"]): g["gain"]["mean"] for g in mine},
                        "verdict": ("grows" if growth > 2 * se else "shrinks" if growth < -2 * se
                                    else "within noise")})
    return out


def _plot(cfg: CapExperimentConfig, agg: dict[str, Any], teachers: dict[str, dict], baselines: dict[str, dict],
          path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.tasks), figsize=(6 * len(cfg.tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], cfg.tasks):
        for pruner in cfg.pruners:
            for variant, style in (("kd", "--"), ("cap", "-")):
                cells = sorted((c for c in agg["table"] if c["task"] == task and c["pruner"] == pruner
                                and c["variant"] == variant), key=lambda c: c["sparsity"])
                if not cells:
                    continue
                ax.errorbar([100 * c["measured_sparsity"]["mean"] for c in cells],
                            [c["accuracy"]["mean"] for c in cells],
                            yerr=[0 if math.isnan(c["accuracy"]["std"]) else c["accuracy"]["std"] for c in cells],
                            fmt="o" + style, capsize=3,
                            label=f"{pruner}{' + CAP' if variant == 'cap' else ' (CE + KD)'}")
        ax.axhline(teachers[task]["eval_metrics"]["accuracy"], color="black", lw=1, label="dense teacher")
        ax.axhline(baselines[task]["accuracy"], color="gray", ls=":", label="bag of words")
        if "overlap" in baselines[task]:
            ax.axhline(baselines[task]["overlap"]["accuracy"], color="green", ls=":", label="word overlap")
        ax.axhline(baselines[task]["majority_rate"], color="red", ls=":", lw=1, label="majority class")
        ax.set(xlabel="measured sparsity of the encoder's kernels (%)", ylabel="validation accuracy",
               title=f"pydocs_{task}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f}" + ("" if math.isnan(stats["std"]) else f" ± {stats['std']:.3f}")


def _report(cfg: CapExperimentConfig, agg: dict[str, Any], trends: list[dict], teachers: dict, baselines: dict,
            pretrain: dict, wall: float, quick: bool) -> str:
    lines = ["# Contrastive pruning (CAP) on the embedded English tasks" + (" (--quick)" if quick else ""), "",
             f"Encoder {cfg.size}, pretrained {pretrain['final_step']} steps ({cfg.pretrain_tflops} TFLOPs); "
             f"teachers fine-tuned {cfg.finetune_steps} steps; every pruning run {cfg.prune_steps} steps from the "
             f"pre-trained encoder (cubic schedule from 20% to 70% of the run, masks every {cfg.mask_every} steps), "
             f"{cfg.seeds} seed(s) per cell; CAP with tau 0.1, w_unsup 0.1, w_sup 10, w_ce 0.1, w_kd 0.9, "
             f"{cfg.extra_examples} extra bank rows, {cfg.snapshots} snapshot views. Wall time {wall / 60:.1f} min "
             f"(this invocation; finished stages are skipped).", ""]
    for task in cfg.tasks:
        b, t = baselines[task], teachers[task]
        lines += [f"## pydocs_{task} (validation, {b['eval_examples']} examples)", "",
                  "| method | " + " | ".join(f"{s:.0%}" for s in cfg.sparsities) + " |",
                  "|---|" + "---|" * len(cfg.sparsities)]
        for pruner in cfg.pruners:
            for variant in ("kd", "cap"):
                cells = {c["sparsity"]: c for c in agg["table"] if c["task"] == task and c["pruner"] == pruner
                         and c["variant"] == variant}
                label = f"{pruner} + CAP" if variant == "cap" else f"{pruner} (CE + KD)"
                lines.append(f"| {label} | " + " | ".join(
                    f"{_fmt(cells[s]['accuracy'])} ({cells[s]['measured_sparsity']['mean']:.1%})" if s in cells
                    else "-" for s in cfg.sparsities) + " |")
        dense = "| dense teacher | " + " | ".join(f"{t['eval_metrics']['accuracy']:.3f}" for _ in cfg.sparsities)
        lines += [dense + " |",
                  "| bag of words (baseline) | " + " | ".join(f"{b['accuracy']:.3f}" for _ in cfg.sparsities) + " |",
                  *(["| word overlap (pair baseline) | " + " | ".join(
                      f"{b['overlap']['accuracy']:.3f}" for _ in cfg.sparsities) + " |"] if "overlap" in b else []),
                  "| majority class | " + " | ".join(f"{b['majority_rate']:.3f}" for _ in cfg.sparsities) + " |", "",
                  "Cells: mean ± std of validation accuracy over seeds (measured sparsity of the encoder's "
                  f"kernels, counted from the weights). Baseline: {b['recipe']}"
                  + (f"; pair baseline: {b['overlap']['recipe']}." if "overlap" in b else "."), ""]
        if learned_nothing(t["eval_metrics"]["accuracy"], b["majority_rate"], b["eval_examples"]):
            lines += [f"**The dense teacher is at or below the majority rate ({b['majority_rate']:.3f}) on this task: "
                      "it learned nothing to keep, so the pruning results and CAP's gain on this task measure "
                      "nothing.**", ""]
        ablation = [c for c in agg["table"] if c["task"] == task and c["variant"].startswith("cap-no")]
        if ablation:
            lines += [f"Ablation at {cfg.ablation_sparsity:.0%}:", "", "| pruner | variant | accuracy |", "|---|---|---|"]
            full = {(c["pruner"]): c for c in agg["table"] if c["task"] == task and c["variant"] in ("cap", "kd")
                    and c["sparsity"] == cfg.ablation_sparsity and c["variant"] == "cap"}
            for c in sorted(ablation, key=lambda c: (c["pruner"], c["variant"])):
                lines.append(f"| {c['pruner']} | {c['variant']} | {_fmt(c['accuracy'])} |")
            for pruner, c in sorted(full.items()):
                lines.append(f"| {pruner} | cap (all banks) | {_fmt(c['accuracy'])} |")
            lines.append("")
    lines += ["## Does CAP's gain grow with sparsity?", "",
              "| task | pruner | gain (CAP - CE+KD) by sparsity | growth, lowest to highest | noise (SE) | verdict |",
              "|---|---|---|---|---|---|"]
    for tr in trends:
        gains = ", ".join(f"{float(s):.0%}: {g:+.3f}" for s, g in tr["gains"].items())
        b = baselines[tr["task"]]
        empty = learned_nothing(teachers[tr["task"]]["eval_metrics"]["accuracy"], b["majority_rate"],
                                b["eval_examples"])
        lines.append(f"| {tr['task']} | {tr['pruner']} | {gains} | {tr['growth']:+.3f} | {tr['growth_se']:.3f} | "
                     f"{tr['verdict']}{' (teacher at the majority rate: not evidence)' if empty else ''} |")
    lines += ["", "Noise: the standard error of a growth combines the seed-to-seed standard error of each gain "
              "(paired by seed) or, when larger, the binomial standard error of a difference of two accuracies "
              "on the validation split; 'grows' needs more than 2 SE.", "",
              "Plot: `accuracy_vs_sparsity.png` (one line per method, error bars: std over seeds)."]
    return "\n".join(lines) + "\n"


def check_task_names(tasks: Sequence[str]) -> None:
    """Refuses, with one error naming the first unknown one, task names outside :data:`TASK_PRESETS`."""
    bad = [t for t in tasks if t not in TASK_PRESETS]
    if bad:
        from jaxcompress.errors import ConfigError

        raise ConfigError(f"tasks must be among {', '.join(TASK_PRESETS)}; got {bad[0]!r}")


def run_cap_experiment(cfg: CapExperimentConfig, out: pathlib.Path, quiet: bool = False,
                       quick: bool = False) -> dict[str, Any]:
    """The whole experiment; see the module docstring."""
    start = time.perf_counter()
    validate(cfg)
    check_task_names(cfg.tasks)
    check_output(out)
    lcfg = LargeThenCompressConfig(sizes=(cfg.size,), budget_tflops=cfg.pretrain_tflops, batch_size=cfg.batch_size,
                                   seq_length=cfg.seq_length)
    row = plan(lcfg)[0]
    grid = runs(cfg)
    if not quiet:
        print(f"[pretrain] {cfg.size} for {row['steps']} steps; then {len(cfg.tasks)} teachers and "
              f"{len(grid)} pruning runs", flush=True)
    pretrain = _pretrain(row, lcfg, out, quiet)
    teachers = {}
    for task in cfg.tasks:
        teachers[task] = _finetune(cfg, task, out, quiet)
        if not quiet:
            print(f"[teacher] {task}: accuracy {teachers[task]['eval_metrics']['accuracy']:.4f}", flush=True)
    # Seed-major order: a setting's later seeds start after its first one compiled (and cached) the step.
    order = sorted(range(len(grid)), key=lambda i: grid[i]["seed"])
    rows: list[dict[str, Any]] = [{} for _ in grid]
    jobs = [(cfg, grid[i], out) for i in order]
    for count, (index, row) in enumerate(map_in_processes(_prune_job, jobs, cfg.workers), start=1):
        rows[order[index]] = row
        if not quiet:
            print(f"[prune {count}/{len(grid)}] {row['task']} {row['pruner']} {row['variant']} "
                  f"{row['sparsity']:g} seed {row['seed']}: accuracy {row['accuracy']:.4f} at measured "
                  f"sparsity {row['measured_sparsity']:.4f} ({row['wall_time_s']:.0f} s)", flush=True)
    baselines = {task: task_baselines(task) for task in cfg.tasks}
    agg = aggregate(rows)
    trends = trend(agg["gains"], {t: b["eval_examples"] for t, b in baselines.items()})
    _plot(cfg, agg, teachers, baselines, out / "accuracy_vs_sparsity.png")
    wall = time.perf_counter() - start
    (out / "report.md").write_text(_report(cfg, agg, trends, teachers, baselines, pretrain, wall, quick))
    results = {"config": dataclasses.asdict(cfg), "quick": quick, "pretrain": pretrain, "teachers": teachers,
               "baselines": baselines, "runs": rows, "aggregate": agg, "trend": trends,
               "plots": ["accuracy_vs_sparsity.png"], "wall_time_s": wall}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def settings_for(quick: bool = False, overrides: Sequence[str] = (), config_file: str | None = None
                 ) -> CapExperimentConfig:
    """Defaults or ``config_file``, then :data:`QUICK`, then ``KEY=VALUE`` overrides."""
    cfg = load_config(config_file, expected=CapExperimentConfig) if config_file else CapExperimentConfig()
    if quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    return apply_overrides(cfg, list(overrides))


@register_experiment("cap", "contrastive pruning vs movement/magnitude pruning at 50-97% sparsity, ablations")
def run(request: RunRequest) -> dict[str, Any]:
    return run_cap_experiment(settings_for(request.quick, request.overrides, request.config), request.out,
                              request.quiet, request.quick)
