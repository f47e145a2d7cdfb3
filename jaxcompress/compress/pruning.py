"""Unstructured and N:M pruning as an optax wrapper, and as a one-shot compression step.

``wrap(tx, pruner)`` returns an optax transformation whose state carries the
masks (and movement scores) next to the inner optimiser's state, so pruning
runs inside the core loop's jitted step on any mesh and is checkpointed with
it. After every update the pruned weights are exactly zero: the wrapper turns
their update into ``-w``.

Example::

    pruner = Pruner(method="magnitude", sparsity=0.9, schedule="gradual", end_step=1000)
    tx = wrap(optax.adamw(1e-3), pruner)

References:
  Zhu & Gupta, "To prune, or not to prune", arXiv 1710.01878; Sanh, Wolf &
  Rush, "Movement Pruning", NeurIPS 2020; Han et al., NeurIPS 2015;
  Mishra et al., arXiv 2104.08378 (N:M).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress import masks as M
from jaxcompress.compress.artifact import Compressed, register_decoder
from jaxcompress.compress.methods import register_method
from jaxcompress.compress.paths import map_with_path, select
from jaxcompress.compress.schedules import KINDS, Schedule
from jaxcompress.compress.storage import bitmask, dense
from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError

SCOPES = ("layerwise", "global")


@dataclasses.dataclass
class Pruner:
    """What to prune, how to score it, and when: the ``prune.*`` options of a run.

    Attributes:
      method: ``none`` (dense), ``magnitude``, ``random``, ``saliency``
        (|w * grad|), ``movement`` (accumulated ``-grad * w``, top-k) or
        ``soft_movement`` (accumulated scores above ``threshold``; sparsity
        follows from the scores and an L1 pull ``soft_l1``, not a target).
      sparsity: final fraction of zeros in the selected leaves.
      scope: ``layerwise`` (each leaf exactly at the target) or ``global``
        (one threshold over all selected leaves).
      schedule, start_step, end_step, frequency, rounds: when masks change
        (see :class:`~jaxcompress.compress.schedules.Schedule`);
        ``end_step=-1`` means 3/4 of training and needs ``total_steps``.
      n, m: N:M structured sparsity along the input dimension when ``m > 0``
        (``sparsity`` is then ignored: it is ``1 - n/m``).
      include, exclude: regexes over parameter paths (``a|b`` for several).
      seed: randomness of ``random`` scores.

    References:
      Zhu & Gupta, arXiv 1710.01878; Sanh, Wolf & Rush, NeurIPS 2020.
    """

    method: str = option("none", help="score", choices=("none",) + M.SCORES)
    sparsity: float = option(0.5, help="final fraction of zeros in the selected leaves", min=0.0, max=0.999)
    scope: str = option("layerwise", help="one target per leaf or one global threshold", choices=SCOPES)
    schedule: str = option("gradual", help="when masks change", choices=KINDS)
    start_step: int = option(0, help="first mask update", min=0)
    end_step: int = option(-1, help="last mask update (-1: 3/4 of training)", min=-1)
    frequency: int = option(100, help="gradual: steps between mask updates", min=1)
    rounds: int = option(3, help="iterative: pruning rounds", min=1)
    n: int = option(0, help="N of N:M sparsity (with m > 0)", min=0)
    m: int = option(0, help="M of N:M sparsity; 0 disables", min=0)
    include: str = option(".*", help="regex over parameter paths to prune")
    exclude: str = option("", help="regex over parameter paths never to prune")
    seed: int = option(0, help="random: seed of the scores", min=0)
    threshold: float = option(0.0, help="soft_movement: keep scores >= threshold")
    soft_l1: float = option(0.0, help="soft_movement: L1 pull on sigmoid(scores)", min=0.0)

    def __post_init__(self) -> None:
        self.validate("prune.")

    def validate(self, prefix: str) -> None:
        if self.method != "none" and self.method not in M.SCORES:
            raise ConfigError(f"{prefix}method must be one of none, {', '.join(M.SCORES)}, got {self.method!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"{prefix}scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.m and not 0 < self.n < self.m:
            raise ConfigError(f"config keys '{prefix}n' and '{prefix}m' need 0 < n < m, got {self.n}:{self.m}")

    @property
    def uses_scores(self) -> bool:
        return self.method in ("movement", "soft_movement")

    def resolved(self, total_steps: int | None) -> Pruner:
        """A copy with ``end_step=-1`` replaced by 3/4 of ``total_steps``."""
        if self.end_step >= 0 or self.schedule == "one_shot":
            return dataclasses.replace(self)
        if total_steps is None:
            raise ConfigError("prune.end_step=-1 (3/4 of training) needs the run's total steps: "
                              "pass total_steps or set end_step")
        return dataclasses.replace(self, end_step=max(int(0.75 * total_steps), self.start_step + 1))

    def sparsity_schedule(self) -> Schedule:
        """The target-sparsity schedule (``end_step`` must be resolved)."""
        end = max(self.end_step, 0)
        return Schedule(self.schedule, self.sparsity, self.start_step, end, self.frequency, self.rounds)

    def masks_for(self, scores: Any, target: jax.Array) -> Any:
        """Masks from scores at sparsity ``target`` (N:M and soft movement ignore it)."""
        if self.m:
            return M.tree_map_masked(
                lambda _, s: M.n_m_mask(s, self.n, self.m, axis=-2 if s.ndim >= 2 else 0), scores, scores)
        if self.method == "soft_movement":
            return M.tree_map_masked(lambda _, s: s >= self.threshold, scores, scores)
        if self.scope == "global":
            return M.global_masks(scores, target)
        return M.layerwise_masks(scores, target)

    def rules(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``include`` and ``exclude`` as regex tuples ('' means none)."""
        return _as_rules(self.include), _as_rules(self.exclude)


