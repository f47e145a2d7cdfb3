"""``jaxcompress run mixed-vocab``: students many times smaller than the teacher, with their own small vocabulary.

1. Pretrain a BERT teacher (``bert-4x128`` by default, the teacher's 8k vocabulary) with MLM on
   the embedded corpus (the ``large-then-compress`` recipe) and fine-tune it on ``pydocs_topic``
   and ``pydocs_pair`` (the ``cap`` recipe).
2. For each student size (``LAYERSxWIDTH``), four students (``variants``):
   (b) ``scratch``: its own small vocabulary, fine-tuned from random weights on the labels;
   (c0) ``logit-kd``: the teacher's vocabulary, KD fine-tuning from random weights (no pretraining
       stage: the control that tells what stage II adds);
   (c) ``kd``: the teacher's vocabulary, stage II (MLM + hidden-state transfer through the
       projection) then KD fine-tuning -- standard distillation, which keeps the teacher's table;
   (d) ``mixed``: its own vocabulary, stage I (dual training on mixed-vocabulary text) + stage II
       + KD fine-tuning -- mixed-vocabulary distillation.
   The pretraining stages are shared by both tasks.
3. Per model: parameters, float32 and int8 bytes, the word table's share of the parameters,
   validation accuracy (also with int8 weights), the compression ratio against the teacher; the largest
   ratio at which a student keeps >= 90% of the teacher's accuracy; bag-of-words, word-overlap (pair)
   and majority-class baselines.
   ``results.json``, ``report.md``, ``accuracy_vs_compression.png``.

Every training writes its own work directory and is skipped when its ``summary.json`` exists.

References:
  Zhao, Gupta, Song & Zhou, "Extreme Language Model Compression with Optimal Subwords and Shared
  Projections", arXiv 1909.11687 v1, and "Extremely Small BERT Models from Mixed-Vocabulary
  Training", EACL 2021.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Any, Sequence

from jaxcompress.configlib import apply_overrides, option, validate
from jaxcompress.configs import load_config
from jaxcompress.errors import ConfigError
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.runners.cap import check_task_names, learned_nothing, task_baselines
from jaxcompress.runners.workspace import check_output

VARIANT_LABELS = {"scratch": "(b) from scratch, own vocab", "logit-kd": "(c0) logit KD only, teacher's vocab",
                  "kd": "(c) standard KD, teacher's vocab", "mixed": "(d) mixed-vocab distillation"}


@dataclasses.dataclass
class MixedVocabExperimentConfig:
    """The grid and budgets of ``jaxcompress run mixed-vocab``."""

    teacher: str = option("bert-4x128", help="teacher encoder, bert-LAYERSxWIDTH")
    students: tuple[str, ...] = option(("2x48", "4x96"), help="student sizes, LAYERSxWIDTH (width 48-256, "
                                                              "2-6 layers)")
    tasks: tuple[str, ...] = option(("topic", "pair"), help="downstream tasks (topic, pair)")
    variants: tuple[str, ...] = option(tuple(VARIANT_LABELS), help="students per size: scratch, logit-kd (KD "
                                       "fine-tuning only), kd (stage II + KD), mixed (stages I, II + KD)")
    student_vocab: int = option(2000, help="pieces of the students' own vocabulary", min=256)
    p_mix: float = option(0.5, help="stage I: probability that a word is tokenised with the student's vocabulary",
                          min=0.0, max=1.0)
    pretrain_tflops: float = option(4.0, help="teacher pretraining FLOPs (10^12)", min=0.0, min_exclusive=True)
    pretrain_learning_rate: float = option(2e-3, help="teacher pretraining learning rate at width 64 (x 64/width)",
                                           min=0.0, min_exclusive=True)
    finetune_steps: int = option(200, help="teacher and student fine-tuning steps", min=1)
    finetune_learning_rate: float = option(3e-3, help="fine-tuning learning rate at width 64 (x 64/width for "
                                           "the teacher)", min=0.0, min_exclusive=True)
    dual_steps: int = option(200, help="stage I steps", min=1)
    student_steps: int = option(200, help="stage II steps", min=1)
    stage_learning_rate: float = option(3e-3, help="stage I and II learning rate", min=0.0, min_exclusive=True)
    weights_transfer: bool = option(False, help="stage II also matches U^T W_T U to the student's attention "
                                                "kernels")
    batch_size: int = option(32, help="batch size of every run", min=1)
    seq_length: int = option(64, help="tokens per example", min=8)
    seed: int = option(0, help="seed of every student run", min=0)


QUICK = {"students": ("2x48",), "tasks": ("topic",), "teacher": "bert-2x128", "pretrain_tflops": 1.0,
         "finetune_steps": 100, "dual_steps": 60, "student_steps": 80}


def _teacher_runs(cfg: MixedVocabExperimentConfig, out: pathlib.Path, quiet: bool) -> tuple[dict, dict]:
    """Pretrain the teacher and fine-tune it on every task (the large-then-compress and cap recipes)."""
    from jaxcompress.runners.cap import CapExperimentConfig, _finetune
    from jaxcompress.runners.large_then_compress import LargeThenCompressConfig, _pretrain, plan

    lcfg = LargeThenCompressConfig(sizes=(cfg.teacher,), budget_tflops=cfg.pretrain_tflops,
                                   pretrain_learning_rate=cfg.pretrain_learning_rate, batch_size=cfg.batch_size,
                                   seq_length=cfg.seq_length)
    row = plan(lcfg)[0]
    if not quiet:
        print(f"[teacher] pretraining {cfg.teacher} for {row['steps']} steps", flush=True)
    pretrain = _pretrain(row, lcfg, out, quiet)
    ccfg = CapExperimentConfig(size=cfg.teacher, tasks=cfg.tasks, finetune_steps=cfg.finetune_steps,
                               finetune_learning_rate=cfg.finetune_learning_rate, batch_size=cfg.batch_size,
                               seq_length=cfg.seq_length)
    teachers = {}
    for task in cfg.tasks:
        teachers[task] = _finetune(ccfg, task, out, quiet)
        if not quiet:
            print(f"[teacher] {task}: accuracy {teachers[task]['eval_metrics']['accuracy']:.4f}", flush=True)
    return pretrain, teachers


def _student(cfg: MixedVocabExperimentConfig, size: str, variant: str, task: str, out: pathlib.Path,
             quiet: bool) -> dict[str, Any]:
    from jaxcompress.compress.mixed_vocab import size_breakdown
    from jaxcompress.tasks.mixed_vocab import teacher_config
    from jaxcompress.workflows.mixed_vocab import StudentPlan, parse_size, run_student

    layers, width = parse_size(size)
    teacher_dir = out / "finetune" / task
    finetuned = teacher_config(str(teacher_dir))
    finetuned.text.init_from = str(out / "pretrain" / cfg.teacher)
    plan = StudentPlan(layers=layers, width=width, vocab_size=cfg.student_vocab, variant=variant, p_mix=cfg.p_mix,
                       dual_steps=cfg.dual_steps, student_steps=cfg.student_steps, finetune_steps=cfg.finetune_steps,
                       learning_rate=cfg.stage_learning_rate, finetune_learning_rate=cfg.finetune_learning_rate,
                       weights=cfg.weights_transfer, batch_size=cfg.batch_size, seed=cfg.seed)
    start = time.perf_counter()
    result = run_student(finetuned, teacher_dir, plan, out / "students" / size / variant, quiet=True,
                         finetune_dir=out / "students" / size / variant / f"finetune-{task}")
    stages = {k: v.get("eval_metrics", {}) for k, v in result["summaries"].items()}
    return {"task": task, "size": size, "variant": variant, "accuracy": stages["finetune"]["accuracy"],
            "int8_accuracy": int8_accuracy(result["config"], result["params"]), "stages": stages,
            **size_breakdown(result["params"]), "wall_time_s": time.perf_counter() - start}


def int8_accuracy(config: Any, params: Any) -> float:
    """Validation accuracy of ``params`` stored as the int8 column counts them: every kernel and embedding
    table as per-channel int8 codes with float32 scales, run after decoding (post-training, no calibration)."""
    from jaxcompress.compress.artifact import Compressed
    from jaxcompress.compress.quantize import quantize_params
    from jaxcompress.workflows.compress_workdir import evaluate_params

    int8 = quantize_params(Compressed.from_params(params), bits=8, include="(kernel|embedding)$", backend="reference")
    metrics, _, _ = evaluate_params(config, int8.params, latency_repeats=1)
    return float(metrics["accuracy"])


def embedding_alignment(dual_dir: pathlib.Path, teacher_file: str, student_file: str) -> dict[str, Any]:
    """Did stage I put the student's pieces where the teacher's are? For pieces spelled the same in both
    vocabularies: the mean cosine of ``E_S[s] Uᵀ`` with the teacher's row of the same piece, the same
    against randomly paired teacher rows (the chance level), and how often the same piece is the nearest
    teacher row among the shared pieces (top-1 retrieval; chance is 1 / pieces)."""
    import numpy as np

    from jaxcompress.data.text.tokenizer import Tokenizer
    from jaxcompress.train.checkpoint import restore_params

    params = restore_params(dual_dir, field="the stage-I run")
    teacher, student = Tokenizer(teacher_file), Tokenizer(student_file)
    t_ids = {p: i for i, p in enumerate(teacher.pieces(range(teacher.num_special, teacher.vocab_size)),
                                        teacher.num_special)}
    pairs = [(i, t_ids[p]) for i, p in enumerate(student.pieces(range(student.num_special, student.vocab_size)),
                                                 student.num_special) if p in t_ids]
    s_idx, t_idx = (np.asarray(x) for x in zip(*pairs))
    mapped = params["student_embedding"][s_idx] @ params["projection"].T
    target = params["teacher"]["encoder"]["embeddings"]["word"]["embedding"][t_idx]
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True) + 1e-12
    target /= np.linalg.norm(target, axis=1, keepdims=True) + 1e-12
    shuffled = target[np.random.default_rng(0).permutation(len(target))]
    nearest = (mapped @ target.T).argmax(1)
    return {"shared_pieces": len(pairs), "cosine_same_piece": float((mapped * target).sum(1).mean()),
            "cosine_random_piece": float((mapped * shuffled).sum(1).mean()),
            "nearest_is_same_piece": float((nearest == np.arange(len(pairs))).mean()), "chance": 1 / len(pairs)}


def _teacher_row(task: str, out: pathlib.Path, summary: dict[str, Any]) -> dict[str, Any]:
    from jaxcompress.compress.mixed_vocab import size_breakdown
    from jaxcompress.train.checkpoint import restore_params
    from jaxcompress.train.config import config_from_dict

    workdir = out / "finetune" / task
    params = restore_params(workdir, field="the teacher's fine-tuning run")
    config = config_from_dict(json.loads((workdir / "config.json").read_text()))
    return {"task": task, "size": "teacher", "variant": "teacher", "accuracy": summary["eval_metrics"]["accuracy"],
            "int8_accuracy": int8_accuracy(config, params), **size_breakdown(params)}


def with_ratios(rows: list[dict[str, Any]], teachers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds ``ratio`` (teacher float32 bytes / the model's float32 bytes), ``ratio_int8`` (/ its int8 bytes),
    ``kept`` (accuracy / the float32 teacher's) and ``kept_int8`` (the int8 model's accuracy, where measured,
    / the float32 teacher's) to each row."""
    out = []
    for row in rows:
        teacher = teachers[row["task"]]
        out.append({**row, "ratio": teacher["float32_bytes"] / row["float32_bytes"],
                    "ratio_int8": teacher["float32_bytes"] / row["int8_bytes"],
                    "kept": row["accuracy"] / teacher["accuracy"],
                    "kept_int8": row.get("int8_accuracy", row["accuracy"]) / teacher["accuracy"]})
    return out


