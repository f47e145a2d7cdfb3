"""``jaxcompress run survey``: every compression family on one small model, one table.

Trains the digits CNN (and, for fine-tuned pruning, a second run with the
pruning wrapper in the loop), then applies each family of the survey through
``jaxcompress compress``'s pipeline: unstructured and N:M pruning, structured
channel pruning, quantization, binary/ternary weights, low-rank factorization,
k-means weight sharing, the hashing trick, and combinations (prune then
quantize: Deep Compression's recipe). Writes ``results.json``, ``report.md``
(accuracy vs compression rate per family) and ``accuracy_vs_size.png``.

References:
  Cheng et al., "A Survey of Model Compression and Acceleration for Deep
  Neural Networks", arXiv 1710.09282.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from jaxcompress.compress.methods import method_names
from jaxcompress.compress.pipeline import compress_workdir
from jaxcompress.compress.report import markdown_table, plot_accuracy_vs_size
from jaxcompress.config import apply_overrides, get_preset
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.train import train

# (family, label, methods in order, --set options)
RECIPES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("pruning", "magnitude 50%", ("prune",), ("prune.sparsity=0.5",)),
    ("pruning", "magnitude 80%", ("prune",), ("prune.sparsity=0.8",)),
    ("pruning", "magnitude 90%", ("prune",), ("prune.sparsity=0.9",)),
    ("pruning", "global magnitude 90%", ("prune",), ("prune.sparsity=0.9", "prune.scope=global")),
    ("pruning", "2:4", ("prune",), ("prune.n=2", "prune.m=4")),
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
    ("sharing", "hashing x4", ("hash",), ("hash.factor=4",)),
    ("combined", "prune 90% + int4", ("prune", "quantize"), ("prune.sparsity=0.9", "quantize.bits=4")),
    ("combined", "prune 90% + k-means 4 bits", ("prune", "kmeans"), ("prune.sparsity=0.9", "kmeans.bits=4")),
    ("combined", "channels 50% + int8", ("structured", "quantize"), ("structured.sparsity=0.5", "quantize.bits=8")),
)

QUICK = {"magnitude 90%", "channels 50%", "int8 per channel", "SVD 95% energy", "k-means 4 bits",
         "prune 90% + int4"}


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
    rows, skipped = [], []
    for family, label, methods, settings in RECIPES:
        if request.quick and label not in QUICK:
            continue
        missing = [m for m in methods if m not in available]
        if missing:
            skipped.append({"family": family, "name": label, "missing": missing})
            continue
        slug = label.replace(" ", "_").replace("%", "pct").replace("+", "and").replace(":", "of")
        report = compress_workdir(base, list(methods), list(settings), out / "compressed" / slug, name=label)
        report["family"] = family
        rows.append(report)
        if not request.quiet:
            print(f"{family:13s} {label:28s} accuracy {report['metrics_after'].get('accuracy', float('nan')):.4f}"
                  f"  alpha {report['alpha']:.2f}x", flush=True)

    # Pruning with fine-tuning: the wrapper in the loop, gradual cubic schedule.
    finetuned = out / "gradual_prune_90"
    summary = _train(preset, finetuned, [*request.overrides, "prune.method=magnitude", "prune.sparsity=0.9",
                                         "prune.frequency=20"], request.quiet)
    finetune_report = compress_workdir(finetuned, ["prune"], ["prune.sparsity=0.9"],
                                       out / "compressed" / "gradual_90", name="gradual magnitude 90% (trained)")
    finetune_report["family"] = "pruning"
    rows.append(finetune_report)

    table = markdown_table(rows)
    lines = [f"# Compression survey on {preset}", "",
             f"Baseline accuracy {rows[0]['metrics_before'].get('accuracy', float('nan')):.4f}, "
             f"{rows[0]['bytes']['before']:,} bytes. One row per compressed model; alpha = bytes before / after, "
             f"beta = (a - a*) / a*, delta = FLOPs (nonzero-weighted) and measured latency ratios.", "",
             table]
    if skipped:
        lines += ["", "Not run (method not available in this build): "
                  + ", ".join(f"{s['name']} ({', '.join(s['missing'])})" for s in skipped)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_accuracy_vs_size(rows, out / "accuracy_vs_size.png", title=f"compression families on {preset}")
    results = {"preset": preset, "rows": rows, "skipped": skipped, "gradual_prune_summary": summary}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results