class PruneState(NamedTuple):
    """Optimiser state of :func:`wrap`: masks and scores mirror the params (None: not pruned).

    ``shadow`` (soft movement only, else None) holds the last value of every pruned weight: the
    stored weight is zero while masked, but soft movement scores it with its dense value and
    gives it back when its score rises above the threshold again.
    """

    inner: Any
    masks: Any
    scores: Any
    count: jax.Array
    shadow: Any = None


def wrap(tx: optax.GradientTransformation, pruner: Pruner,
         total_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Adds masks, scores and a schedule to ``tx``; pruned weights stay exactly zero.

    ``total_steps`` resolves ``pruner.end_step=-1``; the pruner is copied, so
    changing it afterwards does not change the wrapper.
    """
    if pruner.method == "none":
        raise ConfigError("prune.method is 'none': choose a score to prune with")
    pruner = pruner.resolved(total_steps)
    schedule = pruner.sparsity_schedule()
    include, exclude = pruner.rules()
    inner = optax.with_extra_args_support(tx)
    soft = pruner.method == "soft_movement"

    def init(params: Any) -> PruneState:
        selection = select(params, include, exclude, field="prune.include")
        masks = M.ones_like_selected(params, selection)
        scores = (M.tree_map_masked(lambda _, p: jnp.zeros(p.shape, jnp.float32), masks, params)
                  if pruner.uses_scores else None)
        shadow = M.tree_map_masked(lambda _, p: p, masks, params) if soft else None
        return PruneState(inner.init(params), masks, scores, jnp.zeros((), jnp.int32), shadow)

    def update(grads: Any, state: PruneState, params: Any = None, **extra: Any) -> tuple[Any, PruneState]:
        if params is None:
            raise ValueError("the pruning wrapper needs params: call tx.update(grads, state, params)")
        updates, inner_state = inner.update(grads, state.inner, params, **extra)
        scores = state.scores
        # The dense weights W: the stored ones, and for soft movement the shadow values of the masked ones.
        dense = (M.tree_map_masked(lambda m, p, w: jnp.where(m, p, w), state.masks, params, state.shadow)
                 if soft else params)
        if pruner.uses_scores:
            # dL/dS under a straight-through mask is dL/dW' * W; descending it
            # accumulates -grad * w (movement), minus soft movement's L1 pull.
            def accumulate(_, s, g, w):
                pull = pruner.soft_l1 * jax.nn.sigmoid(s) * (1 - jax.nn.sigmoid(s))
                return s - g.astype(jnp.float32) * w.astype(jnp.float32) - pull

            scores = M.tree_map_masked(accumulate, state.masks, scores, grads, dense)

        def recompute() -> Any:
            if pruner.method == "magnitude":  # of the weights this update produces
                current = M.magnitude_scores(optax.apply_updates(params, updates), state.masks)
            elif pruner.method == "random":
                current = M.random_scores(params, state.masks,
                                          jax.random.fold_in(jax.random.key(pruner.seed), state.count))
            elif pruner.method == "saliency":
                current = M.saliency_scores(params, grads, state.masks)
            else:
                current = scores
            return pruner.masks_for(current, schedule.target(state.count))

        masks = jax.lax.cond(schedule.is_update(state.count) | (pruner.method == "soft_movement"),
                             recompute, lambda: state.masks)
        # Pruned weights end the step at exactly zero.
        updates = jax.tree.map(lambda u, p, m: u if m is None else jnp.where(m, u, -p),
                               updates, params, masks, is_leaf=lambda x: x is None)
        shadow = None
        if soft:
            # A weight unmasked this step comes back at its shadow value; masked ones keep theirs.
            updates = jax.tree.map(
                lambda u, p, old, new, w: u if new is None else jnp.where(new & ~old, w - p, u),
                updates, params, state.masks, masks, dense, is_leaf=lambda x: x is None)
            shadow = dense
        return updates, PruneState(inner_state, masks, scores, state.count + 1, shadow)

    return optax.GradientTransformationExtraArgs(init, update)


def find_prune_state(opt_state: Any) -> PruneState | None:
    """The :class:`PruneState` inside an optimiser state, if any."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, PruneState))
             if isinstance(s, PruneState)]
    return found[0] if found else None


