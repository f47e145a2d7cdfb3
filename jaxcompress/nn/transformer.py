"""Post-LN transformer blocks and a layer stack with cross-layer parameter sharing.

The block is the BERT/ALBERT one: ``h = LN(x + Attn(x))``, ``y = LN(h + FFN(h))``
with a GELU feed-forward layer. :func:`layer_stack` applies ``num_layers``
blocks under ``nn.scan`` (one compiled body however deep the stack is) and
decides, per sublayer, whether its parameters are shared across layers:

=============  ==================  ==================  =========================
``sharing``    attention params    feed-forward params  as in
=============  ==================  ==================  =========================
``none``       one set per layer   one set per layer    BERT
``all``        one set per group   one set per group    ALBERT (groups = 1)
``attention``  one set per group   one set per layer    ALBERT ablation
``ffn``        one set per layer   one set per group    ALBERT ablation
=============  ==================  ==================  =========================

ALBERT's hidden groups: the ``num_layers`` layer applications are split into
``num_groups`` contiguous runs; every layer of a run reuses the run's
parameters. Each layer application runs ``inner_group_num`` distinct blocks
(ALBERT's ``inner_group_num``), so the depth is ``num_layers * inner_group_num``.

How sharing maps onto ``nn.scan``: shared sublayers keep their parameters in
the ``params`` collection, broadcast over the scan (``variable_broadcast``);
per-layer sublayers are moved into a private ``layer_params`` collection with
``nn.map_variables`` and stacked by the scan (``variable_axes``, logical axis
``layers``). Around the whole stack a second ``nn.map_variables`` folds
``layer_params`` back into ``params``, so callers see one ordinary parameter
tree, e.g. for ``sharing="attention"``::

    layers/attention/query/kernel   [H, heads, head_dim]          shared
    layers/ffn/intermediate/kernel  [num_layers, H, I]            per layer

With ``num_groups > 1`` an outer scan over groups adds a leading
``layer_groups`` axis (``groups/layers/...``). With ``inner_group_num > 1`` the
body holds ``block_0 ... block_{K-1}``.

Shapes: inputs ``x [B, S, H]``, ``mask [B, S]`` (True where a token is real)
-> ``[B, S, H]``.

References:
  Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (the block);
  Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
  Language Understanding", NAACL 2019 (post-LN GELU encoder);
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (cross-layer sharing, hidden groups).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

SHARING_MODES: tuple[str, ...] = ("none", "all", "attention", "ffn")

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": functools.partial(nn.gelu, approximate=False),      # BERT: exact erf form
    "gelu_tanh": functools.partial(nn.gelu, approximate=True),  # ALBERT's original code ("gelu_new")
    "relu": nn.relu,
    "silu": nn.silu,
}

# Rematerialisation policies: what the backward pass may keep instead of
# recomputing ("none" keeps everything, i.e. no remat at all).
REMAT_POLICIES: dict[str, Callable[..., bool] | None] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}

# Activation layout: batch split over (data, fsdp) by the default rules.
HIDDEN_AXES = ("batch", "length", "embed")
_LAYER_COLLECTION = "layer_params"


@dataclasses.dataclass(frozen=True)
class StackSpec:
    """Hyper-parameters of a transformer layer stack (hashable, for Flax modules).

    Attributes:
      hidden_size: H, the residual width.
      num_heads: attention heads; must divide ``hidden_size``.
      intermediate_size: I, the feed-forward width.
      num_layers: L, layer applications (each runs ``inner_group_num`` blocks).
      sharing: one of :data:`SHARING_MODES`.
      num_groups: G, groups of shared parameters (divides ``num_layers``).
      inner_group_num: K, distinct blocks inside one layer application.
      activation: key of :data:`ACTIVATIONS`.
      dropout: dropout after each sublayer's output projection.
      attention_dropout: dropout on the attention probabilities.
      layer_norm_eps: LayerNorm epsilon.
      init_std: standard deviation of the normal kernel initialiser.
      remat: key of :data:`REMAT_POLICIES`.
      dtype: computation dtype (parameters stay float32).
      scan_unroll: layers per scan iteration (``lax.scan``'s ``unroll``): 1
        compiles one layer body; more trades compile time for cross-layer
        fusion.
      head_size: width of each attention head; 0 means ``hidden_size //
        num_heads`` (a model with pruned heads keeps its head width).
    """

    hidden_size: int
    num_heads: int
    intermediate_size: int
    num_layers: int
    sharing: str = "none"
    num_groups: int = 1
    inner_group_num: int = 1
    activation: str = "gelu"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    remat: str = "none"
    dtype: Any = jnp.float32
    scan_unroll: int = 1
    head_size: int = 0

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden_size // self.num_heads

    @property
    def groups(self) -> int:
        """Groups actually used: ``sharing="none"`` stacks every layer in one run."""
        return 1 if self.sharing == "none" else self.num_groups

    def shared(self, sublayer: str) -> bool:
        """Whether ``"attention"`` or ``"ffn"`` parameters are shared across layers."""
        return self.sharing in ("all", sublayer)


def _boxed(init: Callable[..., jax.Array], names: tuple[str | None, ...],
           salt: jax.Array | None) -> Callable[..., jax.Array]:
    """``init`` with logical axis names; ``salt`` folds a layer index into the key.

    Per-layer sublayers are initialised inside a scan whose ``params`` RNG is
    not split (it must stay loop-invariant for the shared parameters), so each
    layer folds its own index into the key to get distinct weights.
    """
    if salt is not None:
        base = init

        def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
            return base(jax.random.fold_in(key, salt), shape, dtype)

    return nn.with_logical_partitioning(init, names)


def _layer_norm(spec: StackSpec, salt: jax.Array | None, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=spec.layer_norm_eps, dtype=spec.dtype,
                        scale_init=_boxed(nn.initializers.ones_init(), ("embed",), salt),
                        bias_init=_boxed(nn.initializers.zeros_init(), ("embed",), salt), name=name)


def attention_weights_reference(q: jax.Array, k: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Softmax attention probabilities ``[B, N, T, S]`` from ``q [B, T, N, D]``, ``k [B, S, N, D]``."""
    logits = jnp.einsum("btnd,bsnd->bnts", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)


class HeadsDense(nn.Module):
    """``x [..., *in] · kernel [*in, *features] + bias [*features]``: ``nn.DenseGeneral``'s parameters.

    ``nn.DenseGeneral`` initialises a flat 2-D kernel and reshapes it through
    the logical-partitioning box, which applies the 3-D axis names to the 2-D
    array and fails when a mesh is active (the training loop initialises
    under one). This module creates the kernel at its final shape instead;
    the parameter names, shapes and (for normal initialisers) values are the
    same as DenseGeneral's.

    Shapes: ``x [..., *in]`` with ``len(in) = contract`` -> ``[..., *features]``.

    References:
      Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (per-head projections).
    """

    features: tuple[int, ...]
    contract: int
    kernel_init: Callable[..., jax.Array]
    bias_init: Callable[..., jax.Array]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, tuple(x.shape[-self.contract:]) + tuple(self.features))
        bias = self.param("bias", self.bias_init, tuple(self.features))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        axes = tuple(range(x.ndim - self.contract, x.ndim))
        y = jax.lax.dot_general(x, kernel, ((axes, tuple(range(self.contract))), ((), ())))
        return y + bias


