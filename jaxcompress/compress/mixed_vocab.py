"""Mixed-vocabulary distillation: the shared projection, layer-wise transfer losses and the stage configs.

A student with its own small vocabulary (V_S pieces, width d_S) is distilled
from a BERT teacher (V_T, width d_T) in two stages (the tasks in
:mod:`jaxcompress.tasks.mixed_vocab`):

* **Stage I, dual training** (:class:`DualTrainingConfig`): the teacher reads
  sequences in which each word is tokenised by either vocabulary; a student
  piece enters as ``E_S[id] @ Uᵀ`` (:func:`to_teacher`), so the student's
  embedding table ``E_S [V_S, d_S]`` is learned inside the teacher, whose MLM
  predicts teacher pieces.
* **Stage II** (:class:`StudentTransferConfig`): the student alone, with
  ``E_S`` from stage I, trains with MLM on its own vocabulary plus layer-wise
  transfer through the *same* ``U``: activations, ``h_T U`` against ``h_S``
  word by word, both standardised (:func:`activation_transfer`), and/or weights, ``Uᵀ W_T U``
  against ``W_S`` (:func:`weight_transfer`), each behind a flag.

``U [d_T, d_S]`` is one parameter: the teacher-side use (student vectors up
into the teacher, stage I) and the student-side uses (teacher activations and
weights down to the student, stage II) read the same array, and stage II
starts from the ``U`` stage I learned.

References:
  Zhao, Gupta, Song & Zhou, "Extreme Language Model Compression with Optimal
  Subwords and Shared Projections", arXiv 1909.11687 v1 (2019), and
  "Extremely Small BERT Models from Mixed-Vocabulary Training", EACL 2021.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.albert import AlbertConfig

#: The attention kernels the weight transfer compares (feed-forward widths differ between the models).
ATTENTION_KERNELS = ("query", "key", "value", "output")


# ----------------------------------------------------------------------------
# the shared projection


def to_teacher(projection: jax.Array, student_vectors: jax.Array) -> jax.Array:
    """Teacher-side use: ``[..., d_S] -> [..., d_T]`` as ``x Uᵀ`` (``projection`` is ``U [d_T, d_S]``)."""
    return student_vectors @ projection.T


def to_student(projection: jax.Array, teacher_vectors: jax.Array) -> jax.Array:
    """Student-side use on activations: ``[..., d_T] -> [..., d_S]`` as ``h U``."""
    return teacher_vectors @ projection


def weights_to_student(projection: jax.Array, teacher_weight: jax.Array) -> jax.Array:
    """Student-side use on a square weight: ``W_T [d_T, d_T] -> Uᵀ W_T U [d_S, d_S]``."""
    return projection.T @ teacher_weight @ projection


def init_projection(key: jax.Array, teacher_width: int, student_width: int) -> jax.Array:
    """``U [d_T, d_S]`` with orthonormal columns (``Uᵀ U = I``), so ``h U`` keeps the scale of ``h``."""
    return jax.nn.initializers.orthogonal()(key, (teacher_width, student_width), jnp.float32)


# ----------------------------------------------------------------------------
# layer-wise transfer


def layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """``(student state, teacher state)`` pairs over hidden-state indices (0 = embeddings).

    Student layer ``l`` (1-based) reads teacher layer ``round(l L_T / L_S)``: the
    last layers always meet, and equal depths map 1:1.
    """
    pairs = [(0, 0)]
    for layer in range(1, student_layers + 1):
        pairs.append((layer, int(np.floor(layer * teacher_layers / student_layers + 0.5))))
    return pairs


def word_pool(hidden: jax.Array, word_index: jax.Array, num_words: int) -> tuple[jax.Array, jax.Array]:
    """Mean of each word's token states.

    Args:
      hidden: ``[B, S, H]``.
      word_index: ``[B, S]`` int, the word of each token (-1: none).
      num_words: W, static.

    Returns:
      ``(pooled [B, W, H], counts [B, W])`` (a word without tokens pools to 0 with count 0).
    """
    onehot = jax.nn.one_hot(word_index, num_words, dtype=hidden.dtype)  # -1 gives a zero row
    counts = onehot.sum(axis=1)
    pooled = jnp.einsum("bsw,bsh->bwh", onehot, hidden) / jnp.maximum(counts, 1.0)[..., None]
    return pooled, counts


def standardize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Each vector of the last axis shifted and scaled to mean 0 and variance 1 (a LayerNorm without parameters)."""
    centred = x - x.mean(-1, keepdims=True)
    return centred * jax.lax.rsqrt((centred ** 2).mean(-1, keepdims=True) + eps)