# ----------------------------------------------------------------------------
# One-shot pruning of a trained model (``jaxcompress compress --method prune``)


@register_decoder("bitmask")
def _decode_bitmask(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    keep = np.unpackbits(parts["bits"], count=size).astype(bool)
    out = np.zeros(size, parts["values"].dtype)
    out[keep] = parts["values"]
    return out.reshape(shape)


def encode_sparse(path: str, value: np.ndarray) -> tuple[Any, tuple[str, dict[str, np.ndarray]]]:
    """The cheaper of dense and bitmask-sparse storage for one leaf, with its encoding."""
    as_bitmask = bitmask(path, value)
    as_dense = dense(path, value)
    if as_bitmask.total_bytes < as_dense.total_bytes:
        flat = value.ravel()
        return as_bitmask, ("bitmask", {"bits": np.packbits(flat != 0), "values": flat[flat != 0]})
    return as_dense, ("dense", {"values": value})


def prune_params(params: Any, pruner: Pruner, grads: Any | None = None) -> tuple[Any, Any]:
    """One-shot: masks at ``pruner.sparsity`` (whatever its schedule), and the masked params."""
    include, exclude = pruner.rules()
    selection = select(params, include, exclude, field="include")
    masks = M.ones_like_selected(params, selection)
    if pruner.method == "magnitude":
        scores = M.magnitude_scores(params, masks)
    elif pruner.method == "random":
        scores = M.random_scores(params, masks, jax.random.key(pruner.seed))
    elif pruner.method == "saliency":
        if grads is None:
            raise ConfigError("saliency pruning needs gradients; use magnitude or random for one-shot pruning")
        scores = M.saliency_scores(params, grads, masks)
    else:
        raise ConfigError(f"{pruner.method} pruning learns scores during training: use it through "
                          f"`jaxcompress train ... --set prune.method={pruner.method}`")
    masks = pruner.masks_for(scores, jnp.asarray(pruner.sparsity, jnp.float32))
    return masks, M.apply_masks(params, masks)


@register_method("prune")
def prune_step(artifact: Compressed, options: dict[str, Any]) -> Compressed:
    """Options: method (magnitude|random), sparsity, scope, include, exclude, n, m, seed."""
    allowed = {"method", "sparsity", "scope", "include", "exclude", "n", "m", "seed"}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"unknown prune option {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}")
    sparsity = float(options.get("sparsity", 0.5))
    M.check_sparsity(sparsity, "prune.sparsity")
    pruner = Pruner(method=options.get("method", "magnitude"), sparsity=sparsity, schedule="one_shot",
                    scope=options.get("scope", "layerwise"), include=_joined(options.get("include", ".*")),
                    exclude=_joined(options.get("exclude", "")), n=int(options.get("n", 0)),
                    m=int(options.get("m", 0)), seed=int(options.get("seed", 0)))
    masks, pruned = prune_params(jax.tree.map(jnp.asarray, artifact.params), pruner)
    pruned = jax.tree.map(np.asarray, pruned)
    updates = {}
    for (path, leaf), mask in zip(_flat(pruned), jax.tree.leaves(masks, is_leaf=lambda x: x is None)):
        if mask is not None:
            updates[path] = encode_sparse(path, leaf)
    include, exclude = pruner.rules()
    step = {"method": "prune", "score": pruner.method, "sparsity": sparsity, "scope": pruner.scope,
            "n": pruner.n, "m": pruner.m, "include": list(include), "exclude": list(exclude)}
    return artifact.with_leaves(step, pruned, updates)


def _flat(tree: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    map_with_path(lambda path, leaf: out.append((path, leaf)), tree)
    return out


def _as_rules(value: str) -> tuple[str, ...]:
    """One regex (use ``a|b`` for alternatives); '' means none."""
    return (value,) if value else ()


def _joined(value: Any) -> str:
    """A regex string from one regex or a sequence of alternatives."""
    return value if isinstance(value, str) else "|".join(f"(?:{rule})" for rule in value)
