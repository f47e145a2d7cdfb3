"""Mixed-vocabulary distillation as tasks: dual training, the student's transfer stage, KD fine-tuning.

``mixed_vocab_dual`` (stage I, config :class:`~jaxcompress.compress.mixed_vocab.DualTrainingConfig`)
    params ``{"student_embedding" [V_S, d_S], "projection" [d_T, d_S], "teacher"}``. Records of a
    ``pydocs_pretrain``-style dataset become mixed sequences
    (:func:`~jaxcompress.data.text.mixed_vocab.mixed_batch`); student pieces enter the teacher as
    ``E_S[id] Uᵀ``, teacher pieces as ``E_T[id]``; the teacher's tied MLM head predicts the masked
    teacher pieces. The teacher is frozen unless ``model.train_teacher``.
``mixed_vocab_student`` (stage II, :class:`~jaxcompress.compress.mixed_vocab.StudentTransferConfig`)
    params ``{"encoder", "mlm_head", "sentence_head"`` (the student, a BERT pretraining model, so
    ``text.init_from`` can start a classifier from it), ``"projection", "teacher"}``. Loss: the
    student's MLM on its own vocabulary plus, behind flags, activation transfer (teacher states
    through ``U``, word by word) and weight transfer (``Uᵀ W_T U`` against ``W_S``).
``text_kd`` (fine-tuning, :class:`~jaxcompress.compress.mixed_vocab.TextKDConfig`)
    params ``{"student", "teacher"}``: a text classifier trained on labels and on a fine-tuned
    teacher's logits; each model tokenises the text with its own vocabulary (logits are per
    sentence, so no alignment is needed).

The teacher is restored once from its work directory and never updated by the optimiser (zero
updates, no optimiser state) unless the stage trains it.

References:
  Zhao, Gupta, Song & Zhou, "Extremely Small BERT Models from Mixed-Vocabulary Training",
  EACL 2021 (arXiv 1909.11687); Hinton, Vinyals & Dean, arXiv 1503.02531 (logit distillation).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress import distill as D
from jaxcompress.compress import mixed_vocab as M
from jaxcompress.configlib import copy_config
from jaxcompress.data.text import mixed_vocab as MV
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.tasks import _text
from jaxcompress.train.checkpoint import graft_params, restore_params
from jaxcompress.train.task import TASKS, Batch, Metrics, Task, register_task

_RECORD = ("text", "seed")


def train_only(tx: optax.GradientTransformation, keys: tuple[str, ...]) -> optax.GradientTransformation:
    """``tx`` on the top-level subtrees ``keys``; zero updates and no optimiser state for the others."""
    def pick(tree: Any) -> Any:
        return {k: tree[k] for k in keys}

    def init(params: Any) -> Any:
        return tx.init(pick(params))

    def update(grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        updates, state = tx.update(pick(grads), state, None if params is None else pick(params))
        frozen = {k: jax.tree.map(jnp.zeros_like, v) for k, v in grads.items() if k not in keys}
        return {**frozen, **updates}, state

    return optax.GradientTransformation(init, update)


def tokenizer_for(path: str, vocab_size: int, data_dir: str | None) -> Any:
    """A SentencePiece model file, or the cached ``pydocs`` tokenizer of ``vocab_size`` pieces."""
    from jaxcompress.data.text.tokenizer import Tokenizer, corpus_tokenizer

    if path:
        if not pathlib.Path(path).expanduser().is_file():
            raise ConfigError(f"tokenizer file {path!r} does not exist")
        return Tokenizer(pathlib.Path(path).expanduser())
    return corpus_tokenizer(data_dir, vocab_size, quiet=jax.process_index() != 0)


def student_tokenizer_for(path: str, vocab_size: int, teacher: Any, data_dir: str | None) -> Any:
    """The student's tokenizer (file or cached), refused unless it covers the corpus's characters."""
    student = tokenizer_for(path, vocab_size, data_dir)
    MV.check_coverage(student, teacher, MV.corpus_characters(data_dir))
    return student


def _check_records(data_info: dict[str, Any], task: str) -> None:
    missing = [f for f in _RECORD if f not in data_info["features"]]
    if missing:
        raise DataError(f"dataset {data_info['name']!r} cannot be used for task {task!r}: it lacks "
                        f"{', '.join(missing)} (use a pydocs_pretrain-style dataset)")
    _text.require_text(data_info, "text", "data.name")


def _model_config(config: Any, expected: type, task: str) -> Any:
    """``config.model`` when it is an ``expected`` instance; else one error naming the task and the type."""
    cfg = config.model
    if not isinstance(cfg, expected):
        raise ConfigError(f"task {task!r} needs config.model to be a {expected.__name__}, got {type(cfg).__name__}")
    return cfg


def _stage_config(config: Any, data_info: dict[str, Any], expected: type, task: str) -> Any:
    """The checks both pretraining stages share: model config type, teacher run named, MLM records present."""
    cfg = _model_config(config, expected, task)
    if not cfg.teacher_workdir:
        raise ConfigError("config key 'model.teacher_workdir' must name the teacher's pretraining run")
    _check_records(data_info, task)
    return cfg


def _seeds(raw: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(raw["seed"]).astype(np.int64) & np.iinfo(np.int64).max


_TEACHER_FIELD = "config key 'model.teacher_workdir'"


def _teacher_tree(config: Any, values: Any) -> Any:
    """The teacher's pretraining params (``values``, restored in ``__init__``), boxed like a fresh init."""
    from jaxcompress.nn.albert import AlbertForPreTraining

    boxed = AlbertForPreTraining(config).init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
    return graft_params(boxed, values, _TEACHER_FIELD)