class SelfAttention(nn.Module):
    """Multi-head self-attention sublayer with its residual and post-LayerNorm.

    ``LN(x + Dropout(W_o · softmax(q kᵀ / sqrt(d)) v))``; the attention itself
    goes through ``jax.nn.dot_product_attention`` (cuDNN flash attention on GPU
    where it applies). Only when attention-probability dropout is active in
    training does it fall back to an explicit softmax, which that dropout needs.

    Shapes: ``x [B, S, H]``, ``mask [B, S]`` bool -> ``[B, S, H]``.

    References:
      Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    spec: StackSpec
    deterministic: bool = True
    salt: jax.Array | None = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        spec = self.spec
        normal = nn.initializers.normal(spec.init_std)

        def project(name: str) -> jax.Array:
            dense = HeadsDense((spec.num_heads, spec.head_dim), contract=1, dtype=spec.dtype,
                               kernel_init=_boxed(normal, ("embed", "heads", "kv"), self.salt),
                               bias_init=_boxed(nn.initializers.zeros_init(), ("heads", "kv"), self.salt),
                               name=name)
            return nn.with_logical_constraint(dense(x), ("batch", "length", "heads", "kv"))

        q, k, v = project("query"), project("key"), project("value")
        pair_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, S]
        if spec.attention_dropout > 0.0 and not self.deterministic:
            probs = attention_weights_reference(q, k, pair_mask)
            probs = nn.Dropout(spec.attention_dropout, broadcast_dims=(), deterministic=False)(probs)
            context = jnp.einsum("bnts,bsnd->btnd", probs, v)
        else:
            context = jax.nn.dot_product_attention(q, k, v, mask=pair_mask)
        out = HeadsDense((spec.hidden_size,), contract=2, dtype=spec.dtype,
                         kernel_init=_boxed(normal, ("heads", "kv", "embed"), self.salt),
                         bias_init=_boxed(nn.initializers.zeros_init(), ("embed",), self.salt),
                         name="output")(context)
        out = nn.Dropout(spec.dropout)(out, deterministic=self.deterministic)
        y = _layer_norm(spec, self.salt, "norm")(out + x)
        return nn.with_logical_constraint(y, HIDDEN_AXES)


class FeedForward(nn.Module):
    """Position-wise feed-forward sublayer with residual and post-LayerNorm.

    ``LN(x + Dropout(W_2 · act(W_1 x + b_1) + b_2))``.

    Shapes: ``x [B, S, H]`` -> ``[B, S, H]``; the hidden activation is ``[B, S, I]``.

    References:
      Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    spec: StackSpec
    deterministic: bool = True
    salt: jax.Array | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        spec = self.spec
        normal = nn.initializers.normal(spec.init_std)
        h = nn.Dense(spec.intermediate_size, dtype=spec.dtype,
                     kernel_init=_boxed(normal, ("embed", "mlp"), self.salt),
                     bias_init=_boxed(nn.initializers.zeros_init(), ("mlp",), self.salt), name="intermediate")(x)
        h = nn.with_logical_constraint(ACTIVATIONS[spec.activation](h), ("batch", "length", "mlp"))
        out = nn.Dense(spec.hidden_size, dtype=spec.dtype,
                       kernel_init=_boxed(normal, ("mlp", "embed"), self.salt),
                       bias_init=_boxed(nn.initializers.zeros_init(), ("embed",), self.salt), name="output")(h)
        out = nn.Dropout(spec.dropout)(out, deterministic=self.deterministic)
        y = _layer_norm(spec, self.salt, "norm")(out + x)
        return nn.with_logical_constraint(y, HIDDEN_AXES)


