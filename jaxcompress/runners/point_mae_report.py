"""Tables and plots of ``jaxcompress run point-mae`` (from its results dict).

References: Romanelis et al., "ExpPoint-MAE", IEEE Access 2024 (CKA heat maps,
attention distance per layer, attention rendered on the cloud).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from jaxcompress.ssl import explain

_REGIME_TEXT = {"scratch": "from scratch", "full": "full fine-tuning", "probe": "frozen encoder (MLP head)",
                "unfreeze": "freeze, unfreeze at 80 %", "embed": "embeddings unfreeze at 80 %"}


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def report_markdown(results: dict[str, Any]) -> str:
    """The report: baselines, fine-tuning table, linear probes, pretraining losses, CKA and attention distance."""
    lines = ["# point-mae: Point-MAE vs MoCo vs scratch on point_shapes_scan", "",
             f"Seeds {results['seeds']}, {results['devices']} device(s), pretraining {results['pretrain_steps']} "
             f"steps, fine-tuning {results['finetune_steps']} steps, wall time {results['wall_time_s']} s"
             + (" (quick run)" if results["quick"] else "") + ".", "",
             "## Test accuracy (390 clouds, 13 classes; fine-tuned on 260 labelled clouds)", "",
             "| initialisation | regime | accuracy (mean ± std over seeds) |", "|---|---|---|",
             f"| baseline | majority class | {results['baselines']['majority']:.3f} |",
             f"| baseline | logistic regression on D2 distance histograms | "
             f"{results['baselines']['d2_logistic']:.3f} |"]
    for row in results["finetuning"]:
        init = "random" if row["init"] == "none" else row["init"]
        lines.append(f"| {init} | {_REGIME_TEXT.get(row['regime'], row['regime'])} | {_fmt(row['accuracy'])} |")
    lines += ["", "## Linear probe on frozen encoders (logistic regression on max+mean pooled tokens)", "",
              "| encoder | test accuracy |", "|---|---|"]
    lines += [f"| {name} | {acc:.3f} |" for name, acc in results["linear_probe"].items()]
    lines += ["", "## Pretraining", "", "| run | method | data | final loss | Chamfer-L2 | InfoNCE | seconds |",
              "|---|---|---|---|---|---|---|"]
    for name, info in results["pretraining"].items():
        final = info["final"]
        first = info["curve"][0] if info["curve"] else {}
        lines.append(f"| {name} | {info['method']} | {info['percent']} % | {final.get('loss', float('nan')):.4f} "
                     f"(first log {first.get('loss', float('nan')):.4f}) | "
                     f"{final.get('chamfer', float('nan')):.4f} | {final.get('infonce', float('nan')):.4f} | "
                     f"{info['seconds']:.0f} |")
    lines += ["", "## Mean attention distance per layer (test clouds, mean over heads; unit-sphere units)", "",
              "| encoder | " + " | ".join(f"layer {i + 1}" for i in range(len(next(iter(
                  results["attention_distance"].values()))))) + " |",
              "|---" * (1 + len(next(iter(results["attention_distance"].values())))) + "|"]
    for name, dist in results["attention_distance"].items():
        lines.append(f"| {name} | " + " | ".join(f"{np.mean(d):.3f}" for d in dist) + " |")
    lines += ["", "## Linear CKA, same layer (diagonal of the layer-by-layer matrix)", "",
              "| comparison | " + " | ".join(f"layer {i + 1}" for i in range(results["model"]["depth"])) + " |",
              "|---" * (1 + results["model"]["depth"]) + "|"]
    for name, mat in results["cka"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in np.diag(np.asarray(mat))) + " |")
    return "\n".join(lines) + "\n"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(results: dict[str, Any], path: pathlib.Path) -> None:
    """Bars of fine-tuned test accuracy with the baselines as horizontal lines."""
    plt = _plt()
    rows = results["finetuning"]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows) + 2), 4))
    names = [f"{'random' if r['init'] == 'none' else r['init']}\n{r['regime']}" for r in rows]
    ax.bar(range(len(rows)), [r["accuracy"]["mean"] for r in rows], yerr=[r["accuracy"]["std"] for r in rows],
           capsize=3, color="tab:blue")
    ax.axhline(results["baselines"]["d2_logistic"], color="tab:red", ls="--", label="D2 histogram + logistic reg.")
    ax.axhline(results["baselines"]["majority"], color="grey", ls=":", label="majority class")
    ax.set_xticks(range(len(rows)), names, fontsize=7)
    ax.set(ylabel="test accuracy", ylim=(0, 1), title="point_shapes_scan: fine-tuning (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cka(results: dict[str, Any], path: pathlib.Path) -> None:
    """One heat map per CKA comparison (rows: first model's layers, columns: second's)."""
    plt = _plt()
    items = list(results["cka"].items())
    cols = min(4, len(items))
    rows = int(np.ceil(len(items) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, mat) in zip(axes.flat, items):
        im = ax.imshow(np.asarray(mat), vmin=0, vmax=1, cmap="viridis", origin="lower")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("layer (second)", fontsize=7)
        ax.set_ylabel("layer (first)", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_attention(results: dict[str, Any], mae_test: dict[str, np.ndarray], cloud: np.ndarray, cfg: Any,
                   path: pathlib.Path) -> None:
    """Left: mean attention distance per layer and encoder. Right: one patch's last-layer attention on a cloud."""
    import jax.numpy as jnp

    from jaxcompress.ops import farthest_point_sampling, knn_indices

    plt = _plt()
    fig = plt.figure(figsize=(11, 4))
    ax = fig.add_subplot(1, 2, 1)
    for name, dist in results["attention_distance"].items():
        ax.plot(range(1, len(dist) + 1), [np.mean(d) for d in dist], marker="o", label=name)
    ax.set(xlabel="layer", ylabel="mean attention distance", title="how far heads look (test clouds)")
    ax.legend(fontsize=8)
    centers_idx = farthest_point_sampling(jnp.asarray(cloud), cfg.num_groups)
    patch_idx = knn_indices(jnp.asarray(cloud), jnp.asarray(cloud)[centers_idx], cfg.group_size)
    attn = mae_test["attention"][-1, 0].mean(0)  # last layer, first cloud, mean over heads: [G, G]
    weights = np.asarray(explain.attention_to_points(jnp.asarray(attn[0]), patch_idx, cloud.shape[0]))
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    ax3.scatter(cloud[:, 0], cloud[:, 1], cloud[:, 2], c=weights, cmap="magma", s=4)
    q = np.asarray(mae_test["centers"][0, 0])
    ax3.scatter([q[0]], [q[1]], [q[2]], c="cyan", s=60, marker="*")
    ax3.set_title("last-layer attention of the starred patch (mean over heads)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