def _masked_lm(logits: jax.Array, labels: jax.Array, weights: jax.Array, per_example: bool) -> dict[str, jax.Array]:
    token = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    hits = (logits.argmax(-1) == labels).astype(jnp.float32)
    axis = -1 if per_example else None
    count = jnp.maximum(weights.sum(axis), 1.0)
    return {"mlm_loss": (token * weights).sum(axis) / count, "mlm_accuracy": (hits * weights).sum(axis) / count}


def _gather(states: jax.Array, positions: jax.Array) -> jax.Array:
    return jnp.take_along_axis(states, positions[..., None].astype(jnp.int32), axis=1)


# ----------------------------------------------------------------------------
# stage I


@register_task("mixed_vocab_dual")
class DualTrainingTask(Task):
    """Stage I: mixed-vocabulary MLM of the teacher, learning the student's embeddings (see module docstring)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = _stage_config(config, data_info, M.DualTrainingConfig, "mixed_vocab_dual")
        data_dir = config.data.data_dir or None
        self.cfg = cfg
        self.teacher_tok = tokenizer_for(cfg.teacher_tokenizer, cfg.teacher.vocab_size, data_dir)
        self.student_tok = student_tokenizer_for(cfg.student_tokenizer, cfg.student_vocab_size, self.teacher_tok,
                                                 data_dir)
        if self.student_tok.vocab_size > cfg.student_vocab_size:
            raise ConfigError(f"the student tokenizer has {self.student_tok.vocab_size} pieces but "
                              f"model.student_vocab_size = {cfg.student_vocab_size}")
        self.spec = MV.MixSpec(max_seq_length=config.text.max_seq_length, p_mix=cfg.p_mix,
                               masked_lm_prob=config.text.masked_lm_prob, max_predictions=config.text.max_predictions,
                               max_ngram=config.text.max_ngram)
        self.data_seed = config.data.seed
        self.teacher_values = restore_params(cfg.teacher_workdir, field=_TEACHER_FIELD)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = MV.mixed_batch(_text.decode(raw["text"]), _seeds(raw), self.spec, self.teacher_tok,
                               self.student_tok, seed=self.data_seed)
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        cfg = self.cfg
        e_key, u_key = jax.random.split(rng)
        teacher = _teacher_tree(cfg.teacher, self.teacher_values)
        return {"student_embedding": cfg.teacher.initializer_range * jax.random.normal(
                    e_key, (cfg.student_vocab_size, cfg.student_width)),
                "projection": M.init_projection(u_key, cfg.teacher.hidden_size, cfg.student_width),
                "teacher": teacher}

    def word_vectors(self, params: Any, ids: jax.Array, student_token: jax.Array) -> jax.Array:
        """The teacher's input: ``E_S[id] Uᵀ`` at student pieces, ``E_T[id]`` elsewhere ``[B, S, d_T]``."""
        from jaxcompress.nn.albert_layers import word_table

        teacher_table = word_table(params["teacher"]["encoder"])
        from_student = M.to_teacher(params["projection"],
                                    params["student_embedding"][jnp.clip(ids, 0, self.cfg.student_vocab_size - 1)])
        from_teacher = teacher_table[jnp.clip(ids, 0, teacher_table.shape[0] - 1)]
        return jnp.where(student_token[..., None].astype(bool), from_student, from_teacher)

    def _outputs(self, params: Any, batch: Batch, per_example: bool) -> dict[str, jax.Array]:
        from jaxcompress.nn.albert_layers import hidden_states, mlm_logits, word_table

        if not self.cfg.train_teacher:
            params = {**params, "teacher": jax.lax.stop_gradient(params["teacher"])}
        teacher = params["teacher"]
        vectors = self.word_vectors(params, batch["input_ids"], batch["student_token"])
        states = hidden_states(self.cfg.teacher, teacher["encoder"], vectors, None, batch["attention_mask"])
        logits = mlm_logits(self.cfg.teacher, teacher["mlm_head"], _gather(states[-1], batch["masked_positions"]),
                            word_table(teacher["encoder"]))
        return _masked_lm(logits, batch["masked_ids"], batch["masked_weights"], per_example)

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        metrics = self._outputs(params, batch, per_example=False)
        student_share = batch["student_token"].sum() / jnp.maximum(batch["attention_mask"].sum(), 1)
        return metrics["mlm_loss"], {"loss": metrics["mlm_loss"], **metrics, "student_token_share": student_share}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        metrics = self._outputs(params, batch, per_example=True)
        return {"loss": metrics["mlm_loss"], **metrics}

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        keys = ("student_embedding", "projection") + (("teacher",) if self.cfg.train_teacher else ())
        return train_only(tx, keys)


