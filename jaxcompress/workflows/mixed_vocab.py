"""Mixed-vocabulary distillation of a fine-tuned teacher: the stages as runs, and ``compress --method mixed-vocab``.

``jaxcompress compress --workdir DIR --method mixed-vocab --set mixed-vocab.size=2x48`` takes the
fine-tuned BERT classifier in ``DIR`` as the teacher, and the MLM pretraining run it was fine-tuned
from (its ``text.init_from``) as the teacher of the two pretraining stages. It trains, each in its
own directory under ``OUT/train`` and through the one training loop:

1. ``dual`` -- stage I (``mixed_vocab_dual``): the student's embedding table and the shared
   projection learned inside the teacher on mixed-vocabulary text;
2. ``student`` -- stage II (``mixed_vocab_student``): the student alone, MLM on its own
   vocabulary + layer-wise transfer through the projection;
3. ``finetune`` -- the student fine-tuned on the teacher's task with labels and the teacher's
   logits (``text_kd``).

The method's output is the fine-tuned student classifier, with the config changes (width, depth,
vocabulary, tokenizer file) it runs with, so ``--method quantize`` composes after it.

Options (``mixed-vocab.KEY``): size (``LAYERSxWIDTH``), vocab_size, p_mix, dual_steps,
student_steps, finetune_steps, learning_rate, finetune_learning_rate, activations (bool),
weights (bool), train_teacher (bool), seed.

References:
  Zhao, Gupta, Song & Zhou, "Extremely Small BERT Models from Mixed-Vocabulary Training",
  EACL 2021 (arXiv 1909.11687).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any

from jaxcompress.compress import mixed_vocab as M
from jaxcompress.compress import options as O
from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import FAMILIES, register_method
from jaxcompress.configlib import copy_config
from jaxcompress.errors import ConfigError
from jaxcompress.nn.albert import AlbertConfig
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import Config, DataConfig, OptimConfig

FAMILIES["mixed-vocab"] = ("knowledge distillation: a student with its own small vocabulary (mixed-vocabulary dual "
                           "training, shared projections, layer-wise transfer), then task fine-tuning")
SIZE = re.compile(r"^(\d+)x(\d+)$")
#: What each variant of a student runs: (stage I, stage II, KD in fine-tuning, own vocabulary). ``logit-kd``
#: is distillation of the fine-tuned teacher's logits alone (no pretraining stage), with the teacher's vocabulary.
VARIANTS = {"scratch": (False, False, False, True), "kd": (False, True, True, False),
            "logit-kd": (False, False, True, False), "mixed": (True, True, True, True)}
#: ``mixed-vocab.KEY`` options of the compress method.
OPTIONS = ("size", "vocab_size", "p_mix", "dual_steps", "student_steps", "finetune_steps", "learning_rate",
           "finetune_learning_rate", "activations", "weights", "train_teacher", "seed")


@dataclasses.dataclass(frozen=True)
class StudentPlan:
    """One student and its training budget.

    ``variant``: ``scratch`` (its own vocabulary, fine-tuned on labels from random weights),
    ``kd`` (the teacher's vocabulary: stage II + KD fine-tuning, standard distillation) or
    ``mixed`` (its own vocabulary: stage I + stage II + KD fine-tuning).
    """

    layers: int
    width: int
    vocab_size: int = 2000
    variant: str = "mixed"
    p_mix: float = 0.5
    dual_steps: int = 300
    student_steps: int = 300
    finetune_steps: int = 300
    learning_rate: float = 3e-3
    finetune_learning_rate: float = 3e-3
    activations: bool = True
    weights: bool = False
    train_teacher: bool = False
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if not 2 <= self.layers <= 24 or self.width < 16:
            raise ConfigError(f"student size {self.layers}x{self.width}: needs 2-24 layers and width >= 16")


def parse_size(size: str) -> tuple[int, int]:
    """``"4x96"`` -> ``(4, 96)`` (layers, width)."""
    match = SIZE.match(str(size))
    if not match:
        raise ConfigError(f"student size {size!r} must look like LAYERSxWIDTH (e.g. 2x48, 4x96)")
    return int(match.group(1)), int(match.group(2))


def student_model(teacher: AlbertConfig, layers: int, width: int, vocab_size: int) -> AlbertConfig:
    """A BERT student: ``layers`` x ``width``, heads of width 32 where it divides (else 16, else one head),
    feed-forward 4 x width, the teacher's positions and activation, no dropout."""
    heads = next((width // d for d in (32, 16) if width % d == 0), 1)
    return dataclasses.replace(teacher, vocab_size=vocab_size, embedding_size=width, hidden_size=width,
                               num_layers=layers, num_heads=heads, intermediate_size=4 * width, sharing="none",
                               num_hidden_groups=1, inner_group_num=1, dropout=0.0, attention_dropout=0.0,
                               head_dim=0)


def check_teacher(finetuned: Config) -> None:
    if finetuned.task not in ("text_classification", "sentence_pair"):
        raise ConfigError(f"mixed-vocab distils a fine-tuned text_classification or sentence_pair work directory; "
                          f"this one trained task {finetuned.task!r}")
    if not finetuned.model.is_bert:
        raise ConfigError("mixed-vocab needs a BERT teacher (sharing=none, embedding_size == hidden_size)")
    if not finetuned.text.init_from:
        raise ConfigError("mixed-vocab needs the teacher's MLM pretraining run: the work directory was fine-tuned "
                          "without text.init_from")


def _stage_config(finetuned: Config, name: str, task: str, model: Any, steps: int, learning_rate: float,
                  plan: StudentPlan) -> Config:
    config = Config(name=name, task=task, model=model,
                    data=DataConfig(name="pydocs_pretrain", batch_size=plan.batch_size, eval_batch_size=128,
                                    seed=plan.seed, data_dir=finetuned.data.data_dir),
                    optim=OptimConfig(name="adamw", learning_rate=learning_rate, schedule="linear",
                                      warmup_steps=max(1, steps // 10), weight_decay=0.01),
                    steps=steps, eval_every=steps, checkpoint_every=steps, log_every=max(1, steps // 10),
                    seed=plan.seed)
    config.text = copy_config(finetuned.text)
    config.text.init_from, config.text.vocab_keep, config.text.objective = "", (), "none"
    return config


def tokenizer_files(finetuned: Config, plan: StudentPlan) -> tuple[str, str]:
    """The teacher's and the student's SentencePiece files (trained and cached on first use)."""
    from jaxcompress.tasks._text import make_tokenizer
    from jaxcompress.tasks.mixed_vocab import student_tokenizer_for

    teacher = make_tokenizer(finetuned)
    if not VARIANTS[plan.variant][3]:
        return str(teacher.path), str(teacher.path)
    student = student_tokenizer_for("", plan.vocab_size, teacher, finetuned.data.data_dir or None)
    return str(teacher.path), str(student.path)


def run_student(finetuned: Config, teacher_workdir: str | pathlib.Path, plan: StudentPlan,
                out: str | pathlib.Path, quiet: bool = True,
                finetune_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
    """Trains one student of ``plan`` from the fine-tuned teacher in ``teacher_workdir``; skips finished runs.

    The pretraining stages (``OUT/dual``, ``OUT/student``) depend on the teacher's pretraining run only, so
    students of one plan fine-tuned on several tasks share them; the fine-tuning goes to ``finetune_dir``
    (default ``OUT/finetune``).

    Returns:
      ``{"summaries": {stage: summary}, "config": the student classifier's Config, "params": its params,
      "model_changes": overrides of the teacher's config that run it}``.
    """
    from jaxcompress.train import train

    check_teacher(finetuned)
    out = pathlib.Path(out)
    pretrain_dir = finetuned.text.init_from
    dual, transfer, kd, own_vocab = VARIANTS[plan.variant]
    teacher_file, student_file = tokenizer_files(finetuned, plan)
    vocab = plan.vocab_size if own_vocab else finetuned.model.vocab_size
    student = student_model(finetuned.model, plan.layers, plan.width, vocab)
    summaries: dict[str, Any] = {}

    def run(stage: str, config: Config) -> pathlib.Path:
        workdir = pathlib.Path(finetune_dir) if stage == "finetune" and finetune_dir else out / stage
        done = workdir / "summary.json"
        summaries[stage] = json.loads(done.read_text()) if done.exists() else train(config, workdir, quiet=quiet)
        return workdir

    dual_dir = ""
    if dual:
        model = M.DualTrainingConfig(teacher=finetuned.model, teacher_workdir=str(pretrain_dir),
                                     teacher_tokenizer=teacher_file, student_tokenizer=student_file,
                                     student_vocab_size=vocab, student_width=plan.width, p_mix=plan.p_mix,
                                     train_teacher=plan.train_teacher)
        dual_dir = str(run("dual", _stage_config(finetuned, "mixed-vocab-dual", "mixed_vocab_dual", model,
                                                 plan.dual_steps, plan.learning_rate, plan)))
    init_from = ""
    if transfer:
        model = M.StudentTransferConfig(student=student, teacher=finetuned.model, teacher_workdir=str(pretrain_dir),
                                        teacher_tokenizer=teacher_file, dual_workdir=dual_dir,
                                        transfer_activations=plan.activations, transfer_weights=plan.weights)
        config = _stage_config(finetuned, "mixed-vocab-student", "mixed_vocab_student", model, plan.student_steps,
                               plan.learning_rate, plan)
        config.text.tokenizer_file = student_file
        init_from = str(run("student", config))
    config = copy_config(finetuned)
    config.name = f"mixed-vocab-{plan.variant}-{plan.layers}x{plan.width}"
    config.text.tokenizer_file, config.text.init_from, config.text.tokenizer_vocab_size = student_file, init_from, 0
    config.steps, config.seed, config.data.seed = plan.finetune_steps, plan.seed, plan.seed
    config.eval_every = config.checkpoint_every = plan.finetune_steps
    config.log_every = max(1, plan.finetune_steps // 10)
    config.optim = copy_config(finetuned.optim)
    config.optim.learning_rate = plan.finetune_learning_rate
    config.optim.warmup_steps = max(1, plan.finetune_steps // 10)
    if kd:
        config.model = M.TextKDConfig(student=student, teacher_workdir=str(teacher_workdir), base_task=finetuned.task)
        config.task = "text_kd"
    else:
        config.model = student
    workdir = run("finetune", config)
    params = restore_params(workdir, "student" if kd else None, field="the student's fine-tuning run")
    classifier = copy_config(finetuned)
    classifier.model, classifier.text = student, copy_config(config.text)
    classifier.text.init_from = ""
    changes = {f"model.{f.name}": getattr(student, f.name) for f in dataclasses.fields(student)}
    changes.update({"text.tokenizer_file": student_file, "text.init_from": "", "text.tokenizer_vocab_size": 0})
    return {"summaries": summaries, "config": classifier, "params": params, "model_changes": changes}


def _plan(options: dict[str, Any]) -> StudentPlan:
    layers, width = parse_size(options.get("size", "2x48"))
    plan = StudentPlan(
        layers=layers, width=width,
        vocab_size=O.integer("mixed-vocab", options, "vocab_size", 2000, 256),
        p_mix=O.number("mixed-vocab", options, "p_mix", 0.5, 0.0, 1.0),
        dual_steps=O.integer("mixed-vocab", options, "dual_steps", 300, 1),
        student_steps=O.integer("mixed-vocab", options, "student_steps", 300, 1),
        finetune_steps=O.integer("mixed-vocab", options, "finetune_steps", 300, 1),
        learning_rate=O.number("mixed-vocab", options, "learning_rate", 3e-3, 0.0, low_open=True),
        finetune_learning_rate=O.number("mixed-vocab", options, "finetune_learning_rate", 3e-3, 0.0, low_open=True),
        activations=O.boolean("mixed-vocab", options, "activations", True),
        weights=O.boolean("mixed-vocab", options, "weights", False),
        train_teacher=O.boolean("mixed-vocab", options, "train_teacher", False),
        seed=O.integer("mixed-vocab", options, "seed", 0, 0))
    return plan


@register_method("mixed-vocab")
def mixed_vocab_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Mixed-vocabulary distillation of the work directory's fine-tuned BERT into a small student (the caller
    supplies ``train_config``, ``workdir`` and ``train_dir``); must be the first method."""
    options = dict(options)
    finetuned, workdir, train_dir = (options.pop(k, None) for k in ("train_config", "workdir", "train_dir"))
    if finetuned is None or workdir is None:
        raise ConfigError("mixed-vocab trains from a fine-tuned work directory: use `jaxcompress compress --workdir "
                          "DIR --method mixed-vocab`")
    if artifact.history:
        raise ConfigError("mixed-vocab must be the first --method: it distils the work directory's trained model")
    O.check_known("mixed-vocab", options, OPTIONS)
    plan = _plan(options)
    result = run_student(finetuned, workdir, plan, train_dir or pathlib.Path(workdir) / "compressed" / "mixed-vocab")
    student = Compressed.from_params(result["params"])
    sizes = M.size_breakdown(result["params"])
    step = {"method": "mixed-vocab", "size": f"{plan.layers}x{plan.width}", "vocab_size": plan.vocab_size,
            "p_mix": plan.p_mix, "activations": plan.activations, "weights": plan.weights,
            "embedding_share": sizes["embedding_share"],
            "stages": {k: v.get("eval_metrics", {}) for k, v in result["summaries"].items()}}
    updates = {path: (student.storage[path], student.encodings[path]) for path in student.storage}
    return artifact.with_leaves(step, student.params, updates, model_changes=result["model_changes"])
