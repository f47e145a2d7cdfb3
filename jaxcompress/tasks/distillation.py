"""Knowledge distillation as a task: teacher and student in one jitted step on one mesh.

The train state's params are ``{"student", "projections", "teacher"}``:

* ``teacher`` — the trained teacher's params, restored once from
  ``model.teacher_workdir``, boxed with the teacher's logical axis names so
  the loop shards them on the same mesh as the student. They are frozen:
  the loss sees them through ``stop_gradient`` and the optimiser (see
  :meth:`DistillationTask.wrap_optimizer`) gives them zero updates and keeps
  no state for them.
* ``student`` — trained; random, copied from the teacher, or a compressed
  model (factored, separable, k-means) loaded from ``model.student_init``,
  which is how compressed models are fine-tuned by distillation.
* ``projections`` — one learned linear map per FitNets hidden pair, from the
  student's feature width to the teacher's.

Batch: ``input`` / ``label`` / ``weight`` are the student's and the
evaluation's; ``teacher_input`` is the teacher's own input (see
:mod:`jaxcompress.compress.distill`). Evaluation reports the student's loss
and accuracy and its top-1 agreement with the teacher.

References:
  Hinton, Vinyals & Dean, arXiv 1503.02531; Romero et al., ICLR 2015;
  Zagoruyko & Komodakis, ICLR 2017.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress import distill as D
from jaxcompress.compress.factored import factored_layers
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.nn.classifiers import build_classifier
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.task import Batch, Metrics, Task, register_task


def _is_box(x: Any) -> bool:
    return isinstance(x, nn.meta.AxisMetadata)


def _fill(boxed: Any, values: Any, field: str) -> Any:
    """``boxed`` (params with partitioning boxes) with its values replaced by ``values``.

    Leaves present in ``values`` but not in ``boxed`` (factors of a compressed
    student) are added without axis names (replicated).
    """
    flat_boxed = {path: leaf for path, leaf in _flat(boxed, is_leaf=_is_box)}
    flat_values = dict(_flat(values))
    out: dict[str, Any] = {}
    for path, value in flat_values.items():
        value = jnp.asarray(value)
        box = flat_boxed.get(path)
        if box is not None:
            expected = nn.unbox(box).shape
            if tuple(expected) != tuple(value.shape):
                raise ConfigError(f"{field}: parameter {path} has shape {tuple(value.shape)} but the model "
                                  f"expects {tuple(expected)}")
            out[path] = box.replace_boxed(value) if _is_box(box) else value
        else:
            out[path] = value
    import flax.traverse_util as traverse

    return traverse.unflatten_dict({tuple(p.split("/")): v for p, v in out.items()})


def _flat(tree: Any, is_leaf: Any = None) -> list[tuple[str, Any]]:
    from jaxcompress.compress.paths import path_str

    return [(path_str(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]]


@register_task("distill")
class DistillationTask(Task):
    """Student trained on the teacher's soft targets, hints and attention maps (config: ``DistillConfig``)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = config.model
        if not isinstance(cfg, D.DistillConfig):
            raise ConfigError(f"task 'distill' needs config.model to be a DistillConfig, got {type(cfg).__name__}")
        for key in ("num_classes", "input_key", "label_key"):
            if data_info.get(key) is None:
                raise DataError(f"dataset {config.data.name!r} cannot be used for distillation: it does not "
                                f"declare {key}")
        self.cfg = cfg
        self.input_key, self.label_key = data_info["input_key"], data_info["label_key"]
        self.input_shape = tuple(data_info["input_shape"])
        num_classes = int(data_info["num_classes"])
        self.teacher = build_classifier(cfg.teacher, num_classes, field="model.teacher")
        self.student = build_classifier(cfg.student, num_classes, field="model.student")
        self.teacher_params = restore_params(cfg.teacher_workdir, field="config key 'model.teacher_workdir'")
        self.student_values: Any = None
        self.assignments: Any = None
        if cfg.student_init == "teacher":
            self.student_values = self.teacher_params
        elif cfg.student_init:
            self.student_values, artifact = D.load_compressed_params(cfg.student_init)
            if cfg.tie_codebooks and any(c == "codebook" for c, _ in artifact.encodings.values()):
                from jaxcompress.compress.sharing import codebook_assignments

                self.assignments = codebook_assignments(artifact)
        self.hidden = D.parse_pairs(cfg.hidden_pairs)
        self.attention = D.parse_pairs(cfg.attention_pairs)
        self.student_taps = sorted({s for s, _ in self.hidden + self.attention})
        self.teacher_taps = sorted({t for _, t in self.hidden + self.attention})

    # ------------------------------------------------------------------ data

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        student_input = np.asarray(raw[self.input_key], np.float32)
        teacher_raw = raw.get(f"teacher_{self.input_key}", raw[self.input_key])
        batch = {"input": student_input, "label": np.asarray(raw[self.label_key], np.int32),
                 "teacher_input": np.asarray(teacher_raw, np.float32)}
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    # ------------------------------------------------------------------ model

    def _student(self, params: Any, x: jax.Array, **kwargs: Any) -> tuple[jax.Array, dict]:
        with factored_layers():  # no-op unless the student holds factors
            return D.capture(self.student, {"params": params}, x, self.student_taps, **kwargs)

    def _teacher(self, params: Any, x: jax.Array) -> tuple[jax.Array, dict]:
        return D.capture(self.teacher, {"params": jax.lax.stop_gradient(params)}, x, self.teacher_taps)

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        s_rng, p_rng = jax.random.split(rng)
        student = self.student.init(s_rng, batch["input"])["params"]
        if self.student_values is not None:
            student = _fill(student, self.student_values, "model.student_init")
        teacher = _fill(self.teacher.init(s_rng, batch["teacher_input"])["params"], self.teacher_params,
                        "model.teacher_workdir")
        _, s_feats = self._student(nn.unbox(student), batch["input"])
        _, t_feats = self._teacher(nn.unbox(teacher), batch["teacher_input"])
        projections = {}
        for i, (s_path, t_path) in enumerate(self.hidden):
            d_s, d_t = s_feats[s_path].shape[-1], t_feats[t_path].shape[-1]
            if s_feats[s_path].shape[:-1] != t_feats[t_path].shape[:-1]:
                raise ConfigError(f"model.hidden_pairs {s_path}:{t_path}: feature shapes "
                                  f"{s_feats[s_path].shape} and {t_feats[t_path].shape} differ before the "
                                  f"channel axis")
            projections[f"pair_{i}"] = nn.Dense(d_t, name=None).init(jax.random.fold_in(p_rng, i),
                                                                      jnp.zeros((1, d_s)))["params"]
        for s_path, t_path in self.attention:
            if s_feats[s_path].shape[:-1] != t_feats[t_path].shape[:-1]:
                raise ConfigError(f"model.attention_pairs {s_path}:{t_path}: spatial shapes "
                                  f"{s_feats[s_path].shape[:-1]} and {t_feats[t_path].shape[:-1]} differ")
        return {"student": student, "projections": projections, "teacher": teacher}

    # ------------------------------------------------------------------ losses

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        cfg = self.cfg
        t_logits, t_feats = self._teacher(params["teacher"], batch["teacher_input"])
        s_logits, s_feats = self._student(params["student"], batch["input"], train=True, rngs={"dropout": rng})
        total, parts = D.hinton_loss(s_logits, t_logits, batch["label"], temperature=cfg.temperature,
                                     kd_weight=cfg.kd_weight, alpha=cfg.alpha)
        metrics = dict(parts)
        if self.hidden:
            hidden = jnp.zeros(())
            for i, (s_path, t_path) in enumerate(self.hidden):
                projected = D.project(params["projections"][f"pair_{i}"], s_feats[s_path])
                distance = D.hidden_mse if cfg.hidden_loss == "mse" else D.cosine_distance
                hidden += distance(projected, t_feats[t_path]).mean()
            total += cfg.hidden_weight * hidden
            metrics["hidden"] = hidden
        if self.attention:
            attention = sum(D.attention_transfer(s_feats[s], t_feats[t]).mean() for s, t in self.attention)
            total += cfg.attention_weight * attention
            metrics["attention"] = attention
        metrics.update(loss=total, accuracy=(s_logits.argmax(-1) == batch["label"]).mean(),
                       agreement=(s_logits.argmax(-1) == t_logits.argmax(-1)).mean())
        return total, metrics

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        with factored_layers():
            s_logits = self.student.apply({"params": params["student"]}, batch["input"])
        t_logits = self.teacher.apply({"params": params["teacher"]}, batch["teacher_input"])
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(s_logits, batch["label"]),
                "accuracy": (s_logits.argmax(-1) == batch["label"]).astype(jnp.float32),
                "agreement": (s_logits.argmax(-1) == t_logits.argmax(-1)).astype(jnp.float32)}

    # ------------------------------------------------------------------ optimiser

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """``tx`` on ``student`` and ``projections``; zero updates and no state for ``teacher``.

        With a k-means ``student_init`` (and ``tie_codebooks``), the student's
        clustered kernels train their shared centroids only
        (:func:`jaxcompress.compress.sharing.tie_to_centroids`).
        """
        inner = tx
        if self.assignments is not None:
            from jaxcompress.compress.sharing import tie_to_centroids

            assignments, ks = self.assignments
            inner = tie_to_centroids(tx, {f"student/{p}": a for p, a in assignments.items()},
                                     {f"student/{p}": k for p, k in ks.items()})

        def trainable(tree: Any) -> Any:
            return {"student": tree["student"], "projections": tree["projections"]}

        def init(params: Any) -> Any:
            return inner.init(trainable(params))

        def update(grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
            updates, state = inner.update(trainable(grads), state, None if params is None else trainable(params))
            return {**updates, "teacher": jax.tree.map(jnp.zeros_like, grads["teacher"])}, state

        return optax.GradientTransformation(init, update)

    def forward_for_flops(self):
        x = jnp.zeros((1,) + self.input_shape, jnp.float32)

        def forward(params: Any, inputs: jax.Array) -> jax.Array:
            with factored_layers():
                return self.student.apply({"params": params["student"]}, inputs)

        return forward, (x,)
