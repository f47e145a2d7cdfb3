"""``jaxcompress run albert``: ALBERT pretraining on the embedded English corpus, then fine-tuning.

1. Pretrains ``albert-tiny`` (masked LM over n-gram masks + sentence-order
   prediction) on ``pydocs_pretrain`` through the core loop.
2. Fine-tunes ``albert-tiny-topic`` (12 library areas) and
   ``albert-tiny-pair`` (same document or not) twice each: from the
   pretrained encoder (``text.init_from``) and from scratch.

Writes ``results.json``, ``report.md`` and ``albert.png`` (MLM loss, SOP
accuracy against chance, fine-tuning accuracy). ``--quick`` shortens every run.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (MLM + SOP pretraining, fine-tuning).
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np

from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.data.text.baseline import bag_of_words_baseline
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.train import train
from jaxcompress.train.metrics import read_metrics

#: (pretraining steps, fine-tuning steps, eval every) in full and quick mode. The topic recipe (mean pooling,
#: lr 3e-3) needs ~150 steps to leave the majority class, so the quick mode fine-tunes that long.
SCHEDULE = {False: (1000, 300, 200), True: (60, 150, 75)}
DOWNSTREAM = (("topic", "albert-tiny-topic"), ("pair", "albert-tiny-pair"))


def _binomial_z(accuracy: float, n: int, chance: float) -> tuple[float, float]:
    """Standard error of an accuracy over n examples, and its z-score against ``chance``."""
    se = math.sqrt(max(chance * (1 - chance), 1e-12) / max(n, 1))
    return se, (accuracy - chance) / se


def _majority_rate(name: str, split: str) -> float:
    from jaxcompress import data

    source = data.load_split(name, split)
    labels = source.read(np.arange(len(source)))["label"]
    return float(np.bincount(labels).max() / len(labels))


def unigram_baseline(config: Any, batches: int = 50, batch_size: int = 64) -> float:
    """Cross-entropy (nats) of the validation masked tokens under the train masked-token frequencies.

    What a masked LM that ignores the context can reach: a loss below it means
    the model uses the surrounding words. Frequencies are counted over
    ``batches`` training batches built by the task itself (add-one smoothing).
    """
    from jaxcompress import data
    from jaxcompress.train.build import make_task

    task = make_task(config, data.dataset_info(config.data.name))
    source = data.load_split(config.data.name, config.data.train_split)
    train_ids = []
    for step in range(batches):
        batch = task.prepare_batch(data.train_batch(source, step, batch_size, config.data.seed))
        train_ids.append(batch["masked_ids"][batch["masked_weights"] > 0])
    eval_ids = []
    for raw in data.eval_batches(data.load_split(config.data.name, config.data.eval_split), batch_size):
        batch = task.prepare_batch(raw)
        eval_ids.append(batch["masked_ids"][(batch["masked_weights"] > 0) & (raw["weight"][:, None] > 0)])
    return unigram_cross_entropy(np.concatenate(train_ids), np.concatenate(eval_ids), config.model.vocab_size)


def unigram_cross_entropy(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
    """Mean negative log-probability (nats) of ``eval_ids`` under the add-one smoothed frequencies of ``train_ids``."""
    counts = np.bincount(np.asarray(train_ids, np.int64), minlength=vocab_size)[:vocab_size] + 1.0
    log_p = np.log(counts / counts.sum())
    eval_ids = np.asarray(eval_ids, np.int64)
    return float(-log_p[eval_ids].mean()) if eval_ids.size else float("nan")


def _plot(pretrain: pathlib.Path, finetune: list[dict[str, Any]], unigram: float, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(pretrain, "train"), read_metrics(pretrain, "eval")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([r["step"] for r in train], [r["mlm_loss"] for r in train], label="train")
    axes[0].plot([r["step"] for r in evals], [r["mlm_loss"] for r in evals], "o-", label="validation")
    axes[0].axhline(unigram, color="grey", ls=":", label="unigram (no context)")
    axes[0].set(xlabel="step", ylabel="masked-LM loss", title="albert-tiny: masked LM")
    axes[0].legend()
    axes[1].plot([r["step"] for r in train], [r["sop_accuracy"] for r in train], label="train (batch of 32)")
    axes[1].plot([r["step"] for r in evals], [r["sop_accuracy"] for r in evals], "o-", label="validation")
    axes[1].axhline(0.5, color="grey", ls=":", label="chance")
    axes[1].set(xlabel="step", ylabel="accuracy", title="sentence-order prediction")
    axes[1].legend()
    names = [f"{row['task']}\n{row['init']}" for row in finetune]
    axes[2].bar(range(len(finetune)), [row["accuracy"] for row in finetune],
                color=["tab:blue" if row["init"] == "pretrained" else "tab:grey" for row in finetune])
    for i, row in enumerate(finetune):
        axes[2].hlines(row["chance"], i - 0.4, i + 0.4, colors="black", linestyles=":")
    axes[2].set_xticks(range(len(finetune)), names)
    axes[2].set(ylabel="validation accuracy", title="fine-tuning (dotted: majority class)", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@register_experiment("albert", "ALBERT-tiny: MLM+SOP pretraining on the embedded corpus, then topic/pair fine-tuning")
def run(request: RunRequest) -> dict[str, Any]:
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    pre_steps, fine_steps, every = SCHEDULE[request.quick]
    schedule = [f"eval_every={every}", f"checkpoint_every={every}"]
    pretrain = out / "pretrain"
    pre_config = apply_overrides(get_preset("albert-tiny"), [f"steps={pre_steps}", *schedule, *request.overrides])
    pre_summary = train(pre_config, pretrain, quiet=request.quiet)
    train_records = read_metrics(pretrain, "train")
    evaluation = pre_summary["eval_metrics"]
    n_eval = _split_size(pre_config.data.name, pre_config.data.eval_split)
    sop_se, sop_z = _binomial_z(evaluation["sop_accuracy"], n_eval, 0.5)
    pretraining = {
        "steps": pre_steps, "train_mlm_loss_first": train_records[0]["mlm_loss"],
        "train_mlm_loss_last": train_records[-1]["mlm_loss"], "eval": evaluation, "eval_examples": n_eval,
        "sop_accuracy_se": sop_se, "sop_z_vs_chance": sop_z, "wall_time_s": pre_summary["wall_time_s"],
        "num_params": pre_summary["num_params"], "unigram_baseline": unigram_baseline(pre_config),
    }

    finetune = []
    for task, preset in DOWNSTREAM:
        for init in ("pretrained", "scratch"):
            overrides = [f"steps={fine_steps}", *schedule]
            if init == "pretrained":
                overrides.append(f"text.init_from={pretrain}")
            config = apply_overrides(get_preset(preset), overrides)
            summary = train(config, out / f"{task}-{init}", quiet=request.quiet)
            n = _split_size(config.data.name, config.data.eval_split)
            chance = _majority_rate(config.data.name, config.data.eval_split)
            accuracy = summary["eval_metrics"]["accuracy"]
            finetune.append({"task": task, "preset": preset, "init": init, "accuracy": accuracy,
                             "loss": summary["eval_metrics"]["loss"], "eval_examples": n, "chance": chance,
                             "accuracy_se": _binomial_z(accuracy, n, chance)[0],
                             "wall_time_s": summary["wall_time_s"]})

    topic = get_preset("albert-tiny-topic")
    bow = bag_of_words_baseline(topic.data.name, topic.data.train_split, topic.data.eval_split,
                                text_field=topic.text.text_field or "text", label_field=topic.text.label_field,
                                data_dir=topic.data.data_dir or None)
    finetune.append({"task": "topic", "preset": "bag of words", "init": "bag-of-words baseline",
                     "accuracy": bow["accuracy"], "loss": None, "eval_examples": bow["eval_examples"],
                     "chance": bow["majority_rate"],
                     "accuracy_se": _binomial_z(bow["accuracy"], bow["eval_examples"], bow["majority_rate"])[0],
                     "wall_time_s": bow["wall_time_s"], "recipe": bow["recipe"]})

    _plot(pretrain, finetune, pretraining["unigram_baseline"], out / "albert.png")
    results = {"pretraining": pretraining, "finetuning": finetune, "quick": request.quick}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(_report(results))
    return results


def _split_size(name: str, split: str) -> int:
    from jaxcompress import data

    return len(data.load_split(name, split))


def _report(results: dict[str, Any]) -> str:
    pre = results["pretraining"]
    ev = pre["eval"]
    lines = [
        "# ALBERT-tiny on the embedded English corpus (pydocs)", "",
        f"Pretraining, {pre['steps']} steps ({pre['wall_time_s']:.0f} s, {pre['num_params']:,} parameters): "
        f"train masked-LM loss {pre['train_mlm_loss_first']:.3f} -> {pre['train_mlm_loss_last']:.3f}; "
        f"validation masked-LM loss {ev['mlm_loss']:.3f} (context-free unigram baseline "
        f"{pre['unigram_baseline']:.3f}), accuracy {ev['mlm_accuracy']:.3f}; "
        f"validation SOP accuracy {ev['sop_accuracy']:.3f} +- {pre['sop_accuracy_se']:.3f} over "
        f"{pre['eval_examples']} pairs (z = {pre['sop_z_vs_chance']:.1f} against chance 0.5).", "",
        "| task | encoder | validation accuracy | +- | majority class | examples |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["finetuning"]:
        lines.append(f"| {row['task']} | {row['init']} | {row['accuracy']:.3f} | {row['accuracy_se']:.3f} | "
                     f"{row['chance']:.3f} | {row['eval_examples']} |")
    recipes = {row["recipe"] for row in results["finetuning"] if "recipe" in row}
    if recipes:
        lines += ["", f"Bag-of-words baseline: {', '.join(sorted(recipes))}."]
    return "\n".join(lines) + "\n"
