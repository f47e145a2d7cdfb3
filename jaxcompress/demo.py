"""``jaxcompress demo``: the main job on the embedded default data.

Until the train-large-then-compress workflow lands, the demo trains the MLP
classifier on the embedded handwritten digits through the full runtime
(sharded jitted steps, checkpoints, metrics, summary), plots its curves and
says plainly what it did.
"""

from __future__ import annotations

import json
import pathlib

from jaxcompress.config import get_preset
from jaxcompress.plots import plot_training_curves
from jaxcompress.train import train


def run_demo(out: str, *, quick: bool = False, quiet: bool = False) -> dict:
    """Trains, plots and prints a short account of the run. Resumes if interrupted."""
    config = get_preset("digits-mlp-tiny" if quick else "digits-mlp")
    workdir = pathlib.Path(out).expanduser().absolute()
    summary = train(config, workdir, quiet=quiet)
    plot = plot_training_curves(workdir / "metrics.jsonl", workdir / "curves.png")
    accuracy = summary["eval_metrics"].get("accuracy", float("nan"))
    print(f"Trained an MLP classifier ({summary['num_params']:,} parameters) on the embedded digits "
          f"dataset (scikit-learn's 8x8 handwritten digits) for {summary['final_step']} steps on "
          f"{summary['num_devices']} device(s) in {summary['wall_time_s']:.1f} s.")
    print(f"Validation accuracy {accuracy:.3f}; loss curves in {plot}; "
          f"checkpoints, metrics and summary.json in {workdir}.")
    print("The train-large-then-compress demo will replace this job once the compression toolkit lands.")
    (workdir / "demo.json").write_text(json.dumps({"summary": summary, "plot": str(plot)}, indent=2) + "\n")
    return summary