def activation_transfer(teacher_states: list[jax.Array], student_states: list[jax.Array], projection: jax.Array,
                        teacher_words: jax.Array, student_words: jax.Array,
                        pairs: list[tuple[int, int]]) -> jax.Array:
    """Mean over layer pairs and words present in both sequences of
    ``mean_h (std(pool(h_T) U) - std(pool(h_S)))²``.

    Both sides are standardised (:func:`standardize`), so the loss cannot fall by shrinking ``U`` and
    the student's LayerNorm scales together; it compares directions and relative sizes of the features.

    Shapes: states ``[B, S_T, d_T]`` / ``[B, S_S, d_S]``, word indices ``[B, S]`` -> scalar.
    """
    num_words = max(teacher_words.shape[1], student_words.shape[1])
    total = jnp.zeros(())
    valid = None
    for s, t in pairs:
        pooled_t, count_t = word_pool(teacher_states[t], teacher_words, num_words)
        pooled_s, count_s = word_pool(student_states[s], student_words, num_words)
        if valid is None:
            valid = ((count_t > 0) & (count_s > 0)).astype(jnp.float32)
        error = ((standardize(to_student(projection, pooled_t)) - standardize(pooled_s)) ** 2).mean(-1)
        total += (error * valid).sum() / jnp.maximum(valid.sum(), 1.0)
    return total / len(pairs)


def square_attention_kernels(layer: dict[str, Any]) -> dict[str, jax.Array]:
    """The attention kernels of one layer as ``[H, H]`` matrices (input rows, output columns)."""
    attention = layer["attention"]
    out = {}
    for name in ATTENTION_KERNELS:
        kernel = attention[name]["kernel"]  # q/k/v: [H, heads, head_dim]; output: [heads, head_dim, H]
        out[name] = kernel.reshape(kernel.shape[0], -1) if name != "output" else kernel.reshape(-1, kernel.shape[-1])
    return out


def weight_transfer(teacher_layers: dict[str, Any], student_layers: dict[str, Any], projection: jax.Array,
                    pairs: list[tuple[int, int]]) -> jax.Array:
    """Mean over layer pairs and attention kernels of ``mean((Uᵀ W_T U - W_S)²) / mean((Uᵀ W_T U)²)``.

    Args:
      teacher_layers, student_layers: ``transformer/layers`` subtrees of two BERT encoders (a leading
        layer axis on every leaf: ``sharing="none"``).
      projection: ``U [d_T, d_S]``.
      pairs: :func:`layer_map` pairs; the embedding pair (0, 0) is skipped.

    Returns:
      A scalar; dividing by the projected weight's mean square makes kernels of different scale weigh
      alike and keeps the loss from falling by shrinking ``U``.
    """
    total, count = jnp.zeros(()), 0
    for s, t in pairs:
        if s == 0:
            continue
        teacher = square_attention_kernels(jax.tree.map(lambda a: a[t - 1], teacher_layers))
        student = square_attention_kernels(jax.tree.map(lambda a: a[s - 1], student_layers))
        for name in ATTENTION_KERNELS:
            projected = weights_to_student(projection, jax.lax.stop_gradient(teacher[name]))
            total += ((projected - student[name]) ** 2).mean() / jnp.maximum((projected ** 2).mean(), 1e-12)
            count += 1
    return total / max(count, 1)


# ----------------------------------------------------------------------------
# configs of the stages (``Config.model`` of their runs)