# ----------------------------------------------------------------------------
# stage II


@register_task("mixed_vocab_student")
class StudentTransferTask(Task):
    """Stage II: the student's MLM plus layer-wise transfer through the shared projection."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = _stage_config(config, data_info, M.StudentTransferConfig, "mixed_vocab_student")
        data_dir = config.data.data_dir or None
        self.cfg = cfg
        self.teacher_tok = tokenizer_for(cfg.teacher_tokenizer, cfg.teacher.vocab_size, data_dir)
        self.student_tok = student_tokenizer_for(config.text.tokenizer_file, cfg.student.vocab_size,
                                                 self.teacher_tok, data_dir)
        if self.student_tok.vocab_size > cfg.student.vocab_size:
            raise ConfigError(f"the student tokenizer has {self.student_tok.vocab_size} pieces but "
                              f"model.student.vocab_size = {cfg.student.vocab_size}")
        self.spec = MV.MixSpec(max_seq_length=config.text.max_seq_length, masked_lm_prob=config.text.masked_lm_prob,
                               max_predictions=config.text.max_predictions, max_ngram=config.text.max_ngram)
        self.pairs = M.layer_map(cfg.student.num_layers, cfg.teacher.num_layers)
        self.data_seed = config.data.seed
        self.teacher_values = restore_params(cfg.teacher_workdir, field=_TEACHER_FIELD)
        self.dual_values = (restore_params(cfg.dual_workdir, field="config key 'model.dual_workdir'")
                            if cfg.dual_workdir else None)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = MV.aligned_batch(_text.decode(raw["text"]), _seeds(raw), self.spec, self.teacher_tok,
                                 self.student_tok, seed=self.data_seed)
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        from jaxcompress.nn.albert import AlbertForPreTraining

        cfg = self.cfg
        s_key, u_key = jax.random.split(rng)
        student = AlbertForPreTraining(cfg.student).init(s_key, jnp.asarray(batch["input_ids"][:1]))["params"]
        projection = M.init_projection(u_key, cfg.teacher.hidden_size, cfg.student.hidden_size)
        if self.dual_values is not None:
            dual = self.dual_values
            table = student["encoder"]["embeddings"]["word"]["embedding"]
            learned = np.asarray(dual["student_embedding"])
            if learned.shape != tuple(nn.unbox(table).shape):
                raise ConfigError(f"config key 'model.dual_workdir': its student embedding has shape {learned.shape}"
                                  f" but model.student needs {tuple(nn.unbox(table).shape)}")
            student["encoder"]["embeddings"]["word"]["embedding"] = table.replace_boxed(jnp.asarray(learned))
            projection = jnp.asarray(dual["projection"])  # the one U, carried from stage I
        teacher = _teacher_tree(cfg.teacher, self.teacher_values)
        return {**student, "projection": projection, "teacher": {"encoder": teacher["encoder"]}}

    def _terms(self, params: Any, batch: Batch, per_example: bool) -> dict[str, jax.Array]:
        from jaxcompress.nn.albert_layers import hidden_states, mlm_logits, word_table

        cfg = self.cfg
        table = word_table(params["encoder"])
        states = hidden_states(cfg.student, params["encoder"], table[batch["input_ids"]], None,
                               batch["attention_mask"])
        logits = mlm_logits(cfg.student, params["mlm_head"], _gather(states[-1], batch["masked_positions"]), table)
        terms = _masked_lm(logits, batch["masked_ids"], batch["masked_weights"], per_example)
        teacher = jax.lax.stop_gradient(params["teacher"]["encoder"])
        if cfg.transfer_activations:
            t_states = hidden_states(cfg.teacher, teacher, word_table(teacher)[batch["teacher_input_ids"]], None,
                                     batch["teacher_attention_mask"])
            if per_example:
                terms["activation_transfer"] = jax.vmap(
                    lambda t, s, tw, sw: M.activation_transfer([x[None] for x in t], [x[None] for x in s],
                                                               params["projection"], tw[None], sw[None], self.pairs)
                )(t_states, states, batch["teacher_word_index"], batch["word_index"])
            else:
                terms["activation_transfer"] = M.activation_transfer(
                    t_states, states, params["projection"], batch["teacher_word_index"], batch["word_index"],
                    self.pairs)
        if cfg.transfer_weights:
            value = M.weight_transfer(teacher["transformer"]["layers"], params["encoder"]["transformer"]["layers"],
                                      params["projection"], self.pairs)
            terms["weight_transfer"] = jnp.broadcast_to(value, batch["input_ids"].shape[:1]) if per_example else value
        return terms

    def _total(self, terms: dict[str, jax.Array]) -> jax.Array:
        total = terms["mlm_loss"]
        if "activation_transfer" in terms:
            total = total + self.cfg.activation_weight * terms["activation_transfer"]
        if "weight_transfer" in terms:
            total = total + self.cfg.weight_weight * terms["weight_transfer"]
        return total

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        terms = self._terms(params, batch, per_example=False)
        total = self._total(terms)
        return total, {"loss": total, **terms}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        terms = self._terms(params, batch, per_example=True)
        return {"loss": self._total(terms), **terms}

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        return train_only(tx, ("encoder", "mlm_head", "sentence_head", "projection"))


# ----------------------------------------------------------------------------
# fine-tuning by logit distillation


def teacher_config(workdir: str) -> Any:
    """The config a fine-tuned teacher was trained with (its ``config.json``), without ``text.init_from``."""
    from jaxcompress.train.config import config_from_dict

    path = pathlib.Path(workdir).expanduser() / "config.json"
    if not path.is_file():
        raise ConfigError(f"config key 'model.teacher_workdir' = {workdir!r} holds no config.json (a finished "
                          f"`jaxcompress train` run)")
    config = config_from_dict(json.loads(path.read_text()))
    config.text.init_from = ""  # its weights come from its own checkpoint
    return config


@register_task("text_kd")
class TextDistillationTask(Task):
    """Fine-tuning a text classifier on labels and a teacher's logits, each with its own tokenizer."""

    _INPUTS = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = _model_config(config, M.TextKDConfig, "text_kd")
        self.cfg = cfg
        inner = copy_config(config)
        inner.model, inner.task = cfg.student, cfg.base_task
        self.student = TASKS[cfg.base_task](inner, data_info)
        t_config = teacher_config(cfg.teacher_workdir)
        if t_config.task != cfg.base_task:
            raise ConfigError(f"config key 'model.teacher_workdir': the teacher was trained on {t_config.task!r}, "
                              f"not model.base_task = {cfg.base_task!r}")
        t_config.data = copy_config(config.data)
        self.teacher = TASKS[cfg.base_task](t_config, data_info)
        self.teacher_values = restore_params(cfg.teacher_workdir, field=_TEACHER_FIELD)
        if self.teacher.num_classes != self.student.num_classes:
            raise ConfigError("the teacher and the student classify into different numbers of classes")

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = self.student.prepare_batch(raw)
        teacher = self.teacher.prepare_batch(raw)
        batch.update({f"teacher_{k}": teacher[k] for k in self._INPUTS})
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        teacher_batch = {k: batch[f"teacher_{k}"] for k in self._INPUTS}
        teacher = graft_params(self.teacher.init(rng, teacher_batch), self.teacher_values, _TEACHER_FIELD)
        return {"student": self.student.init(rng, batch), "teacher": teacher}

    def _teacher_logits(self, params: Any, batch: Batch) -> jax.Array:
        return self.teacher.eval_model.apply({"params": jax.lax.stop_gradient(params["teacher"])},
                                             *(batch[f"teacher_{k}"] for k in self._INPUTS)).astype(jnp.float32)

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        logits = self.student.train_model.apply({"params": params["student"]}, *(batch[k] for k in self._INPUTS),
                                                rngs={"dropout": rng}).astype(jnp.float32)
        teacher = self._teacher_logits(params, batch)
        total, parts = D.hinton_loss(logits, teacher, batch["label"], temperature=self.cfg.temperature,
                                     kd_weight=self.cfg.kd_weight, alpha=self.cfg.alpha)
        return total, {"loss": total, **parts, "accuracy": (logits.argmax(-1) == batch["label"]).mean(),
                       "agreement": (logits.argmax(-1) == teacher.argmax(-1)).mean()}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        logits = self.student.eval_model.apply({"params": params["student"]},
                                               *(batch[k] for k in self._INPUTS)).astype(jnp.float32)
        teacher = self._teacher_logits(params, batch)
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
                "accuracy": (logits.argmax(-1) == batch["label"]).astype(jnp.float32),
                "agreement": (logits.argmax(-1) == teacher.argmax(-1)).astype(jnp.float32)}

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        return train_only(tx, ("student",))

    def forward_for_flops(self):
        fn, inputs = self.student.forward_for_flops()
        return (lambda params, ids: fn(params["student"], ids)), inputs
