"""Compress a trained work directory: restore, apply methods in order, evaluate, report.

This is what ``jaxcompress compress --workdir DIR --method prune --method quantize``
runs. The trained model is restored from its newest checkpoint with the same
config it was trained with (``DIR/config.json``); each method maps the
:class:`Compressed` artifact to a new one; the result is evaluated on the
config's evaluation split, timed, reported and saved in compact form.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxcompress.tasks  # noqa: F401  (a work directory names its task; the built-in ones must be registered)
import jaxcompress.workflows.cap  # noqa: F401  (registers the ``cap`` method, which trains)
import jaxcompress.workflows.mixed_vocab  # noqa: F401  (registers the ``mixed-vocab`` method, which trains)
from jaxcompress import data as data_lib
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.factored import factored_layers
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.report import compression_report, markdown_table, measure_latency, plot_accuracy_vs_size
from jaxcompress.compress.structured import apply_model_changes
from jaxcompress.configlib import to_dict
from jaxcompress.errors import CheckpointError, ConfigError
from jaxcompress.train.build import make_task
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import Config, config_from_dict
from jaxcompress.train.loop import Steps, evaluate
from jaxcompress.train.sharding import build_mesh
from jaxcompress.train.task import Task


@dataclasses.dataclass
class TrainedModel:
    """A model restored from a training work directory."""

    config: Config
    task: Task
    params: Any
    steps: Steps


def _eval_steps(config: Config, task: Task, example: dict[str, np.ndarray]) -> Steps:
    """Jitted evaluation on the config's mesh (no optimiser: nothing is trained here)."""
    return Steps(task, optax.identity(), lambda step: 0.0, example, build_mesh(config.mesh),
                 config.logical_rules, config.seed)


