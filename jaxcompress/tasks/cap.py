"""Contrastive pruning (CAP) as a task: any pruner of the loop plus the CAP loss over memory banks.

The train state's params are ``{"student", "banks"}``:

* ``student`` -- the text classifier being pruned (``model.encoder``; starts from the
  pre-trained encoder of ``text.init_from``, or from the teacher). The run's ``prune.*``
  options (magnitude, movement, soft movement, any schedule) prune it through the loop's
  optimiser wrapper; ``prune.include`` must select student weights only.
* ``banks`` -- frozen, fixed-size arrays over the training set, indexed by example id and
  sharded over the batch axes (``data`` x ``fsdp``): ``pre [N, 1, d]`` (PrC: the student
  as it starts, encoded at init), ``fine [N, 1, d]`` and ``teacher_logits [N, C]`` (FiC and
  the KD targets: the teacher, encoded at init), ``snap [N, K, d]`` with ``snap_filled [K]``
  (SnC: K preallocated slots, masked until filled).

The snapshot refresh runs inside the jitted step, so the step compiles once: at the
update of every step ``s = r * refresh_every`` (``r >= 1``; one epoch by default) the
optimiser wrapper (:meth:`CapTask.wrap_optimizer`) encodes the whole training set with
the student as it enters step ``s`` and writes the view into slot ``(r - 1) mod K``. The
view joins the candidates from step ``s + 1`` on (the update runs after step ``s``'s loss).
Banks are encoded in eval mode (``model.encode_dropout`` switches the reference's
dropout-on encoding back on).

Loss: ``w_ce CE + w_kd T^2 KL(teacher || student) + sum over banks (w_unsup L_unsup +
w_sup L_sup)`` (:mod:`jaxcompress.compress.cap`). The example id of a training record is
its position in the training split, recovered on the host from its text (identical texts
share the first id).

References:
  Xu et al., "From Dense to Sparse: Contrastive Pruning for Better Pre-trained Language
  Model Compression", AAAI 2022; Sanh, Wolf & Rush, "Movement Pruning", NeurIPS 2020.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress import cap as C
from jaxcompress.compress.distill import soft_kl
from jaxcompress.configlib import copy_config
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.tasks import _text
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.sharding import device_memory_bytes
from jaxcompress.train.task import TASKS, Batch, Metrics, Task, register_task

_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
#: Logical axes of the banks: examples split like a batch.
_BANK_AXES = ("batch", None, None)


def label_names(dataset: str, split: str, field: str, data_dir: str | None) -> tuple[str, ...]:
    """The ClassLabel names of ``field`` in a prepared dataset."""
    from jaxcompress.data import load_split

    feature = load_split(dataset, split, data_dir).info.features[field]
    return tuple(getattr(feature, "names", ()) or ())


def _text_key(first: str, second: str | None) -> str:
    return first if second is None else first + "\x00" + second


class CapOptState(NamedTuple):
    """State of the CAP optimiser wrapper: the inner optimiser's (student only) and the update count."""

    inner: Any
    count: jax.Array


