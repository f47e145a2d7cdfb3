"""Knowledge distillation: losses, feature taps, and the config of the ``distill`` task.

Losses (pure, jittable; ``[B]`` per-example values unless noted):

* :func:`soft_kl` / :func:`hinton_loss` — logit KD with temperature:
  ``kd_weight * T^2 * KL(softmax(t/T) || softmax(s/T)) + alpha * CE(s, y)``.
  The ``T^2`` keeps the soft-target gradients on the scale of the hard-label
  ones when T changes (Hinton et al., sec. 2).
* :func:`hidden_mse` / :func:`cosine_distance` — hidden-state transfer
  through a learned linear projection of the student's features to the
  teacher's width (FitNets hints; widths may differ).
* :func:`attention_map` / :func:`attention_transfer` — activation-based
  attention transfer: ``|| Q_s/||Q_s|| - Q_t/||Q_t|| ||_2`` with
  ``Q = mean_c F_c^2`` over the channel (last) axis of a feature map.

Features are tapped with Flax's ``capture_intermediates`` (the output of
``__call__`` of the module at a given path, e.g. ``conv_1``), so models need
no change (:func:`capture`).

Batch layout of the ``distill`` task (see :mod:`jaxcompress.tasks.distillation`):
``input`` and ``label`` are the student's, ``teacher_input`` the teacher's.
They are separate keys so a teacher with its own tokenizer or vocabulary
reads its own ids; a dataset that has a ``teacher_<input feature>`` feature
supplies them, otherwise the student's input is copied.

References:
  Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
  arXiv 1503.02531; Romero et al., "FitNets: Hints for Thin Deep Nets",
  ICLR 2015; Zagoruyko & Komodakis, "Paying More Attention to Attention",
  ICLR 2017; Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import CheckpointError, ConfigError
from jaxcompress.nn.cnn import CNNConfig

# ----------------------------------------------------------------------------
# Config


@dataclasses.dataclass
class DistillConfig:
    """Teacher, student and loss weights of the ``distill`` task (``Config.model`` of a distillation run)."""

    teacher: Any = option(default_factory=CNNConfig, help="model config of the teacher (MLP or CNN)")
    student: Any = option(default_factory=lambda: CNNConfig(channels=(4, 8), hidden_size=16),
                          help="model config of the student (MLP or CNN)")
    teacher_workdir: str = option("", help="work directory of the trained teacher (its newest checkpoint)")
    student_init: str = option("", help="'' random, 'teacher' (copy its params), or a saved compressed model dir")
    temperature: float = option(4.0, help="softmax temperature T of the soft targets", min=0.0, min_exclusive=True)
    kd_weight: float = option(1.0, help="weight of T^2 * KL(teacher || student)", min=0.0)
    alpha: float = option(0.5, help="weight of the hard-label cross-entropy", min=0.0)
    hidden_pairs: tuple[str, ...] = option((), help="FitNets taps 'student_module:teacher_module'")
    hidden_loss: str = option("mse", help="hidden-state distance", choices=("mse", "cosine"))
    hidden_weight: float = option(0.0, help="weight of the hidden-state loss", min=0.0)
    attention_pairs: tuple[str, ...] = option((), help="attention-transfer taps 'student_module:teacher_module'")
    attention_weight: float = option(0.0, help="weight of the attention-transfer loss", min=0.0)
    tie_codebooks: bool = option(True, help="with a k-means student_init: train shared centroids only")

    def validate(self, prefix: str) -> None:
        if not self.teacher_workdir:
            raise ConfigError(f"config key '{prefix}teacher_workdir' must name the trained teacher's work "
                              f"directory (train it first with `jaxcompress train`)")
        for key in ("hidden_pairs", "attention_pairs"):
            for pair in getattr(self, key):
                if pair.count(":") != 1 or not all(pair.split(":")):
                    raise ConfigError(f"config key '{prefix}{key}' entries must look like "
                                      f"'student_module:teacher_module'; got {pair!r}")
        if self.hidden_weight and not self.hidden_pairs:
            raise ConfigError(f"config key '{prefix}hidden_weight' > 0 needs '{prefix}hidden_pairs'")
        if self.attention_weight and not self.attention_pairs:
            raise ConfigError(f"config key '{prefix}attention_weight' > 0 needs '{prefix}attention_pairs'")


def parse_pairs(pairs: Sequence[str]) -> list[tuple[str, str]]:
    return [tuple(p.split(":")) for p in pairs]  # type: ignore[misc]


# ----------------------------------------------------------------------------
# Losses


def soft_kl(student_logits: jax.Array, teacher_logits: jax.Array, temperature: float) -> jax.Array:
    """``KL(softmax(t/T) || softmax(s/T))`` per example ``[B]`` (0 when the logits agree)."""
    log_p_t = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    log_p_s = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    return jnp.sum(jnp.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)


def hinton_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array | None, *,
                temperature: float, kd_weight: float = 1.0, alpha: float = 0.0) -> tuple[jax.Array, dict]:
    """``kd_weight * T^2 * mean KL + alpha * mean CE``; returns ``(scalar, {"kd", "ce"})``.

    References: Hinton, Vinyals & Dean, arXiv 1503.02531.
    """
    kd = temperature ** 2 * soft_kl(student_logits, teacher_logits, temperature).mean()
    ce = jnp.zeros(())
    if labels is not None:
        log_p = jax.nn.log_softmax(student_logits, axis=-1)
        ce = -jnp.take_along_axis(log_p, labels[..., None].astype(jnp.int32), axis=-1)[..., 0].mean()
    return kd_weight * kd + alpha * ce, {"kd": kd, "ce": ce}


def project(projection: dict[str, jax.Array], features: jax.Array) -> jax.Array:
    """A learned linear map of the channel (last) axis: ``[..., d_s] -> [..., d_t]``."""
    return features @ projection["kernel"] + projection["bias"]


def hidden_mse(student_projected: jax.Array, teacher_features: jax.Array) -> jax.Array:
    """Mean squared difference per example ``[B]`` (FitNets hint loss)."""
    diff = (student_projected - teacher_features).reshape(student_projected.shape[0], -1)
    return jnp.mean(diff ** 2, axis=-1)


def cosine_distance(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``1 - cos(a, b)`` over the last axis, averaged over other non-batch axes: ``[B]``."""
    cos = jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + eps)
    return jnp.mean((1.0 - cos).reshape(a.shape[0], -1), axis=-1)


