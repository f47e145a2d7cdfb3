"""Contrastive pruning (CAP): the contrastive loss over memory banks, its options, schedule and memory plan.

CAP keeps the sentence representation of a model being pruned close to three
reference models for the same inputs: the pre-trained model (PrC), the
fine-tuned teacher (FiC) and earlier, less sparse snapshots of the model being
pruned (SnC). Each reference lives in a *memory bank* indexed by example id.
For a batch anchor ``z_i`` (the L2-normalised representation, the only thing
that carries gradient) the candidates of one bank are

* the detached anchors of the whole batch (``own`` copies; ``z_i``'s own copy is
  masked out of row ``i``),
* the bank's views of the batch examples ``bank[id_j, 0..K-1]``,
* ``extra`` random bank rows: ``extra // f`` distinct random examples with all
  their ``f`` filled views (the reference's ``extra_examples // R``),

scored as ``z_i . c / tau``. Positives are the candidates of the same example
(unsupervised term) or of the same label (supervised term). Banks here have a
fixed number ``K`` of view slots: a slot not yet filled is masked out of the
softmax and of the positive sets, so the train step's shapes never change and
it compiles once.

``normalization="reference"`` reproduces the reference code's double division
``-sum_i (sum_{p in P_i} log p_ip / n_i) / sum_i n_i``; ``"supcon"`` is
``-(1/|A|) sum_{i in A} (1/n_i) sum_{p in P_i} log p_ip`` over anchors ``A`` with
a positive (Khosla et al.).

References:
  Xu et al., "From Dense to Sparse: Contrastive Pruning for Better Pre-trained
  Language Model Compression", AAAI 2022 (arXiv 2112.07198); Khosla et al.,
  "Supervised Contrastive Learning", NeurIPS 2020; Zhu & Gupta, arXiv
  1710.01878 (cubic schedule); Sanh, Wolf & Rush, "Movement Pruning", NeurIPS 2020.
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

NORMALIZATIONS = ("reference", "supcon")
BANKS = ("pre", "fine", "snap")
BANK_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
#: Score given to masked candidates (the reference's -1e6 on the anchor's own copy).
MASKED = -1e6


@dataclasses.dataclass
class CapConfig:
    """The ``cap`` task (``Config.model`` of a contrastive-pruning run): encoder, teacher, loss weights, banks.

    Defaults are those of the reference scripts (CAP-m, ``run_glue_topk_kd.sh``):
    tau 0.1 (the argparse default 0.01 is never used), w_unsup 0.1, w_sup 10,
    w_ce 0.1, w_kd 0.9, KD temperature 2, 4096 extra bank examples.
    """

    encoder: Any = option(default_factory=AlbertConfig, help="the ALBERT/BERT encoder being pruned")
    base_task: str = option("text_classification", help="what the encoder is fine-pruned on",
                            choices=("text_classification", "sentence_pair"))
    teacher_workdir: str = option("", help="work directory of the fine-tuned teacher (FiC bank, KD logits)")
    student_init: str = option("pretrained", help="'pretrained': the encoder of text.init_from and a fresh "
                               "classifier (the paper); 'teacher': a copy of the fine-tuned teacher",
                               choices=("pretrained", "teacher"))
    temperature: float = option(0.1, help="tau of the contrastive softmax", min=0.0, min_exclusive=True)
    w_unsup: float = option(0.1, help="weight of the unsupervised (same example) term", min=0.0)
    w_sup: float = option(10.0, help="weight of the supervised (same label) term", min=0.0)
    w_ce: float = option(0.1, help="weight of the cross-entropy with the labels", min=0.0)
    w_kd: float = option(0.9, help="weight of T^2 KL(teacher || student)", min=0.0)
    kd_temperature: float = option(2.0, help="temperature T of the distillation", min=0.0, min_exclusive=True)
    extra_examples: int = option(4096, help="random bank rows per bank and step (capped by the bank's rows)",
                                 min=0)
    normalization: str = option("reference", help="how positives are averaged", choices=NORMALIZATIONS)
    use_pre: bool = option(True, help="PrC: the pre-trained model's bank")
    use_fine: bool = option(True, help="FiC: the fine-tuned teacher's bank")
    use_snap: bool = option(True, help="SnC: the snapshots of the model being pruned")
    snapshot_slots: int = option(0, help="view slots of the snapshot bank; 0: one per refresh of the run",
                                 min=0)
    refresh_every: int = option(0, help="steps between snapshot refreshes; 0: one epoch (ceil(N / batch))",
                                min=0)
    encode_dropout: bool = option(False, help="encode banks with dropout on (the reference's train-mode "
                                  "encoding) instead of the deterministic eval mode")
    bank_dtype: str = option("float32", help="storage type of the banks", choices=tuple(BANK_DTYPES))
    encode_batch: int = option(256, help="examples per chunk when a bank is encoded", min=1)
    student_from: str = option("", help="work directory of an earlier cap run whose student starts this one "
                               "(structured CAP: the previous pruning step)")
    banks_from: str = option("", help="work directory of an earlier cap run whose banks this one continues, "
                             "adding the starting student's view as the next snapshot")
    snapshot_at_start: bool = option(False, help="encode the starting student into the next free snapshot slot "
                                     "(structured CAP: every run starts from a newly pruned model)")
    unit_masks_file: str = option("", help="an .npz of 0/1 masks by parameter path (structured pruning): those "
                                  "student weights stay exactly zero")
    max_bank_mb: float = option(0.0, help="refuse banks larger than this (MiB); 0: half the memory of one "
                                "device (an accelerator's own, else the host's RAM)", min=0.0)

    def validate(self, prefix: str) -> None:
        if not self.teacher_workdir:
            raise ConfigError(f"config key '{prefix}teacher_workdir' must name the fine-tuned teacher's work "
                              f"directory (fine-tune it first with `jaxcompress train`)")

    @property
    def banks(self) -> tuple[str, ...]:
        """The banks in use, in loss order."""
        return tuple(b for b, on in zip(BANKS, (self.use_pre, self.use_fine, self.use_snap)) if on)


# ----------------------------------------------------------------------------
# The loss


def contrastive_term(z: jax.Array, cand: jax.Array, cand_id: jax.Array, cand_label: jax.Array,
                     cand_ok: jax.Array, anchor_id: jax.Array, anchor_label: jax.Array, *, tau: float,
                     w_unsup: float, w_sup: float, normalization: str = "reference",
                     supervised: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One bank's unsupervised + supervised contrastive terms.

    Args:
      z: ``[b, d]`` L2-normalised anchors (carry gradient).
      cand: ``[M, d]`` candidates, the first ``b`` rows being the anchors' own copies (row ``i`` of
        ``z`` never scores its own copy, column ``i``); detached here.
      cand_id, cand_label: ``[M]`` example ids and labels of the candidates.
      cand_ok: ``[M]`` bool; False leaves the softmax and both positive sets (unfilled slots).
      anchor_id, anchor_label: ``[b]``.
      tau, w_unsup, w_sup, normalization: see :class:`CapConfig`.
      supervised: False drops the label term (tasks without labels).

    Returns:
      ``(w_unsup * L_unsup + w_sup * L_sup, {"unsup", "sup"})``.

    References:
      Xu et al., AAAI 2022 (``calculate_contrastive_loss`` of the authors' code).
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"cap normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    b = z.shape[0]
    scores = z.astype(jnp.float32) @ jax.lax.stop_gradient(cand).astype(jnp.float32).T / tau  # [b, M]
    keep = cand_ok[None, :] & (jnp.arange(cand.shape[0])[None, :] != jnp.arange(b)[:, None])
    logp = jax.nn.log_softmax(jnp.where(keep, scores, MASKED), axis=-1)

    def term(positive: jax.Array) -> jax.Array:
        positive = positive & keep
        n = positive.sum(-1)
        per_anchor = jnp.where(positive, logp, 0.0).sum(-1) / jnp.maximum(n, 1)
        if normalization == "reference":
            return -per_anchor.sum() / jnp.maximum(n.sum(), 1)
        return -jnp.where(n > 0, per_anchor, 0.0).sum() / jnp.maximum((n > 0).sum(), 1)

    unsup = term(anchor_id[:, None] == cand_id[None, :])
    sup = term(anchor_label[:, None] == cand_label[None, :]) if supervised else jnp.zeros(())
    return w_unsup * unsup + w_sup * sup, {"unsup": unsup, "sup": sup}


def draw_extra(key: jax.Array, num_examples: int, filled: jax.Array, extra: int) -> tuple[jax.Array, ...]:
    """Which bank rows join the candidates: ``extra // f`` distinct examples with all ``f`` filled views.

    Args:
      key: this step's key.
      num_examples: N, the bank's rows.
      filled: ``[K]`` bool, which view slots hold a view (slots fill in order, so the filled ones are
        ``0..f-1``).
      extra: the reference's ``extra_examples`` (a static row budget M).

    Returns:
      ``(example [M] int32, slot [M] int32, ok [M] bool)``: row ``r`` is view ``r mod f`` of example
      ``J[r // f]`` for a random permutation ``J`` of the N ids; rows past ``min(extra // f, N) * f``
      are masked.
    """
    f = filled.sum().astype(jnp.int32)
    per_view = jnp.maximum(f, 1)
    rows = jnp.arange(extra, dtype=jnp.int32)
    order = jax.random.permutation(key, num_examples).astype(jnp.int32)
    position = rows // per_view
    count = jnp.minimum(extra // per_view, num_examples)
    ok = (position < count) & (f > 0)
    return order[jnp.minimum(position, num_examples - 1)], rows % per_view, ok


def bank_term(z: jax.Array, ids: jax.Array, labels: jax.Array, bank: jax.Array, filled: jax.Array,
              all_labels: jax.Array, key: jax.Array, *, extra: int, tau: float, w_unsup: float, w_sup: float,
              normalization: str = "reference", supervised: bool = True) -> tuple[jax.Array, dict]:
    """The contrastive terms of one bank for a batch (candidates gathered here, fixed shapes).

    Args:
      z: ``[b, d]`` normalised anchors; ``ids``, ``labels``: ``[b]``.
      bank: ``[N, K, d]`` normalised views (any float type); ``filled``: ``[K]`` bool.
      all_labels: ``[N]`` labels of the bank's examples.
      key: draws the extra examples (:func:`draw_extra`).

    Returns:
      ``(weighted loss, {"unsup", "sup"})``; zero when no slot is filled.
    """
    b = z.shape[0]
    n, k, _ = bank.shape
    own = jax.lax.stop_gradient(z)
    views = bank[ids].astype(jnp.float32).reshape(b * k, -1)
    view_ok = jnp.broadcast_to(filled[None, :], (b, k)).reshape(-1)
    example, slot, extra_ok = draw_extra(key, n, filled, extra) if extra else (
        jnp.zeros((0,), jnp.int32), jnp.zeros((0,), jnp.int32), jnp.zeros((0,), bool))
    extra_rows = bank[example, slot].astype(jnp.float32)
    cand = jnp.concatenate([own, views, extra_rows])
    cand_id = jnp.concatenate([ids, jnp.repeat(ids, k), example])
    cand_label = jnp.concatenate([labels, jnp.repeat(labels, k), all_labels[example]])
    cand_ok = jnp.concatenate([jnp.ones((b,), bool), view_ok, extra_ok])
    loss, parts = contrastive_term(z, cand, cand_id, cand_label, cand_ok, ids, labels, tau=tau,
                                   w_unsup=w_unsup, w_sup=w_sup, normalization=normalization,
                                   supervised=supervised)
    any_view = filled.any()
    return jnp.where(any_view, loss, 0.0), {name: jnp.where(any_view, v, 0.0) for name, v in parts.items()}


def normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of ``x [..., d]`` scaled to unit L2 norm (cosine similarity, as the reference)."""
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


# ----------------------------------------------------------------------------
# Schedule and memory


def reference_schedule(total_steps: int, warmup_steps: int, initial_warmup: float = 2.0,
                       final_warmup: float = 3.0) -> tuple[int, int]:
    """``(start_step, end_step)`` of the library's cubic ``gradual`` schedule that equals the reference's.

    The reference keeps everything until ``a*w``, ramps the kept fraction cubically to its
    final value at ``T - b*w`` and holds it: :class:`~jaxcompress.compress.schedules.Schedule`
    ``("gradual", s, start=a*w, end=T-b*w, frequency=1)``.

    Raises:
      ConfigError: when the warm-ups leave no ramp.

    References:
      Sanh, Wolf & Rush, NeurIPS 2020 (``schedule_threshold``); Zhu & Gupta, arXiv 1710.01878.
    """
    start = int(round(initial_warmup * warmup_steps))
    end = int(round(total_steps - final_warmup * warmup_steps))
    if end <= start:
        raise ConfigError(f"cap schedule: {total_steps} steps leave no pruning ramp between the initial warm-up "
                          f"({start}) and the final one ({total_steps - end}); lower the warm-up or train longer")
    return start, end


def bank_bytes(num_examples: int, width: int, snapshot_slots: int, num_classes: int,
               bank_dtype: str = "float32", banks: tuple[str, ...] = BANKS) -> int:
    """Bytes of the banks: ``N * d * (pre + fine + K) * itemsize`` plus the teacher logits ``N * C * 4``."""
    views = ("pre" in banks) + ("fine" in banks) + (snapshot_slots if "snap" in banks else 0)
    itemsize = np.dtype(BANK_DTYPES[bank_dtype]).itemsize
    return int(num_examples) * int(width) * views * itemsize + int(num_examples) * int(num_classes) * 4


def check_bank_memory(needed: int, limit_mb: float, available: int) -> None:
    """Refuses banks that would not fit, before any work.

    Args:
      needed: bytes the banks need (:func:`bank_bytes`).
      limit_mb: the user's limit in MiB; 0 means half of ``available``.
      available: bytes of one device's memory (0: unknown, then only an explicit limit applies).

    Raises:
      ConfigError: naming the sizes and the options that shrink the banks.
    """
    limit = limit_mb * 2**20 if limit_mb > 0 else available / 2
    if limit and needed > limit:
        raise ConfigError(f"cap banks need {needed / 2**20:.1f} MiB but model.max_bank_mb allows "
                          f"{limit / 2**20:.1f} MiB; lower model.snapshot_slots, set model.bank_dtype=bfloat16, "
                          f"switch off a bank (model.use_pre/use_fine/use_snap) or raise model.max_bank_mb")


def check_label_maps(teacher: tuple[str, ...], student: tuple[str, ...], teacher_dataset: str,
                     student_dataset: str) -> None:
    """The teacher's class names must be the student's, in the same order (else KD and FiC mix classes).

    Raises:
      ConfigError: naming both label maps.
    """
    if tuple(teacher) != tuple(student):
        raise ConfigError(f"model.teacher_workdir: the teacher's labels ({teacher_dataset}: {list(teacher)}) "
                          f"differ from the student's ({student_dataset}: {list(student)}); CAP needs a teacher "
                          f"fine-tuned on the same label map")