def load_trained(workdir: str | pathlib.Path) -> TrainedModel:
    """Restores the newest checkpoint of a ``jaxcompress train`` work directory."""
    workdir = pathlib.Path(workdir)
    try:
        config = config_from_dict(json.loads((workdir / "config.json").read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{workdir} is not a training work directory (no config.json); "
                              f"train first with `jaxcompress train CONFIG --workdir {workdir}`") from None
    info = data_lib.dataset_info(config.data.name, config.data.data_dir or None)
    task = make_task(config, info)
    source = data_lib.load_split(config.data.name, config.data.train_split, config.data.data_dir or None)
    example = task.prepare_batch(source.read(np.arange(1)))
    return TrainedModel(config, task, restore_params(workdir, field="--workdir"), _eval_steps(config, task, example))


def parse_method_options(methods: list[str], settings: list[str]) -> dict[str, dict[str, Any]]:
    """``["prune.sparsity=0.9", ...]`` -> ``{"prune": {"sparsity": 0.9}}`` with literal values."""
    options: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for item in settings:
        key, sep, raw = item.partition("=")
        method, dot, option = key.strip().partition(".")
        if not sep or not dot or not option:
            raise ConfigError(f"--set {item!r} must look like METHOD.OPTION=VALUE (e.g. prune.sparsity=0.9)")
        if method not in options:
            raise ConfigError(f"--set {item!r} names method {method!r}, which is not among --method "
                              f"{', '.join(methods)}")
        options[method][option] = _literal(raw.strip())
    return options


def _literal(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


@dataclasses.dataclass
class _Evaluator:
    """What evaluating one model config needs, built (and compiled) once per config."""

    task: Task
    steps: Steps
    eval_source: Any
    forward: Any
    flops_inputs: tuple
    flops: dict[int, float] = dataclasses.field(default_factory=dict)  # by params structure: compile once


#: Evaluators by config (as JSON): a sweep evaluating many compressed versions of one
#: model reuses the compiled eval and forward programs instead of recompiling per version.
_EVALUATORS: dict[str, _Evaluator] = {}
_MAX_EVALUATORS = 4


def _evaluator(config: Config) -> _Evaluator:
    key = json.dumps(to_dict(config), sort_keys=True, default=str)
    if key not in _EVALUATORS:
        info = data_lib.dataset_info(config.data.name, config.data.data_dir or None)
        task = make_task(config, info)
        eval_source = data_lib.load_split(config.data.name, config.data.eval_split or config.data.train_split,
                                          config.data.data_dir or None)
        example = task.prepare_batch(eval_source.read(np.arange(1)))
        fn, inputs = task.forward_for_flops()
        if len(_EVALUATORS) >= _MAX_EVALUATORS:
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        _EVALUATORS[key] = _Evaluator(task, _eval_steps(config, task, example), eval_source,
                                      jax.jit(fn), inputs)
    return _EVALUATORS[key]


def evaluate_params(config: Config, params: Any,
                    latency_repeats: int = 30) -> tuple[dict[str, float], float, float]:
    """Evaluation metrics, forward FLOPs per example and median batch latency of ``params``.

    ``config`` must already describe the model ``params`` belong to (after any
    structural changes). ``latency_repeats`` timed forward passes give the latency.
    """
    ev = _evaluator(config)
    device_params = ev.steps.place_params(params)
    # Factored (low-rank, separable) layers compute with their factors; traced under this
    # context, the compiled programs keep doing so.
    with factored_layers():
        metrics = evaluate(ev.steps, ev.task, device_params, ev.eval_source, config.data.eval_batch_size)
        # XLA counts dense FLOPs whatever the values, so one count per params structure.
        structure = hash(jax.tree.structure(device_params))
        if structure not in ev.flops:
            cost = ev.forward.lower(device_params, *ev.flops_inputs).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            ev.flops[structure] = float(cost.get("flops", float("nan")))
        batch = jax.tree.map(lambda x: jnp.zeros((config.data.eval_batch_size,) + x.shape[1:], x.dtype),
                             ev.flops_inputs)
        latency = measure_latency(ev.forward, device_params, *batch, repeats=latency_repeats)
    return metrics, ev.flops[structure], latency


def compress_workdir(workdir: str | pathlib.Path, methods: list[str], settings: list[str],
                     out: str | pathlib.Path | None = None, name: str | None = None,
                     baseline_eval: tuple[dict[str, float], float, float] | None = None,
                     trained: TrainedModel | None = None, latency_repeats: int = 30) -> dict[str, Any]:
    """Applies ``methods`` in order to a trained model and writes the report and the compact model.

    Writes ``OUT/report.json``, ``OUT/report.md``, ``OUT/accuracy_vs_size.png`` and
    ``OUT/model/`` (compact form). ``OUT`` defaults to ``WORKDIR/compressed/<methods>``.
    ``baseline_eval`` is the uncompressed model's ``evaluate_params`` result and
    ``trained`` the restored work directory, when a sweep over many methods has them already;
    a sweep that does not report latency can time fewer ``latency_repeats``.
    """
    if not methods:
        raise ConfigError("compress needs at least one --method")
    options = parse_method_options(methods, settings)
    steps_fns = [get_method(m) for m in methods]  # unknown names fail before any work
    trained = trained or load_trained(workdir)
    name = name or "+".join(methods)
    out = pathlib.Path(out) if out else pathlib.Path(workdir) / "compressed" / name
    out.mkdir(parents=True, exist_ok=True)

    uncompressed = Compressed.from_params(trained.params)
    artifact = uncompressed
    for method, fn in zip(methods, steps_fns):
        extra = {"model_config": apply_model_changes(trained.config, artifact.model_changes).model} \
            if method == "structured" else {}
        if method in ("cap", "mixed-vocab"):  # they train: the run they start from and a directory to train in
            extra = {"train_config": trained.config, "workdir": str(workdir), "train_dir": str(out / "train")}
        artifact = fn(artifact, {**options[method], **extra})

    before = baseline_eval or evaluate_params(trained.config, uncompressed.params, latency_repeats)
    after = evaluate_params(apply_model_changes(trained.config, artifact.model_changes), artifact.params,
                            latency_repeats)
    report = compression_report(name, uncompressed, artifact, metrics_before=before[0], metrics_after=after[0],
                                flops_before=before[1], flops_after=after[1],
                                latency_before_s=before[2], latency_after_s=after[2])
    artifact.save(out / "model")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    measured = [f"- {h['method']}: measured sparsity {h['measured_sparsity']:.4f} of the {h['pruned_weights']:,} "
                f"weights it prunes (target {h['sparsity']})" for h in artifact.history if "measured_sparsity" in h]
    measured += [f"- {h['method']}: measured fraction of units removed {h['measured_unit_sparsity']} (target "
                 f"{h['sparsity']})" for h in artifact.history if "measured_unit_sparsity" in h]
    (out / "report.md").write_text(f"# Compression report: {name}\n\n" + markdown_table([report])
                                   + ("\n" + "\n".join(measured) + "\n" if measured else ""))
    plot_accuracy_vs_size([report], out / "accuracy_vs_size.png", title=f"{trained.config.name}: {name}")
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
