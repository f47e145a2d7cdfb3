"""Contrastive pruning of a fine-tuned encoder's work directory: the ``cap`` compression method.

``jaxcompress compress --workdir DIR --method cap --set cap.pruner=movement --set cap.sparsity=0.9``
takes the fine-tuned model in ``DIR`` as the teacher (FiC bank, KD targets), starts the
student from the pre-trained encoder ``DIR`` was fine-tuned from (its ``text.init_from``;
``cap.init=teacher`` starts from the fine-tuned model instead), and fine-prunes it with the
``cap`` task in the one training loop, in ``OUT/train``. The pruned student (sparse leaves
stored as bitmasks) is the method's output, so later methods (``--method quantize``) compose.

Options (``cap.KEY``): pruner (magnitude|movement|soft_movement), sparsity, steps,
learning_rate, warmup (the schedule's ``w``: pruning ramps from step 2w to T - 3w), any
:class:`~jaxcompress.compress.cap.CapConfig` field (temperature, w_unsup, w_sup, w_ce, w_kd,
kd_temperature, extra_examples, normalization, use_pre, use_fine, use_snap, snapshot_slots,
refresh_every, encode_dropout, bank_dtype, max_bank_mb), soft_l1 and threshold (soft movement), seed.

``cap.pruner=structured`` removes attention heads and FFN neurons instead (CAP-f, :func:`structured_cap`):
``cap.sparsity`` of each unit group in ``cap.prune_steps`` increments, ``cap.retrain_steps`` of CAP
training after each, ``cap.groups`` (regex over unit-group names); the result is the smaller model
(surgery), not a masked one.

References:
  Xu et al., "From Dense to Sparse: Contrastive Pruning for Better Pre-trained Language
  Model Compression", AAAI 2022.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from jaxcompress.compress import options as O
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.cap import CapConfig, reference_schedule
from jaxcompress.compress.masks import sparsity_summary
from jaxcompress.compress.methods import FAMILIES, register_method
from jaxcompress.compress.paths import map_with_path
from jaxcompress.compress.pruning import Pruner, encode_sparse
from jaxcompress.configlib import copy_config
from jaxcompress.errors import ConfigError
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import Config

#: The weights CAP prunes: every dense kernel of the transformer (Q, K, V, attention output, FFN in/out);
#: embeddings, pooler and classifier stay dense, as in the reference.
ENCODER_KERNELS = "encoder/transformer/.*/kernel"
PRUNERS = ("magnitude", "movement", "soft_movement")
#: ``cap.pruner`` values of the compress method: the unstructured pruners and structured head/neuron removal.
METHOD_PRUNERS = PRUNERS + ("structured",)
_CAP_FIELDS = {f.name for f in dataclasses.fields(CapConfig)} - {"encoder", "base_task", "teacher_workdir",
                                                                   "student_init"}
FAMILIES["cap"] = ("pruning: contrastive pruning (CAP) of a fine-tuned encoder, banks of the pre-trained, "
                   "fine-tuned and intermediate models around a magnitude/movement/soft-movement pruner")


def cap_config(finetuned: Config, teacher_workdir: str, *, pruner: str = "movement", sparsity: float = 0.9,
               steps: int | None = None, learning_rate: float | None = None, warmup: int | None = None,
               student_init: str = "pretrained", seed: int = 0, soft_l1: float = 0.0, threshold: float = 0.0,
               contrastive: bool = True, **cap_options: Any) -> Config:
    """The ``cap`` training config that fine-prunes the model of ``finetuned`` (a teacher's config).

    ``contrastive=False`` switches every bank off: the same run with CE + KD only (the plain
    fine-pruning baseline). ``warmup`` defaults to ``steps // 10``: the pruning ramp then runs
    from 20% to 70% of training (the reference's 2w and T - 3w).
    """
    if pruner not in PRUNERS:
        raise ConfigError(f"cap.pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}")
    if finetuned.task not in ("text_classification", "sentence_pair"):
        raise ConfigError(f"cap needs a fine-tuned text_classification or sentence_pair work directory; "
                          f"this one trained task {finetuned.task!r}")
    unknown = set(cap_options) - _CAP_FIELDS
    if unknown:
        raise ConfigError(f"unknown cap option {sorted(unknown)[0]!r}; allowed: "
                          f"{', '.join(sorted(_CAP_FIELDS | {'pruner', 'sparsity', 'steps', 'learning_rate', 'warmup', 'init', 'seed', 'soft_l1', 'threshold'}))}")
    steps = steps or finetuned.steps
    warmup = steps // 10 if warmup is None else warmup
    start, end = reference_schedule(steps, warmup)
    config = copy_config(finetuned)
    config.name = f"cap-{pruner}-{sparsity:g}"
    config.task = "cap"
    banks = {} if contrastive else {"use_pre": False, "use_fine": False, "use_snap": False}
    config.model = CapConfig(encoder=finetuned.model, base_task=finetuned.task, teacher_workdir=str(teacher_workdir),
                             student_init=student_init, **{**cap_options, **banks})
    config.prune = Pruner(method=pruner, sparsity=sparsity, schedule="gradual", start_step=start, end_step=end,
                          frequency=1, include=f"^student/{ENCODER_KERNELS}", soft_l1=soft_l1, threshold=threshold)
    config.steps, config.seed = steps, seed
    config.optim = copy_config(finetuned.optim)
    config.optim.warmup_steps = warmup
    if learning_rate is not None:
        config.optim.learning_rate = learning_rate
    config.eval_every, config.checkpoint_every = 0, 0
    return config


def train_cap(config: Config, workdir: str | pathlib.Path, quiet: bool = True) -> tuple[Any, dict[str, Any]]:
    """Runs (or resumes) a ``cap`` config; returns the pruned student's params (NumPy) and the summary."""
    from jaxcompress.train.loop import train

    summary = train(config, workdir, quiet=quiet)
    return restore_params(workdir, "student", field="cap training directory"), summary


def measured_sparsity(student: Any) -> dict[str, Any]:
    """Zero fractions of the pruned leaves (the encoder's kernels), counted from the weights."""
    import re

    pattern = re.compile(ENCODER_KERNELS)
    masks = map_with_path(lambda path, leaf: True if pattern.search(path) else None, student)
    return sparsity_summary(student, masks)


def structured_cap(finetuned: Config, teacher_workdir: str, workdir: str | pathlib.Path, *, sparsity: float = 0.5,
                   prune_steps: int = 5, retrain_steps: int = 100, groups: str = "ffn|attention", quiet: bool = True,
                   **options: Any) -> tuple[Any, dict[str, np.ndarray], list[dict[str, Any]]]:
    """Structured CAP (CAP-f): remove attention heads and FFN neurons in ``prune_steps`` increments up to
    ``sparsity`` (a fraction of each unit group), retraining ``retrain_steps`` with the CAP loss after each.

    Each increment is its own ``cap`` run (the optimiser and its schedule reset, as in the reference):
    its student starts from the previous run's, the removed units' weights are held at zero
    (``model.unit_masks_file``), and its banks continue the previous run's with the starting
    (just-pruned) student's view as a new snapshot, so the snapshot bank refreshes once per
    pruning step. Units are ranked by the L2 norm of their weights (the reference uses accumulated
    ``|dL/dmask|``), all layers of a stacked group together.

    Returns:
      ``(student params of the last run, kept unit indices by group, the runs' summaries)``.

    References:
      Xu et al., AAAI 2022 (CAP-f); Michel, Levy & Neubig, NeurIPS 2019 (pruning heads step by step).
    """
    import re

    from jaxcompress.compress.structured import choose_units, importance, mask_units
    from jaxcompress.compress.unit_groups import unit_groups

    workdir = pathlib.Path(workdir)
    student = restore_params(teacher_workdir, field="teacher work directory")
    selected = [g for g in unit_groups(finetuned.model, student) if re.search(groups, g.name)]
    if not selected:
        raise ConfigError(f"cap.groups {groups!r} matches no unit group of the model")
    summaries, previous, keep = [], None, {}
    for step in range(1, prune_steps + 1):
        fraction = sparsity * step / prune_steps
        keep = choose_units(importance(student, selected), fraction)
        masks: dict[str, np.ndarray] = {}
        ones = map_with_path(lambda path, leaf: np.ones(np.shape(leaf), np.float32), student)
        map_with_path(lambda path, leaf: masks.__setitem__(path, np.asarray(leaf)) if np.any(np.asarray(leaf) == 0)
                      else None, mask_units(ones, selected, keep))
        run_dir = workdir / f"step{step}"
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez(run_dir / "unit_masks.npz", **masks)
        config = cap_config(finetuned, teacher_workdir, pruner="magnitude", sparsity=0.0, steps=retrain_steps,
                            student_init="teacher", snapshot_slots=prune_steps, refresh_every=retrain_steps + 1,
                            unit_masks_file=str(run_dir / "unit_masks.npz"), snapshot_at_start=True,
                            student_from=str(previous) if previous else "", banks_from=str(previous) if previous else "",
                            **options)
        config.prune = Pruner()  # the unit masks do the pruning
        config.name = f"cap-structured-{fraction:g}"
        student, summary = train_cap(config, run_dir, quiet=quiet)
        summaries.append({"fraction": fraction, "eval_metrics": summary.get("eval_metrics", {}),
                          "wall_time_s": summary["wall_time_s"]})
        previous = run_dir
    return student, keep, summaries


@register_method("cap")
def cap_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Contrastive fine-pruning of the work directory's model (the caller supplies ``train_config``,
    ``workdir`` and ``train_dir``); must be the first method."""
    options = dict(options)
    finetuned, workdir, train_dir = (options.pop(k, None) for k in ("train_config", "workdir", "train_dir"))
    if finetuned is None or workdir is None:
        raise ConfigError("cap trains from a fine-tuned work directory: use `jaxcompress compress --workdir DIR "
                          "--method cap`")
    if artifact.history:
        raise ConfigError("cap must be the first --method: it fine-prunes the work directory's trained model")
    if options.get("pruner") == "structured":
        return _structured_step(artifact, options, finetuned, str(workdir), train_dir)
    kwargs = {
        "pruner": O.choice("cap", options, "pruner", "movement", METHOD_PRUNERS),
        "sparsity": O.number("cap", options, "sparsity", 0.9, 0.0, 1.0, high_open=True),
        "steps": O.integer("cap", options, "steps", None, 1),
        "learning_rate": O.number("cap", options, "learning_rate", None, 0.0, low_open=True),
        "warmup": O.integer("cap", options, "warmup", None, 0),
        "student_init": O.choice("cap", options, "init", "pretrained", ("pretrained", "teacher")),
        "seed": O.integer("cap", options, "seed", 0, 0),
        "soft_l1": O.number("cap", options, "soft_l1", 0.0, 0.0),
        "threshold": O.number("cap", options, "threshold", 0.0),
    }
    named = {"pruner", "sparsity", "steps", "learning_rate", "warmup", "init", "seed", "soft_l1", "threshold"}
    extra = {k: v for k, v in options.items() if k not in named}
    config = cap_config(finetuned, str(workdir), **kwargs, **extra)
    if kwargs["student_init"] == "pretrained" and not finetuned.text.init_from:
        raise ConfigError(f"{workdir} was trained from scratch (no text.init_from): set cap.init=teacher to "
                          f"fine-prune the fine-tuned model itself")
    student, summary = train_cap(config, train_dir or pathlib.Path(workdir) / "compressed" / "cap-train")
    summary_of_sparsity = measured_sparsity(student)
    measured, pattern_paths = summary_of_sparsity["global"], set(summary_of_sparsity["layers"])
    updates: dict[str, Any] = {}
    map_with_path(lambda path, leaf: updates.__setitem__(path, encode_sparse(path, np.asarray(leaf)))
                  if path in pattern_paths else None, student)
    step = {"method": "cap", "pruner": kwargs["pruner"], "sparsity": kwargs["sparsity"],
            "measured_sparsity": measured["sparsity"], "pruned_weights": measured["size"],
            "steps": config.steps, "banks": list(config.model.banks),
            "train_eval": summary.get("eval_metrics", {})}
    return artifact.with_leaves(step, student, updates)


def _structured_step(artifact: Compressed, options: dict[str, Any], finetuned: Config, workdir: str,
                     train_dir: str | None) -> Compressed:
    """``cap.pruner=structured``: :func:`structured_cap`, then surgery to the smaller model."""
    from jaxcompress.compress.structured import shrink
    from jaxcompress.compress.unit_groups import unit_groups

    options = {k: v for k, v in options.items() if k != "pruner"}
    sparsity = O.number("cap", options, "sparsity", 0.5, 0.0, 1.0, high_open=True)
    prune_steps = O.integer("cap", options, "prune_steps", 5, 1)
    retrain_steps = O.integer("cap", options, "retrain_steps", 100, 20)
    groups = options.pop("groups", "ffn|attention")
    extra = {k: v for k, v in options.items() if k not in ("sparsity", "prune_steps", "retrain_steps")}
    student, keep, summaries = structured_cap(finetuned, workdir, train_dir or pathlib.Path(workdir) / "cap-train",
                                              sparsity=sparsity, prune_steps=prune_steps, retrain_steps=retrain_steps,
                                              groups=groups, **extra)
    selected = [g for g in unit_groups(finetuned.model, student) if g.name in keep]
    params, changes = shrink(student, selected, keep)
    touched = {member[0] for g in selected for member in g.members}
    updates: dict[str, Any] = {}
    map_with_path(lambda path, leaf: updates.__setitem__(path, encode_sparse(path, np.asarray(leaf)))
                  if path in touched else None, params)
    removed = {name: 1.0 - len(index) / g.num_units for g in selected for name, index in keep.items()
               if g.name == name}
    step = {"method": "cap", "pruner": "structured", "sparsity": sparsity, "measured_unit_sparsity": removed,
            "prune_steps": prune_steps, "retrain_steps": retrain_steps, "runs": summaries,
            "kept": {name: index.tolist() for name, index in keep.items()}}
    return artifact.with_leaves(step, params, updates, model_changes=changes)