@dataclasses.dataclass
class DualTrainingConfig:
    """Stage I: the student's embedding table learned inside the (pre-trained) teacher."""

    teacher: Any = option(default_factory=AlbertConfig, help="the teacher's BERT encoder (embedding_size == "
                                                             "hidden_size)")
    teacher_workdir: str = option("", help="the teacher's MLM pretraining run (encoder and MLM head)")
    teacher_tokenizer: str = option("", help="the teacher's SentencePiece .model ('' = pydocs at "
                                             "teacher.vocab_size)")
    student_tokenizer: str = option("", help="the student's SentencePiece .model ('' = pydocs at "
                                             "student_vocab_size)")
    student_vocab_size: int = option(2000, help="V_S: rows of the student's embedding table", min=2)
    student_width: int = option(64, help="d_S: the student's hidden and embedding width", min=1)
    p_mix: float = option(0.5, help="probability that a word is tokenised with the student's vocabulary",
                          min=0.0, max=1.0)
    train_teacher: bool = option(False, help="train the teacher too (v1's simultaneous training); False keeps "
                                             "it as pre-trained")

    def validate(self, prefix: str) -> None:
        if self.teacher.embedding_size != self.teacher.hidden_size:
            raise ConfigError(f"config key '{prefix}teacher.embedding_size' must equal teacher.hidden_size "
                              f"(a BERT teacher), got {self.teacher.embedding_size} != {self.teacher.hidden_size}")


@dataclasses.dataclass
class StudentTransferConfig:
    """Stage II: the student alone, MLM on its own vocabulary plus transfer through the shared projection."""

    student: Any = option(default_factory=AlbertConfig, help="the student's BERT encoder (its vocabulary and "
                                                             "width)")
    teacher: Any = option(default_factory=AlbertConfig, help="the teacher's BERT encoder")
    teacher_workdir: str = option("", help="the teacher's MLM pretraining run")
    teacher_tokenizer: str = option("", help="the teacher's SentencePiece .model ('' = pydocs at "
                                             "teacher.vocab_size)")
    dual_workdir: str = option("", help="the stage-I run whose student embeddings and projection start this "
                                        "one ('' = random: no dual training)")
    transfer_activations: bool = option(True, help="layer-wise transfer on activations: |h_T U - h_S|^2 per "
                                                   "word")
    transfer_weights: bool = option(False, help="layer-wise transfer on weights: |U^T W_T U - W_S|^2 of the "
                                                "attention kernels")
    activation_weight: float = option(1.0, help="weight of the activation transfer", min=0.0)
    weight_weight: float = option(1.0, help="weight of the weight transfer", min=0.0)

    def validate(self, prefix: str) -> None:
        for name in ("student", "teacher"):
            model = getattr(self, name)
            if not model.is_bert:
                raise ConfigError(f"config key '{prefix}{name}' must be a BERT encoder (sharing=none, "
                                  f"embedding_size == hidden_size), got sharing={model.sharing}, "
                                  f"embedding_size={model.embedding_size}, hidden_size={model.hidden_size}")


@dataclasses.dataclass
class TextKDConfig:
    """Task fine-tuning by logit distillation; the student may tokenise with its own vocabulary."""

    student: Any = option(default_factory=AlbertConfig, help="the student's encoder")
    teacher_workdir: str = option("", help="the fine-tuned teacher's work directory (its config and tokenizer)")
    base_task: str = option("text_classification", help="the downstream task",
                            choices=("text_classification", "sentence_pair"))
    temperature: float = option(2.0, help="distillation temperature T", min=0.0, min_exclusive=True)
    kd_weight: float = option(1.0, help="weight of T^2 KL(teacher || student)", min=0.0)
    alpha: float = option(1.0, help="weight of the cross-entropy with the labels", min=0.0)


# ----------------------------------------------------------------------------
# size accounting


def size_breakdown(params: Any) -> dict[str, Any]:
    """Parameters and bytes of a text model, and the word table's share.

    Args:
      params: a model's params (an ``encoder`` subtree with ``embeddings/word``).

    Returns:
      ``{"params", "word_embedding_params", "embedding_share", "float32_bytes", "int8_bytes"}``;
      int8 stores every kernel and embedding table as per-channel int8 codes with float scales
      (:func:`jaxcompress.compress.quantize.quantize_params`), biases and norms stay float32.
    """
    from jaxcompress.compress.artifact import Compressed
    from jaxcompress.compress.quantize import quantize_params

    host = jax.tree.map(np.asarray, jax.device_get(params))
    total = int(sum(leaf.size for leaf in jax.tree.leaves(host)))
    word = int(np.asarray(host["encoder"]["embeddings"]["word"]["embedding"]).size)
    dense = Compressed.from_params(host)
    int8 = quantize_params(dense, bits=8, include="(kernel|embedding)$", backend="reference")
    return {"params": total, "word_embedding_params": word, "embedding_share": word / max(total, 1),
            "float32_bytes": int(dense.total_bytes), "int8_bytes": int(int8.total_bytes)}