def largest_ratio(rows: list[dict[str, Any]], threshold: float = 0.9) -> dict[str, Any]:
    """Per task and variant: the largest compression ratio (float32 and int8 storage) among students keeping
    ``threshold`` of the float32 teacher's accuracy (None when none does); the int8 ratio judged on the int8
    model's own accuracy, so its size (``size_int8``) may differ."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["variant"] == "teacher":
            continue
        cell = best.setdefault(row["task"], {}).setdefault(
            row["variant"], {"ratio": None, "size": None, "ratio_int8": None, "size_int8": None})
        if row["kept"] >= threshold and (cell["ratio"] is None or row["ratio"] > cell["ratio"]):
            cell.update(ratio=row["ratio"], size=row["size"])
        if row["kept_int8"] >= threshold and (cell["ratio_int8"] is None or row["ratio_int8"] > cell["ratio_int8"]):
            cell.update(ratio_int8=row["ratio_int8"], size_int8=row["size"])
    return best


def _plot(cfg: MixedVocabExperimentConfig, rows: list[dict[str, Any]], baselines: dict[str, dict],
          path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.tasks) + 1, figsize=(5.5 * (len(cfg.tasks) + 1), 4.2), squeeze=False)
    markers = {"scratch": "s", "logit-kd": "v", "kd": "^", "mixed": "o"}
    for ax, task in zip(axes[0], cfg.tasks):
        teacher = next(r for r in rows if r["task"] == task and r["variant"] == "teacher")
        for variant, marker in markers.items():
            mine = sorted((r for r in rows if r["task"] == task and r["variant"] == variant), key=lambda r: r["ratio"])
            if mine:
                ax.plot([r["ratio"] for r in mine], [r["accuracy"] for r in mine], marker + "-",
                        label=VARIANT_LABELS[variant])
                for r in mine:
                    ax.annotate(r["size"], (r["ratio"], r["accuracy"]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.axhline(teacher["accuracy"], color="black", lw=1, label=f"teacher {cfg.teacher}")
        ax.axhline(0.9 * teacher["accuracy"], color="black", lw=1, ls="--", label="90% of the teacher")
        ax.axhline(baselines[task]["accuracy"], color="gray", ls=":", label="bag of words")
        if "overlap" in baselines[task]:
            ax.axhline(baselines[task]["overlap"]["accuracy"], color="green", ls=":", label="word overlap")
        ax.axhline(baselines[task]["majority_rate"], color="red", ls=":", lw=1, label="majority class")
        ax.set_xscale("log")
        ax.set(xlabel="compression ratio (teacher float32 bytes / student float32 bytes)",
               ylabel="validation accuracy", title=f"pydocs_{task}")
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    models = [r for r in rows if r["task"] == cfg.tasks[0]]
    labels = [r["size"] if r["variant"] == "teacher" else f"{r['size']} {r['variant']}" for r in models]
    embedding = [r["word_embedding_params"] / 1e3 for r in models]
    rest = [(r["params"] - r["word_embedding_params"]) / 1e3 for r in models]
    ax.barh(labels, embedding, label="word embedding table")
    ax.barh(labels, rest, left=embedding, label="everything else")
    for y, r in enumerate(models):
        ax.annotate(f"{r['embedding_share']:.0%} table", (r["params"] / 1e3, y), fontsize=7, xytext=(3, -3),
                    textcoords="offset points")
    ax.set(xlabel="parameters (thousands)", title="where the parameters go")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def _report(cfg: MixedVocabExperimentConfig, rows: list[dict[str, Any]], best: dict, baselines: dict, pretrain: dict,
            wall: float, quick: bool, alignment: dict[str, dict[str, Any]]) -> str:
    lines = ["# Mixed-vocabulary distillation on the embedded English tasks" + (" (--quick)" if quick else ""), "",
             f"Teacher {cfg.teacher} (8k vocabulary), MLM-pretrained {pretrain['final_step']} steps "
             f"({cfg.pretrain_tflops} TFLOPs), fine-tuned {cfg.finetune_steps} steps per task. Students: "
             f"{', '.join(cfg.students)} (LAYERSxWIDTH), own vocabulary {cfg.student_vocab} pieces; stage I "
             f"{cfg.dual_steps} steps (p_mix {cfg.p_mix}), stage II {cfg.student_steps} steps (MLM + activation "
             f"transfer{' + weight transfer' if cfg.weights_transfer else ''}), fine-tuning {cfg.finetune_steps} "
             f"steps (KD for (c0), (c) and (d), labels only for (b)); seed {cfg.seed}. Wall time {wall / 60:.1f} min "
             "(this invocation; finished runs are skipped).", ""]
    for task in cfg.tasks:
        b = baselines[task]
        n = b["eval_examples"]
        lines += [f"## pydocs_{task} (validation, {n} examples)", "",
                  "| model | params | word-table share | float32 KB | int8 KB | ratio (f32) | ratio (int8) | "
                  "accuracy | of teacher | accuracy, int8 |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["task"] == task):
            name = f"teacher {cfg.teacher}" if r["variant"] == "teacher" else f"{r['size']} {VARIANT_LABELS[r['variant']]}"
            lines.append(f"| {name} | {r['params']:,} | {r['embedding_share']:.1%} | {r['float32_bytes'] / 1e3:.0f} | "
                         f"{r['int8_bytes'] / 1e3:.0f} | {r['ratio']:.1f}x | {r['ratio_int8']:.1f}x | "
                         f"{r['accuracy']:.3f} ± {_binomial_se(r['accuracy'], n):.3f} | {r['kept']:.0%} | "
                         + (f"{r['int8_accuracy']:.3f} |" if "int8_accuracy" in r else "- |"))
        lines += [f"| bag of words (baseline) | | | | | | | {b['accuracy']:.3f} | | |"]
        if "overlap" in b:
            lines.append(f"| word overlap (pair baseline) | | | | | | | {b['overlap']['accuracy']:.3f} | | |")
        lines += [f"| majority class | | | | | | | {b['majority_rate']:.3f} | | |", "",
                  "Largest compression ratio keeping >= 90% of the float32 teacher's accuracy (the int8 ratio judged on "
                  "the int8 model's accuracy):", ""]
        for variant in cfg.variants:
            cell = best.get(task, {}).get(variant)
            if cell is None:
                continue
            f32 = f"{cell['ratio']:.1f}x ({cell['size']})" if cell["ratio"] else "none of the sizes"
            int8 = f"{cell['ratio_int8']:.1f}x ({cell['size_int8']})" if cell["ratio_int8"] else "none of the sizes"
            lines.append(f"- {VARIANT_LABELS[variant]}: float32 {f32}; int8 {int8}")
        teacher = next(r for r in rows if r["task"] == task and r["variant"] == "teacher")
        if learned_nothing(teacher["accuracy"], b["majority_rate"], n):
            lines += ["", f"**The teacher is at the majority rate ({b['majority_rate']:.3f}) on this task: it learned "
                      "nothing a student could keep, so the 90% rule above measures nothing here.**"]
        lines += ["", f"± is the binomial standard error of one accuracy on {n} examples (one seed). "
                  f"Baseline: {b['recipe']}.", ""]
    lines += ["## Stage I: are the student's pieces aligned with the teacher's?", "",
              "| student | shared pieces | cosine, same piece | cosine, random piece | nearest teacher row is the "
              "same piece | chance |", "|---|---|---|---|---|---|"]
    for size, a in alignment.items():
        lines.append(f"| {size} | {a['shared_pieces']} | {a['cosine_same_piece']:.3f} | {a['cosine_random_piece']:.3f} "
                     f"| {a['nearest_is_same_piece']:.2%} | {a['chance']:.2%} |")
    lines += ["", "Pieces spelled the same in both vocabularies: the student's row mapped into the teacher "
              "(`E_S[s] Uᵀ`, after stage I) against the teacher's row of the same piece.", ""]
    lines += ["Ratios compare stored bytes with the float32 teacher classifier (encoder, pooler, classifier); "
              "int8 stores every kernel and embedding table as per-channel int8 codes with float32 scales. "
              "Plot: `accuracy_vs_compression.png` (accuracy against ratio, and where the parameters go)."]
    return "\n".join(lines) + "\n"


def run_mixed_vocab_experiment(cfg: MixedVocabExperimentConfig, out: pathlib.Path, quiet: bool = False,
                               quick: bool = False) -> dict[str, Any]:
    """The whole experiment; see the module docstring."""
    from jaxcompress.workflows.mixed_vocab import parse_size

    start = time.perf_counter()
    validate(cfg)
    check_task_names(cfg.tasks)
    for size in cfg.students:
        parse_size(size)
    unknown = [v for v in cfg.variants if v not in VARIANT_LABELS]
    if unknown:
        raise ConfigError(f"variants must be among {', '.join(VARIANT_LABELS)}; got {unknown[0]!r}")
    check_output(out)
    pretrain, teacher_summaries = _teacher_runs(cfg, out, quiet)
    rows = [_teacher_row(task, out, teacher_summaries[task]) for task in cfg.tasks]
    for size in cfg.students:
        for variant in cfg.variants:
            for task in cfg.tasks:
                row = _student(cfg, size, variant, task, out, quiet)
                rows.append(row)
                if not quiet:
                    print(f"[student {size} {variant}] {task}: accuracy {row['accuracy']:.4f}, {row['params']:,} "
                          f"params ({row['embedding_share']:.0%} word table), {row['wall_time_s']:.0f} s", flush=True)
    teachers = {r["task"]: r for r in rows if r["variant"] == "teacher"}
    rows = with_ratios(rows, teachers)
    alignment = {}
    for size in (cfg.students if "mixed" in cfg.variants else ()):
        dual = json.loads((out / "students" / size / "mixed" / "dual" / "config.json").read_text())["model"]
        alignment[size] = embedding_alignment(out / "students" / size / "mixed" / "dual", dual["teacher_tokenizer"],
                                              dual["student_tokenizer"])
    best = largest_ratio(rows)
    baselines = {task: task_baselines(task) for task in cfg.tasks}
    _plot(cfg, rows, baselines, out / "accuracy_vs_compression.png")
    wall = time.perf_counter() - start
    (out / "report.md").write_text(_report(cfg, rows, best, baselines, pretrain, wall, quick, alignment))
    results = {"config": dataclasses.asdict(cfg), "quick": quick, "pretrain": pretrain, "alignment": alignment,
               "teachers": teacher_summaries, "baselines": baselines, "rows": rows, "largest_ratio_at_90": best,
               "plots": ["accuracy_vs_compression.png"], "wall_time_s": wall}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def settings_for(quick: bool = False, overrides: Sequence[str] = (), config_file: str | None = None
                 ) -> MixedVocabExperimentConfig:
    """Defaults or ``config_file``, then :data:`QUICK`, then ``KEY=VALUE`` overrides."""
    cfg = (load_config(config_file, expected=MixedVocabExperimentConfig) if config_file
           else MixedVocabExperimentConfig())
    if quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    return apply_overrides(cfg, list(overrides))


@register_experiment("mixed-vocab", "mixed-vocabulary distillation: small-vocabulary students vs scratch and "
                                    "standard KD, compression ratio at 90% of the teacher, embedding share")
def run(request: RunRequest) -> dict[str, Any]:
    return run_mixed_vocab_experiment(settings_for(request.quick, request.overrides, request.config), request.out,
                                      request.quiet, request.quick)
