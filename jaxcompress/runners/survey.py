"""``jaxcompress run survey``: every compression family on one small model, one table.

Trains the digits CNN (and, for fine-tuned pruning, a second run with the
pruning wrapper in the loop), then applies each family of the survey through
``jaxcompress compress``'s pipeline: unstructured and N:M pruning, structured
channel pruning, quantization, binary/ternary weights, low-rank factorization,
k-means weight sharing, the hashing trick, combinations (prune then
quantize: Deep Compression's recipe), compact filters (a depthwise-separable
conv) and knowledge distillation (a narrow student from scratch, and the
separable model distilled from the original). Writes ``results.json``,
``report.md`` (accuracy vs compression rate per family) and
``accuracy_vs_size.png``. Every row is saved as it finishes, so a rerun
resumes.

References:
  Cheng et al., "A Survey of Model Compression and Acceleration for Deep
  Neural Networks", arXiv 1710.09282.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from jaxcompress.compress.methods import method_names
from jaxcompress.compress.report import markdown_table, plot_accuracy_vs_size
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.train import train
from jaxcompress.workflows.compress_workdir import compress_workdir, evaluate_params, load_trained

# (family, label, methods in order, --set options)
RECIPES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("pruning", "magnitude 50%", ("prune",), ("prune.sparsity=0.5",)),
    ("pruning", "magnitude 80%", ("prune",), ("prune.sparsity=0.8",)),
    ("pruning", "magnitude 90%", ("prune",), ("prune.sparsity=0.9",)),
    ("pruning", "global magnitude 90%", ("prune",), ("prune.sparsity=0.9", "prune.scope=global")),
    ("pruning", "2:4", ("prune",), ("prune.n=2", "prune.m=4", "prune.exclude=conv_0")),  # conv_0: 1 input channel
    ("structured", "channels 25%", ("structured",), ("structured.sparsity=0.25",)),
    ("structured", "channels 50%", ("structured",), ("structured.sparsity=0.5",)),
    ("quantization", "int8 per channel", ("quantize",), ("quantize.bits=8",)),
    ("quantization", "int4 per channel", ("quantize",), ("quantize.bits=4",)),
    ("quantization", "ternary", ("ternarize",), ()),
    ("quantization", "binary (XNOR scale)", ("binarize",), ()),
    ("low-rank", "SVD 95% energy", ("lowrank",), ("lowrank.energy=0.95",)),
    ("low-rank", "SVD 80% energy", ("lowrank",), ("lowrank.energy=0.8",)),
    ("sharing", "k-means 4 bits", ("kmeans",), ("kmeans.bits=4",)),
    ("sharing", "k-means 2 bits", ("kmeans",), ("kmeans.bits=2",)),
    ("sharing", "hashing x4", ("hash",), ("hash.compression=4",)),
    ("combined", "prune 90% + int4", ("prune", "quantize"), ("prune.sparsity=0.9", "quantize.bits=4")),
    ("combined", "prune 90% + k-means 4 bits", ("prune", "kmeans"), ("prune.sparsity=0.9", "kmeans.bits=4")),
    ("combined", "channels 50% + int8", ("structured", "quantize"), ("structured.sparsity=0.5", "quantize.bits=8")),
    ("compact filters", "separable conv_1", ("separable",), ("separable.include=conv_1",)),
)

#: Distilled students: (label, student channels, student hidden size, start from the separable model?).
STUDENTS: tuple[tuple[str, tuple[int, ...], int, bool], ...] = (
    ("KD student (8,16)/32 from scratch", (8, 16), 32, False),
    ("separable conv_1 + KD", (), 0, True),
)

#: The same families on a fine-tuned ALBERT-tiny (topic classification of the embedded corpus),
#: where the embedding table is most of the model: vocabulary rows are its structured units.
TEXT_PRESET = "albert-tiny-topic"
TEXT_RECIPES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("pruning", "magnitude 50%", ("prune",), ("prune.sparsity=0.5",)),
    ("pruning", "magnitude 90%", ("prune",), ("prune.sparsity=0.9",)),
    ("pruning", "magnitude 50% with embeddings", ("prune",), ("prune.sparsity=0.5", "prune.include=.*kernel|word")),
    ("structured", "heads + FFN 50%", ("structured",), ("structured.sparsity=0.5", "structured.groups=ffn|attention")),
    ("structured", "vocabulary 50%", ("structured",), ("structured.sparsity=0.5", "structured.groups=vocab")),
    ("quantization", "int8 per channel", ("quantize",), ("quantize.bits=8",)),
    ("quantization", "int4 per channel", ("quantize",), ("quantize.bits=4",)),
    ("sharing", "k-means 4 bits", ("kmeans",), ("kmeans.bits=4",)),
    ("combined", "vocabulary 50% + int8", ("structured", "quantize"),
     ("structured.sparsity=0.5", "structured.groups=vocab", "quantize.bits=8")),
)

QUICK = {"magnitude 90%", "channels 50%", "int8 per channel", "SVD 95% energy", "k-means 4 bits",
         "prune 90% + int4", "separable conv_1 + KD"}


def _slug(label: str) -> str:
    return (label.replace(" ", "_").replace("%", "pct").replace("+", "and").replace(":", "of")
            .replace("(", "").replace(")", "").replace(",", "_").replace("/", "_"))


def _saved(path: pathlib.Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _distilled(label: str, channels: tuple[int, ...], hidden: int, from_separable: bool, trained: Any,
               baseline: tuple, out: pathlib.Path, steps: int, quiet: bool) -> dict[str, Any]:
    """Trains a student against the frozen trained model and reports it like a compressed model.

    ``from_separable`` starts from the original with ``conv_1`` made depthwise-separable
    (same architecture, factored weights); otherwise a narrower CNN starts from scratch.
    """
    import dataclasses

    from jaxcompress.compress.artifact import Compressed
    from jaxcompress.compress.distill import DistillConfig
    from jaxcompress.compress.methods import get_method
    from jaxcompress.compress.report import compression_report
    from jaxcompress.train.checkpoint import restore_params
    from jaxcompress.workflows.compress_workdir import evaluate_params

    workdir = out / "distilled" / _slug(label)
    teacher_model = trained.config.model
    if from_separable:
        start = get_method("separable")(Compressed.from_params(trained.params), {"include": "conv_1"})
        start.save(workdir / "student_init")
        student_model, student_init = teacher_model, str(workdir / "student_init")
    else:
        student_model, student_init = dataclasses.replace(teacher_model, channels=channels, hidden_size=hidden), ""
    distill = DistillConfig(teacher=teacher_model, student=student_model, teacher_workdir=str(out / "baseline"),
                            student_init=student_init, temperature=4.0, alpha=0.5)
    config = dataclasses.replace(trained.config, name=f"survey-{_slug(label)}", task="distill", model=distill,
                                 steps=steps, eval_every=steps, checkpoint_every=steps, log_every=max(1, steps // 10))
    train(config, workdir / "run", quiet=quiet)
    student = restore_params(workdir / "run", "student")
    after = evaluate_params(dataclasses.replace(trained.config, model=student_model), student)
    return compression_report(label, Compressed.from_params(trained.params), Compressed.from_params(student),
                              metrics_before=baseline[0], metrics_after=after[0], flops_before=baseline[1],
                              flops_after=after[1], latency_before_s=baseline[2], latency_after_s=after[2])


def _keep(report: dict[str, Any], family: str, target: pathlib.Path, rows: list[dict[str, Any]],
          quiet: bool, model: str = "") -> None:
    """Saves one row's report (so a rerun skips it), adds it to ``rows`` and prints it."""
    report["family"] = family
    target.mkdir(parents=True, exist_ok=True)
    (target / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    rows.append(report)
    if not quiet:
        print(f"{family:15s} {model}{report['name']:34s} accuracy "
              f"{report['metrics_after'].get('accuracy', float('nan')):.4f}  alpha {report['alpha']:.2f}x", flush=True)


def _text_rows(out: pathlib.Path, quiet: bool) -> list[dict[str, Any]]:
    """:data:`TEXT_RECIPES` applied to ALBERT-tiny fine-tuned on the topic task (trained from scratch)."""
    base = out / "text" / "baseline"
    _train(TEXT_PRESET, base, [], quiet)
    trained = load_trained(base)
    baseline = evaluate_params(trained.config, trained.params)
    rows = []
    for family, label, methods, settings in TEXT_RECIPES:
        target = out / "text" / "compressed" / _slug(label)
        report = _saved(target / "report.json") or compress_workdir(
            base, list(methods), list(settings), target, name=label, baseline_eval=baseline, trained=trained)
        _keep(report, family, target, rows, quiet, f"{TEXT_PRESET} ")
    return rows


def _train(name: str, workdir: pathlib.Path, overrides: list[str], quiet: bool) -> dict[str, Any]:
    config = apply_overrides(get_preset(name), overrides)
    return train(config, workdir, quiet=quiet)


@register_experiment("survey", "every compression family of the survey on the digits CNN: one table")
def run(request: RunRequest) -> dict[str, Any]:
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    preset = "digits-cnn-tiny" if request.quick else "digits-cnn"
    base = out / "baseline"
    _train(preset, base, list(request.overrides), request.quiet)
    available = set(method_names())
    trained = load_trained(base)
    baseline = evaluate_params(trained.config, trained.params)  # once, for every row
    rows: list[dict[str, Any]] = []
    skipped = []

    def keep(report: dict[str, Any], family: str, target: pathlib.Path) -> None:
        _keep(report, family, target, rows, request.quiet)

    for family, label, methods, settings in RECIPES:
        if request.quick and label not in QUICK:
            continue
        missing = [m for m in methods if m not in available]
        if missing:
            skipped.append({"family": family, "name": label, "missing": missing})
            continue
        target = out / "compressed" / _slug(label)
        report = _saved(target / "report.json") or compress_workdir(
            base, list(methods), list(settings), target, name=label, baseline_eval=baseline, trained=trained)
        keep(report, family, target)

    distill_steps = trained.config.steps // 2
    for label, channels, hidden, from_separable in STUDENTS:
        if request.quick and label not in QUICK:
            continue
        target = out / "distilled" / _slug(label)
        report = _saved(target / "report.json") or _distilled(label, channels, hidden, from_separable, trained,
                                                              baseline, out, distill_steps, request.quiet)
        keep(report, "distillation", target)

    # Pruning with fine-tuning: the wrapper in the loop, gradual cubic schedule.
    finetuned = out / "gradual_prune_90"
    summary = _train(preset, finetuned, [*request.overrides, "prune.method=magnitude", "prune.sparsity=0.9",
                                         "prune.frequency=20"], request.quiet)
    target = out / "compressed" / "gradual_90"
    finetune_report = _saved(target / "report.json") or compress_workdir(
        finetuned, ["prune"], ["prune.sparsity=0.9"], target, name="gradual magnitude 90% (trained)",
        baseline_eval=baseline)
    keep(finetune_report, "pruning", target)

    table = markdown_table(rows)
    lines = [f"# Compression survey on {preset}", "",
             f"Baseline accuracy {rows[0]['metrics_before'].get('accuracy', float('nan')):.4f}, "
             f"{rows[0]['bytes']['before']:,} bytes. One row per compressed model; alpha = bytes before / after, "
             f"beta = (a - a*) / a*, delta = FLOPs (nonzero-weighted) and measured latency ratios.", "",
             table]
    text_rows = [] if request.quick else _text_rows(out, request.quiet)
    if text_rows:
        lines += ["", f"## {TEXT_PRESET}", "",
                  f"Baseline accuracy {text_rows[0]['metrics_before'].get('accuracy', float('nan')):.4f}, "
                  f"{text_rows[0]['bytes']['before']:,} bytes.", "", markdown_table(text_rows)]
    if skipped:
        lines += ["", "Not run (method not available in this build): "
                  + ", ".join(f"{s['name']} ({', '.join(s['missing'])})" for s in skipped)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_accuracy_vs_size(rows, out / "accuracy_vs_size.png", title=f"compression families on {preset}")
    results = {"preset": preset, "rows": rows, "text_preset": TEXT_PRESET, "text_rows": text_rows, "skipped": skipped, "gradual_prune_summary": summary}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results