class TransformerBlock(nn.Module):
    """One post-LN encoder block: attention sublayer, then feed-forward sublayer.

    Used on its own (an unshared, unscanned block) and as the reference the
    scanned stack is tested against.

    Shapes: ``x [B, S, H]``, ``mask [B, S]`` -> ``[B, S, H]``.

    References:
      Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers
      for Language Understanding", NAACL 2019.
    """

    spec: StackSpec
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        x = SelfAttention(self.spec, self.deterministic, name="attention")(x, mask)
        return FeedForward(self.spec, self.deterministic, name="ffn")(x)


def _swap(variables: dict[str, Any]) -> dict[str, Any]:
    """Exchanges ``params`` and ``layer_params`` (a per-layer sublayer's view)."""
    variables = dict(variables)
    params, layer = variables.get("params", {}), variables.get(_LAYER_COLLECTION, {})
    variables["params"], variables[_LAYER_COLLECTION] = layer, params
    return variables


_AttentionPerLayer = nn.map_variables(SelfAttention, ("params", _LAYER_COLLECTION), _swap, _swap, mutable=True)
_FeedForwardPerLayer = nn.map_variables(FeedForward, ("params", _LAYER_COLLECTION), _swap, _swap, mutable=True)


class _SharingBlock(nn.Module):
    """One block whose sublayers are shared or per-layer: a scan body.

    Shared sublayers are ordinary children (their ``params`` are broadcast by
    the scan); per-layer ones live in ``layer_params`` (stacked by the scan).
    """

    spec: StackSpec
    deterministic: bool = True
    inner: int = 0  # position inside the group (ALBERT's inner_group_num)

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None, layer_index: jax.Array) -> tuple[jax.Array, None]:
        spec = self.spec
        salt = layer_index * spec.inner_group_num + self.inner
        if spec.shared("attention"):
            attention = SelfAttention(spec, self.deterministic, name="attention")
        else:
            attention = _AttentionPerLayer(spec, self.deterministic, salt=salt, name="attention")
        if spec.shared("ffn"):
            ffn = FeedForward(spec, self.deterministic, name="ffn")
        else:
            ffn = _FeedForwardPerLayer(spec, self.deterministic, salt=salt, name="ffn")
        return ffn(attention(x, mask)), None


class _InnerGroup(nn.Module):
    """``inner_group_num`` distinct blocks run in sequence: the scan body when K > 1."""

    spec: StackSpec
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None, layer_index: jax.Array) -> tuple[jax.Array, None]:
        for k in range(self.spec.inner_group_num):
            x, _ = _SharingBlock(self.spec, self.deterministic, inner=k, name=f"block_{k}")(x, mask, layer_index)
        return x, None