@register_task("cap")
class CapTask(Task):
    """Fine-pruning a text classifier with the CAP loss (config: :class:`~jaxcompress.compress.cap.CapConfig`)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cap = config.model
        if not isinstance(cap, C.CapConfig):
            raise ConfigError(f"task 'cap' needs config.model to be a CapConfig, got {type(cap).__name__}")
        self.cap = cap
        data_dir = config.data.data_dir or None
        inner = copy_config(config)
        inner.model, inner.task = cap.encoder, cap.base_task
        if cap.student_init == "pretrained" and not config.text.init_from and not cap.student_from:
            raise ConfigError("model.student_init='pretrained' needs text.init_from: the pre-trained encoder's "
                              "work directory (or set model.student_init=teacher)")
        # With text.init_from the base task loads the pre-trained encoder: the student's start, and PrC's model.
        self.base = TASKS[cap.base_task](inner, data_info)
        self.num_classes = self.base.num_classes
        self.pooling = config.text.pooling

        teacher_dir = pathlib.Path(cap.teacher_workdir).expanduser()
        self.teacher_config = _teacher_config(teacher_dir)
        t = self.teacher_config
        check_prune_selection(config.prune)
        C.check_label_maps(label_names(t.data.name, t.data.train_split, t.text.label_field, t.data.data_dir or None),
                           label_names(config.data.name, config.data.train_split, config.text.label_field,
                                       data_dir), t.data.name, config.data.name)
        _text._check_same_tokenizer(teacher_dir.absolute(), inner, "config key 'model.teacher_workdir'")
        if t.model.hidden_size != cap.encoder.hidden_size:
            raise ConfigError(f"model.teacher_workdir: the teacher's width ({t.model.hidden_size}) differs from the "
                              f"student's ({cap.encoder.hidden_size}); CAP compares their representations")

        from jaxcompress.data import load_split

        source = load_split(config.data.name, config.data.train_split, data_dir)
        records = source.read(np.arange(len(source)))
        self.num_examples = len(source)
        self.refresh_every = cap.refresh_every or math.ceil(self.num_examples / config.data.batch_size)
        refreshes = max((config.steps - 1) // self.refresh_every, 0)
        self.slots = cap.snapshot_slots or max(refreshes, 1)
        C.check_bank_memory(C.bank_bytes(self.num_examples, cap.encoder.hidden_size, self.slots, self.num_classes,
                                         cap.bank_dtype, cap.banks), cap.max_bank_mb, device_memory_bytes())

        tokens = self.base.prepare_batch(records)
        self.tokens = {k: tokens[k] for k in _INPUTS}
        self.labels = tokens["label"]
        first = _text.decode(records[self.base.text_field])
        second = _text.decode(records[self.base.pair_field]) if self.base.pair_field else [None] * len(first)
        self.ids: dict[str, int] = {}
        for index, (a, b) in enumerate(zip(first, second)):
            self.ids.setdefault(_text_key(a, b), index)
        self.teacher_params = restore_params(teacher_dir, field="config key 'model.teacher_workdir'")
        self._student_values = (restore_params(cap.student_from, "student", field="config key 'model.student_from'")
                                if cap.student_from else self.teacher_params if cap.student_init == "teacher" else None)
        self._banks_from = (restore_params(cap.banks_from, "banks", field="config key 'model.banks_from'")
                            if cap.banks_from else None)
        self.unit_masks = _load_masks(cap.unit_masks_file) if cap.unit_masks_file else {}

    # ------------------------------------------------------------------ data

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = self.base.prepare_batch(raw)
        if "weight" in raw:  # evaluation: the student alone
            return batch
        first = _text.decode(raw[self.base.text_field])
        second = _text.decode(raw[self.base.pair_field]) if self.base.pair_field else [None] * len(first)
        try:
            batch["example_id"] = np.asarray([self.ids[_text_key(a, b)] for a, b in zip(first, second)], np.int32)
        except KeyError:
            raise DataError("task 'cap' trains on the training split it encoded into its banks; a training "
                            "record is not in it (was the dataset rebuilt during the run?)") from None
        return batch

    # ------------------------------------------------------------------ model

    def _forward(self, model_cfg: Any, pooling: str, params: Any, inputs: tuple, deterministic: bool,
                 rng: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """``(representation [B, d], logits [B, C])``: the pooler's output (or the masked mean) and the classifier's."""
        from jaxcompress.nn.albert import AlbertEncoder, ClassifierHead, masked_mean

        enc_rngs, head_rngs = ({}, {}) if rng is None else (
            {"dropout": jax.random.fold_in(rng, 0)}, {"dropout": jax.random.fold_in(rng, 1)})
        sequence, pooled = AlbertEncoder(model_cfg, deterministic).apply(
            {"params": params["encoder"]}, *inputs, rngs=enc_rngs)
        rep = masked_mean(sequence, inputs[2]) if pooling == "mean" else pooled
        logits = ClassifierHead(model_cfg, self.num_classes, deterministic).apply(
            {"params": params["classifier"]}, rep, rngs=head_rngs)
        return rep, logits.astype(jnp.float32)

    def _encode_all(self, model_cfg: Any, pooling: str, params: Any, rng: jax.Array | None) -> tuple[jax.Array, ...]:
        """Normalised representations ``[N, d]`` and logits ``[N, C]`` of the whole training split, in chunks."""
        chunk = min(self.cap.encode_batch, self.num_examples)
        count = math.ceil(self.num_examples / chunk)
        padded = {k: np.concatenate([v, np.zeros((count * chunk - len(v),) + v.shape[1:], v.dtype)])
                  .reshape((count, chunk) + v.shape[1:]) for k, v in self.tokens.items()}
        deterministic = rng is None

        def one(args: tuple) -> tuple[jax.Array, jax.Array]:
            index, ids, types, mask = args
            key = None if deterministic else jax.random.fold_in(rng, index)
            rep, logits = self._forward(model_cfg, pooling, params, (ids, types, mask), deterministic, key)
            return C.normalize(rep), logits

        reps, logits = jax.lax.map(one, (jnp.arange(count), *(jnp.asarray(padded[k]) for k in _INPUTS)))
        return (reps.reshape(count * chunk, -1)[:self.num_examples],
                logits.reshape(count * chunk, -1)[:self.num_examples])

    def _encode_student(self, params: Any, rng: jax.Array) -> jax.Array:
        key = rng if self.cap.encode_dropout else None
        return self._encode_all(self.cap.encoder, self.pooling, params, key)[0]

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        student = self.base.init(rng, {k: v for k, v in batch.items() if k != "example_id"})
        if self._student_values is not None:
            student = _replace_values(student, self._student_values)
        if self.unit_masks:
            student = _replace_values(student, self._apply_masks(nn.unbox(student)))
        encode_key = jax.random.fold_in(rng, 7) if self.cap.encode_dropout else None
        banks = self._continued_banks() if self._banks_from is not None else \
            self._fresh_banks(nn.unbox(student), encode_key)
        if self.cap.snapshot_at_start and self.cap.use_snap:
            # The next free slot (the earlier run's count is host data, so the slot is static).
            filled = self._banks_from["snap_filled"] if self._banks_from is not None else np.zeros(self.slots)
            slot = int(np.sum(np.asarray(filled) > 0.5)) % self.slots
            view = self._encode_all(self.cap.encoder, self.pooling, nn.unbox(student), encode_key)[0]
            banks["snap"] = banks["snap"].at[:, slot].set(view.astype(banks["snap"].dtype))
            banks["snap_filled"] = banks["snap_filled"].at[slot].set(1.0)
        banks = {k: nn.LogicallyPartitioned(v, _BANK_AXES[:v.ndim]) for k, v in banks.items()}
        return {"student": student, "banks": banks}

    def _fresh_banks(self, student: Any, key: jax.Array | None) -> dict[str, jax.Array]:
        """PrC from the pre-trained encoder (or the starting student), FiC and KD logits from the teacher."""
        dtype = C.BANK_DTYPES[self.cap.bank_dtype]
        t = self.teacher_config
        fine, teacher_logits = self._encode_all(t.model, t.text.pooling, jax.tree.map(jnp.asarray, self.teacher_params),
                                                None)
        d = self.cap.encoder.hidden_size
        pretrained = self.base._encoder
        pre_model = student if pretrained is None else {**student, "encoder": jax.tree.map(jnp.asarray, pretrained)}
        pre = (self._encode_all(self.cap.encoder, self.pooling, pre_model, key)[0] if self.cap.use_pre
               else jnp.zeros((self.num_examples, d)))
        return {"pre": pre[:, None].astype(dtype), "fine": fine[:, None].astype(dtype),
                "teacher_logits": teacher_logits, "snap": jnp.zeros((self.num_examples, self.slots, d), dtype),
                "snap_filled": jnp.zeros((self.slots,), jnp.float32)}

    def _continued_banks(self) -> dict[str, jax.Array]:
        """An earlier run's banks (``model.banks_from``), checked against this run's shapes."""
        prev = self._banks_from
        want = (self.num_examples, self.slots, self.cap.encoder.hidden_size)
        if tuple(prev["snap"].shape) != want:
            raise ConfigError(f"model.banks_from: its snapshot bank has shape {tuple(prev['snap'].shape)}, this run "
                              f"needs {want} (same training split, width and model.snapshot_slots)")
        return {k: jnp.asarray(v) for k, v in prev.items()}

    def _apply_masks(self, student: Any) -> Any:
        """``student`` with the structured masks' removed units set to zero."""
        from jaxcompress.compress.paths import map_with_path

        return map_with_path(lambda path, x: x * jnp.asarray(self.unit_masks[path], x.dtype)
                             if path in self.unit_masks else x, student)

    # ------------------------------------------------------------------ losses

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        cap = self.cap
        banks = jax.lax.stop_gradient(params["banks"])
        drop_key, extra_key = jax.random.split(rng)
        rep, logits = self._forward(cap.encoder, self.pooling, params["student"], tuple(batch[k] for k in _INPUTS),
                                    False, drop_key)
        labels, ids = batch["label"], batch["example_id"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        kd = cap.kd_temperature ** 2 * soft_kl(logits, banks["teacher_logits"][ids], cap.kd_temperature).mean()
        total = cap.w_ce * ce + cap.w_kd * kd
        metrics = {"ce": ce, "kd": kd}
        z = C.normalize(rep)
        all_labels = jnp.asarray(self.labels)
        for index, name in enumerate(cap.banks):
            filled = banks["snap_filled"] > 0.5 if name == "snap" else jnp.ones((1,), bool)
            term, parts = C.bank_term(z, ids, labels, banks[name], filled, all_labels,
                                      jax.random.fold_in(extra_key, index), extra=cap.extra_examples,
                                      tau=cap.temperature, w_unsup=cap.w_unsup, w_sup=cap.w_sup,
                                      normalization=cap.normalization)
            total = total + term
            metrics.update({f"{name}_unsup": parts["unsup"], f"{name}_sup": parts["sup"]})
        metrics.update(loss=total, accuracy=(logits.argmax(-1) == labels).mean())
        return total, metrics

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        return self.base.evaluate(params["student"], batch)

    # ------------------------------------------------------------------ optimiser

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """``tx`` on the student; the banks get zero updates except the snapshot refreshes."""
        every, slots, use_snap = self.refresh_every, self.slots, self.cap.use_snap

        def init(params: Any) -> CapOptState:
            return CapOptState(tx.init(params["student"]), jnp.zeros((), jnp.int32))

        def update(grads: Any, state: CapOptState, params: Any = None) -> tuple[Any, CapOptState]:
            if params is None:
                raise ValueError("the CAP optimiser needs params: call tx.update(grads, state, params)")
            updates, inner = tx.update(grads["student"], state.inner, params["student"])
            if self.unit_masks:  # removed units end every step at exactly zero
                from jaxcompress.compress.paths import map_with_path

                updates = map_with_path(lambda path, u, p: jnp.where(jnp.asarray(self.unit_masks[path]) > 0, u, -p)
                                        if path in self.unit_masks else u, updates, params["student"])
            banks = params["banks"]
            step = state.count

            def refresh() -> tuple[jax.Array, jax.Array]:
                view = self._encode_student(params["student"], jax.random.fold_in(jax.random.key(17), step))
                slot = (step // every - 1) % slots
                snap = banks["snap"].at[:, slot].set(view.astype(banks["snap"].dtype))
                return snap - banks["snap"], banks["snap_filled"].at[slot].set(1.0) - banks["snap_filled"]

            def keep() -> tuple[jax.Array, jax.Array]:
                return jnp.zeros_like(banks["snap"]), jnp.zeros_like(banks["snap_filled"])

            due = (step > 0) & (step % every == 0) if use_snap else jnp.zeros((), bool)
            d_snap, d_filled = jax.lax.cond(due, refresh, keep)
            bank_updates = {k: jnp.zeros_like(v) for k, v in banks.items()}
            bank_updates.update(snap=d_snap, snap_filled=d_filled)
            return {"student": updates, "banks": bank_updates}, CapOptState(inner, step + 1)

        return optax.GradientTransformation(init, update)

    def forward_for_flops(self):
        fn, inputs = self.base.forward_for_flops()
        return (lambda params, *xs: fn(params["student"], *xs)), inputs


def check_prune_selection(prune: Any) -> None:
    """The pruner must act on the student only (never on the frozen banks)."""
    if prune.method != "none" and not prune.include.startswith("student/") and "^student/" not in prune.include:
        raise ConfigError(f"prune.include = {prune.include!r} must select student weights only (start it with "
                          f"'student/', e.g. 'student/encoder/.*(query|key|value|out|wi|wo)'): the CAP banks "
                          f"are frozen")


def _teacher_config(workdir: pathlib.Path) -> Any:
    from jaxcompress.train.config import config_from_dict

    path = workdir / "config.json"
    if not path.is_file():
        raise ConfigError(f"model.teacher_workdir = {str(workdir)!r} is not a training work directory (no "
                          f"config.json); fine-tune the teacher first with `jaxcompress train`")
    return config_from_dict(json.loads(path.read_text()))


def _load_masks(path: str) -> dict[str, np.ndarray]:
    """0/1 masks by parameter path from an ``.npz`` (written by the structured CAP driver)."""
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"config key 'model.unit_masks_file' = {path!r} is not a file")
    with np.load(file) as data:
        return {key: np.asarray(data[key], np.float32) for key in data.files}


def _replace_values(boxed: Any, values: Any) -> Any:
    """``boxed`` params with every leaf's value taken from ``values`` (same tree, boxes kept)."""
    def put(box: Any, value: Any) -> Any:
        if isinstance(box, nn.Partitioned):
            return box.replace_boxed(jnp.asarray(value, box.value.dtype))
        return jnp.asarray(value, box.dtype)

    return jax.tree.map(put, boxed, values, is_leaf=lambda x: isinstance(x, nn.Partitioned))