def attention_map(features: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``Q / ||Q||_2`` with ``Q = mean_c F_c^2``: ``[B, ..., C] -> [B, prod(...)]``.

    References: Zagoruyko & Komodakis, ICLR 2017 (p = 2).
    """
    q = jnp.mean(features.astype(jnp.float32) ** 2, axis=-1).reshape(features.shape[0], -1)
    return q / (jnp.linalg.norm(q, axis=-1, keepdims=True) + eps)


def attention_transfer(student_features: jax.Array, teacher_features: jax.Array) -> jax.Array:
    """``|| attention_map(s) - attention_map(t) ||_2`` per example ``[B]`` (same spatial size)."""
    return jnp.linalg.norm(attention_map(student_features) - attention_map(teacher_features), axis=-1)


# ----------------------------------------------------------------------------
# Feature taps and loading


def capture(model: Any, variables: dict[str, Any], inputs: Any, paths: Sequence[str],
            **kwargs: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``model.apply`` plus the ``__call__`` outputs of the modules at ``paths``.

    Returns:
      ``(output, {path: feature})``.

    Raises:
      ConfigError: if a path names no module (listing the module paths there are).
    """
    if not paths:
        return model.apply(variables, inputs, **kwargs), {}
    wanted = set(paths)

    def keep(module: Any, method: str) -> bool:
        return method == "__call__" and "/".join(module.path) in wanted

    out, state = model.apply(variables, inputs, capture_intermediates=keep, mutable=["intermediates"], **kwargs)
    found = {}
    for key_path, value in jax.tree_util.tree_flatten_with_path(
            state.get("intermediates", {}), is_leaf=lambda x: isinstance(x, tuple))[0]:
        names = [str(getattr(k, "key", k)) for k in key_path]
        if names and names[-1] == "__call__":
            found["/".join(names[:-1])] = value[0]
    missing = wanted - set(found)
    if missing:
        raise ConfigError(f"feature tap {sorted(missing)[0]!r} names no module; module paths are: "
                          f"{', '.join(module_paths(model, variables, inputs))}")
    return out, found


def module_paths(model: Any, variables: dict[str, Any], inputs: Any) -> list[str]:
    """Paths of every submodule called in a forward pass."""
    _, state = model.apply(variables, inputs, capture_intermediates=True, mutable=["intermediates"])
    paths = []
    for key_path, _ in jax.tree_util.tree_flatten_with_path(state.get("intermediates", {}),
                                                            is_leaf=lambda x: isinstance(x, tuple))[0]:
        names = [str(getattr(k, "key", k)) for k in key_path]
        if len(names) > 1 and names[-1] == "__call__":
            paths.append("/".join(names[:-1]))
    return paths


def load_compressed_params(directory: str | pathlib.Path) -> tuple[Any, Any]:
    """``(params, artifact)`` of a model saved with ``Compressed.save`` (structure from its own index)."""
    import json

    from jaxcompress.compress.artifact import Compressed

    directory = pathlib.Path(directory)
    try:
        order = json.loads((directory / "compressed.json").read_text())["order"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{directory} is not a saved compressed model: {exc}") from None
    skeleton: dict[str, Any] = {}
    for path in order:
        node = skeleton
        *parents, leaf = path.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = 0
    artifact = Compressed.load(directory, skeleton)
    return artifact.params, artifact