def _scanned_repeats(spec: StackSpec) -> Any:
    """The body scanned over the layers of one group (shared params broadcast)."""
    body = _SharingBlock if spec.inner_group_num == 1 else _InnerGroup
    policy = REMAT_POLICIES[spec.remat]
    if spec.remat != "none":
        # prevent_cse=False is safe (and faster) inside scan.
        body = nn.remat(body, policy=policy, prevent_cse=False)
    return nn.scan(body, variable_broadcast="params", variable_axes={_LAYER_COLLECTION: 0},
                   split_rngs={"params": False, "dropout": True}, in_axes=(nn.broadcast, 0),
                   length=spec.num_layers // spec.groups, unroll=spec.scan_unroll,
                   metadata_params={nn.PARTITION_NAME: "layers"})


class _Group(nn.Module):
    """The layers of one group: the body of the outer scan over groups."""

    spec: StackSpec
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None, layer_index: jax.Array) -> tuple[jax.Array, None]:
        x, _ = _scanned_repeats(self.spec)(self.spec, self.deterministic, name="layers")(x, mask, layer_index)
        return x, None


class _Stack(nn.Module):
    spec: StackSpec
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        spec = self.spec
        groups, per_group = spec.groups, spec.num_layers // spec.groups
        layer_index = jnp.arange(spec.num_layers).reshape(groups, per_group)
        if groups == 1:
            x, _ = _scanned_repeats(spec)(spec, self.deterministic, name="layers")(x, mask, layer_index[0])
            return x
        outer = nn.scan(_Group, variable_axes={"params": 0, _LAYER_COLLECTION: 0},
                        split_rngs={"params": True, "dropout": True}, in_axes=(nn.broadcast, 0),
                        length=groups, metadata_params={nn.PARTITION_NAME: "layer_groups"})
        x, _ = outer(spec, self.deterministic, name="groups")(x, mask, layer_index)
        return x


def _partition(tree: Any, names: frozenset[str]) -> tuple[Any, Any]:
    """Splits a nested dict into (kept, moved): subtrees under a key in ``names`` move."""
    if not isinstance(tree, dict):
        return tree, None
    kept, moved = {}, {}
    for key, value in tree.items():
        if key in names:
            moved[key] = value
            continue
        k, m = _partition(value, names)
        kept[key] = k
        if m:
            moved[key] = m
    return kept, moved


def _merge(a: Any, b: Any) -> Any:
    """Deep union of two nested dicts with disjoint leaves."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b if b is not None else a
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if key in out else value
    return out


def _wrap_stack(per_layer: frozenset[str]) -> Any:
    """``_Stack`` seen through one ``params`` tree: ``layer_params`` folded in."""

    def split(variables: dict[str, Any]) -> dict[str, Any]:
        out = dict(variables)
        out["params"], out[_LAYER_COLLECTION] = _partition(variables.get("params", {}), per_layer)
        return out

    def merge(variables: dict[str, Any]) -> dict[str, Any]:
        out = dict(variables)
        layer = out.pop(_LAYER_COLLECTION, None) or {}
        out["params"] = _merge(out.get("params", {}), layer)
        return out

    return nn.map_variables(_Stack, ("params", _LAYER_COLLECTION), split, merge, mutable=True)


# One wrapped class per set of per-layer sublayers (the split depends on it).
_STACKS = {mode: _wrap_stack(frozenset(s for s in ("attention", "ffn") if mode not in ("all", s)))
           for mode in SHARING_MODES}


def check_spec(spec: StackSpec) -> None:
    """Raises ValueError for a spec the stack cannot run."""
    if spec.sharing not in SHARING_MODES:
        raise ValueError(f"sharing must be one of {', '.join(SHARING_MODES)}, got {spec.sharing!r}")
    if not spec.head_size and spec.hidden_size % spec.num_heads:
        raise ValueError(f"hidden_size {spec.hidden_size} is not divisible by num_heads {spec.num_heads}")
    if spec.num_layers % spec.groups:
        raise ValueError(f"num_layers {spec.num_layers} is not divisible by num_groups {spec.num_groups}")


def layer_stack(spec: StackSpec, deterministic: bool = True, name: str | None = None) -> nn.Module:
    """``num_layers`` post-LN blocks under ``nn.scan`` with cross-layer sharing.

    See the module docstring for the sharing modes and the parameter layout.

    Args:
      spec: the stack's hyper-parameters.
      deterministic: disables dropout (inference).
      name: the module name (its scope in the parameter tree).

    Returns:
      A Linen module called as ``stack(x [B, S, H], mask [B, S] bool | None)
      -> [B, S, H]`` (mask True = real token).

    References:
      Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
      Representations", ICLR 2020, sec. 3.1 (cross-layer parameter sharing).
    """
    check_spec(spec)
    return _STACKS[spec.sharing](spec, deterministic, name=name)
