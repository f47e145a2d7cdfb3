"""Plots people would rather look at than read."""

from __future__ import annotations

import pathlib

from jaxcompress.train.metrics import read_metrics


def plot_training_curves(metrics_path: pathlib.Path, out_path: pathlib.Path) -> pathlib.Path:
    """Training loss and evaluation metrics against step, from ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics_path.parent, "train"), read_metrics(metrics_path.parent, "eval")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    if evals and "loss" in evals[0]:
        left.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", label="eval")
    left.set(xlabel="step", ylabel="loss", title="loss")
    left.legend()
    for name in ("accuracy",):
        if train and name in train[0]:
            right.plot([r["step"] for r in train], [r[name] for r in train], label=f"train {name}")
        if evals and name in evals[0]:
            right.plot([r["step"] for r in evals], [r[name] for r in evals], "o-", label=f"eval {name}")
    right.set(xlabel="step", title="accuracy")
    right.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
