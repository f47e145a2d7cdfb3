"""The compression report: sizes, FLOPs, latency and accuracy before and after.

Metrics follow the survey: with ``a``/``a*`` the storage (or parameter count)
of the original and compressed model and ``s``/``s*`` their running times (or
FLOPs),

* compression rate ``alpha = a / a*``,
* index space saving ``beta = (a - a*) / a*``,
* speed-up ``delta = s / s*``.

Bytes are itemised by storage format (dense, bitmask, int8, int4, codebook...),
so a 4x from int8 and a 10x from sparsity are told apart.

References:
  Cheng et al., "A Survey of Model Compression and Acceleration for Deep
  Neural Networks", arXiv 1710.09282, sec. "Evaluation metrics".
"""

from __future__ import annotations

import math
import pathlib
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from jaxcompress.compress.artifact import Compressed


def measure_latency(fn: Callable[..., Any], *args: Any, repeats: int = 30) -> float:
    """Median wall time in seconds of ``fn(*args)`` after compilation and a warm-up."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _counts(artifact: Compressed) -> dict[str, int]:
    leaves = list(artifact.storage.values())
    matrices = [leaf for leaf in leaves if len(leaf.shape) >= 2]
    return {"params": sum(leaf.size for leaf in leaves), "nonzeros": sum(leaf.nonzeros for leaf in leaves),
            "matrix_params": sum(leaf.size for leaf in matrices),
            "matrix_nonzeros": sum(leaf.nonzeros for leaf in matrices)}


def bytes_by_format(artifact: Compressed) -> dict[str, int]:
    out: dict[str, int] = {}
    for leaf in artifact.storage.values():
        out[leaf.format] = out.get(leaf.format, 0) + leaf.total_bytes
    return dict(sorted(out.items()))


def effective_flops(dense_flops: float, artifact: Compressed) -> float:
    """FLOPs if zero weights were skipped: dense FLOPs scaled by the matrices' density.

    Exact for multi-layer perceptrons (every weight is used once per example);
    an estimate for convolutions and attention, whose weights are reused unevenly.
    """
    counts = _counts(artifact)
    return dense_flops * counts["matrix_nonzeros"] / max(counts["matrix_params"], 1)


def compression_report(name: str, baseline: Compressed, compressed: Compressed, *,
                       metrics_before: dict[str, float], metrics_after: dict[str, float],
                       flops_before: float, flops_after: float,
                       latency_before_s: float, latency_after_s: float,
                       device: str | None = None) -> dict[str, Any]:
    """One model's report as a JSON-friendly dict (see the module docstring for the metrics)."""
    before, after = _counts(baseline), _counts(compressed)
    a, a_star = baseline.total_bytes, compressed.total_bytes
    effective_after = effective_flops(flops_after, compressed)
    return {
        "name": name,
        "history": compressed.history,
        "model_changes": compressed.model_changes,
        "params": {"before": before["params"], "after": after["params"]},
        "nonzeros": {"before": before["nonzeros"], "after": after["nonzeros"]},
        "bytes": {"before": a, "after": a_star, "after_by_format": bytes_by_format(compressed)},
        "flops": {"before": flops_before, "after_dense": flops_after, "after_effective": effective_after},
        "latency_s": {"before": latency_before_s, "after": latency_after_s,
                      "device": device or str(jax.devices()[0].device_kind)},
        "alpha": a / max(a_star, 1),
        "alpha_params": before["params"] / max(after["nonzeros"], 1),
        "beta": (a - a_star) / max(a_star, 1),
        "delta_latency": latency_before_s / max(latency_after_s, 1e-12),
        "delta_flops": flops_before / max(effective_after, 1e-12),
        "metrics_before": metrics_before,
        "metrics_after": metrics_after,
        "accuracy_change": _accuracy_change(metrics_before, metrics_after),
    }


def _accuracy_change(before: dict[str, float], after: dict[str, float]) -> float | None:
    if "accuracy" in before and "accuracy" in after:
        return after["accuracy"] - before["accuracy"]
    return None


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GiB"


def markdown_table(reports: Sequence[dict[str, Any]]) -> str:
    """One row per report: accuracy, bytes, alpha, beta, FLOP and latency speed-ups."""
    lines = ["| model | accuracy | change | bytes | alpha | beta | nonzeros | delta (FLOPs) | delta (latency) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        accuracy = r["metrics_after"].get("accuracy", math.nan)
        change = r["accuracy_change"]
        lines.append(
            f"| {r['name']} | {accuracy:.4f} | {'' if change is None else f'{change:+.4f}'} | "
            f"{_size(r['bytes']['after'])} | {r['alpha']:.2f}x | {r['beta']:.2f} | "
            f"{r['nonzeros']['after']:,} | {r['delta_flops']:.2f}x | {r['delta_latency']:.2f}x |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_size(reports: Sequence[dict[str, Any]], path: pathlib.Path,
                          title: str = "accuracy vs size") -> pathlib.Path:
    """Scatter of accuracy against stored bytes (log scale), one labelled point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    baseline = reports[0]
    ax.scatter([baseline["bytes"]["before"]], [baseline["metrics_before"].get("accuracy", np.nan)],
               marker="*", s=160, color="black", label="uncompressed", zorder=3)
    for r in reports:
        ax.scatter([r["bytes"]["after"]], [r["metrics_after"].get("accuracy", np.nan)], s=30)
        ax.annotate(r["name"], (r["bytes"]["after"], r["metrics_after"].get("accuracy", np.nan)),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="bytes as stored (log)", ylabel="accuracy", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
