"""The scanned layer stack: sharing modes, parameter trees, and numerics against
independent references (a Python loop of single blocks, a NumPy attention)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.nn.transformer import (
    REMAT_POLICIES,
    SelfAttention,
    StackSpec,
    TransformerBlock,
    attention_weights_reference,
    layer_stack,
)

H, HEADS, I, L = 16, 4, 24, 4


def _spec(sharing: str, groups: int = 1, inner: int = 1, **kw) -> StackSpec:
    return StackSpec(hidden_size=H, num_heads=HEADS, intermediate_size=I, num_layers=L, sharing=sharing,
                     num_groups=groups, inner_group_num=inner, **kw)


def _inputs(batch: int = 2, length: int = 6):
    x = jax.random.normal(jax.random.key(7), (batch, length, H))
    mask = np.ones((batch, length), bool)
    mask[0, 4:] = False  # a padded sequence
    return x, jnp.asarray(mask)


def _random_params(module, *args, seed: int = 0):
    """Random parameters of ``module``'s shapes (no init compile): tests need values, not the initialiser."""
    shapes = nn.unbox(jax.eval_shape(module.init, jax.random.key(0), *args)["params"])
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(np.float32), shapes)


def _count(tree) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


ATTN = 4 * (H * H + H) + 2 * H          # Q, K, V, O with biases + LayerNorm
FFN = (H * I + I) + (I * H + H) + 2 * H  # two dense layers + LayerNorm

# (sharing, groups G, inner K) -> (attention copies, ffn copies), from the
# definition: a shared sublayer has G*K copies, a per-layer one L*K.
CASES = {
    ("none", 1, 1): (L, L), ("all", 1, 1): (1, 1), ("attention", 1, 1): (1, L), ("ffn", 1, 1): (L, 1),
    ("all", 2, 1): (2, 2), ("all", 1, 2): (2, 2), ("attention", 2, 2): (4, 8), ("ffn", 2, 1): (4, 2),
    ("none", 1, 2): (8, 8),
}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: "-".join(map(str, c)))
def test_param_tree_shapes_and_counts(case):
    sharing, groups, inner = case
    x, mask = _inputs()
    boxed = jax.eval_shape(layer_stack(_spec(*case)).init, jax.random.key(0), x, mask)["params"]
    attn_copies, ffn_copies = CASES[case]
    assert _count(nn.unbox(boxed)) == attn_copies * ATTN + ffn_copies * FFN
    # One parameter tree, no stray collections; logical names carry the stacking axes.
    root = boxed["groups"]["layers"] if groups > 1 else boxed["layers"]
    block = root["block_1"] if inner > 1 else root
    query = block["attention"]["query"]["kernel"]
    ffn_in = block["ffn"]["intermediate"]["kernel"]
    lead = ("layer_groups",) if groups > 1 else ()
    per_layer = ("layers",)
    assert query.names == lead + (per_layer if sharing in ("none", "ffn") else ()) + ("embed", "heads", "kv")
    assert ffn_in.names == lead + (per_layer if sharing in ("none", "attention") else ()) + ("embed", "mlp")
    assert query.value.shape[-3:] == (H, HEADS, H // HEADS)


def _layer_params(params, spec: StackSpec, layer: int, k: int):
    """Parameters block ``k`` of layer ``layer`` uses, picked by hand from the tree."""
    groups = 1 if spec.sharing == "none" else spec.num_groups
    per_group = spec.num_layers // groups
    group, repeat = divmod(layer, per_group)
    root = params["groups"]["layers"] if groups > 1 else params["layers"]
    if spec.inner_group_num > 1:
        root = root[f"block_{k}"]
    out = {}
    for sub in ("attention", "ffn"):
        tree = root[sub]
        if groups > 1:
            tree = jax.tree.map(lambda a: a[group], tree)
        shared = spec.sharing in ("all", sub)
        if not shared:
            tree = jax.tree.map(lambda a: a[repeat], tree)
        out[sub] = tree
    return out


def _loop_reference(spec: StackSpec, mask, jit_block: bool = True):
    """The stack as a plain Python loop of single (unscanned) blocks."""
    block = TransformerBlock(spec)
    apply = jax.jit(block.apply) if jit_block else block.apply

    def loop(params, x):
        for layer in range(spec.num_layers):
            for k in range(spec.inner_group_num):
                x = apply({"params": _layer_params(params, spec, layer, k)}, x, mask)
        return x

    return loop


@pytest.mark.parametrize("case", [("none", 1, 1), ("all", 1, 1), ("ffn", 2, 1), ("all", 2, 2)],
                         ids=lambda c: "-".join(map(str, c)))
def test_scan_matches_python_loop_of_blocks(case):
    spec = _spec(*case)
    x, mask = _inputs()
    stack = layer_stack(spec)
    params = _random_params(stack, x, mask)
    got = jax.jit(lambda p: stack.apply({"params": p}, x, mask))(params)
    np.testing.assert_allclose(got, _loop_reference(spec, mask)(params, x), atol=1e-5)


@pytest.mark.parametrize("unroll", [2, L])
def test_unrolled_scan_matches_python_loop_of_blocks(unroll):
    """``scan_unroll`` changes how the layers compile, not what they compute."""
    spec = _spec("attention", scan_unroll=unroll)
    x, mask = _inputs()
    stack = layer_stack(spec)
    params = _random_params(stack, x, mask)
    got = jax.jit(lambda p: stack.apply({"params": p}, x, mask))(params)
    np.testing.assert_allclose(got, _loop_reference(spec, mask)(params, x), atol=1e-5)


def test_scan_gradients_match_python_loop_under_every_remat_policy():
    """A shared parameter accumulates every layer's gradient; a stacked one gets its own layer's."""
    spec = _spec("attention")
    x, mask = _inputs()
    stack = layer_stack(spec)
    params = _random_params(stack, x, mask)
    loop = _loop_reference(spec, mask, jit_block=False)
    g_loop = jax.jit(jax.grad(lambda p: (loop(p, x) ** 2).sum()))(params)
    for remat in REMAT_POLICIES:
        stack = layer_stack(_spec("attention", remat=remat))
        g_scan = jax.jit(jax.grad(lambda p: (stack.apply({"params": p}, x, mask) ** 2).sum()))(params)
        assert jax.tree.structure(g_scan) == jax.tree.structure(g_loop)
        for a, b in zip(jax.tree.leaves(g_scan), jax.tree.leaves(g_loop)):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_init_gives_each_layer_its_own_weights():
    """Per-layer sublayers are initialised inside a scan whose params RNG is not
    split (the shared ones need it loop-invariant); the layer index is folded in."""
    x, mask = _inputs()
    params = nn.unbox(jax.jit(layer_stack(_spec("attention", init_std=0.02)).init)(
        jax.random.key(0), x, mask)["params"])
    kernels = np.asarray(params["layers"]["ffn"]["intermediate"]["kernel"])  # [L, H, I], per layer
    for a in range(L):
        for b in range(a + 1, L):
            assert abs(np.corrcoef(kernels[a].ravel(), kernels[b].ravel())[0, 1]) < 0.2
    assert kernels.std() == pytest.approx(0.02, rel=0.1)
    query = np.asarray(params["layers"]["attention"]["query"]["kernel"])  # shared: [H, heads, head_dim]
    assert query.shape == (H, HEADS, H // HEADS) and query.std() == pytest.approx(0.02, rel=0.15)
    np.testing.assert_array_equal(params["layers"]["ffn"]["norm"]["scale"], 1.0)
    np.testing.assert_array_equal(params["layers"]["attention"]["output"]["bias"], 0.0)


def _numpy_layer_norm(x, scale, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def test_attention_with_padding_mask_matches_numpy():
    spec = _spec("none", layer_norm_eps=1e-6)
    x, mask = _inputs(batch=3, length=7)
    mask = mask.at[2, 1:].set(False)  # only the first token is real
    module = SelfAttention(spec)
    p = _random_params(module, x, mask, seed=3)  # random biases and norms too: every parameter matters
    got = jax.jit(module.apply)({"params": p}, x, mask)

    xn, m = np.asarray(x, np.float64), np.asarray(mask)
    q = np.einsum("bsh,hnd->bsnd", xn, p["query"]["kernel"]) + p["query"]["bias"]
    k = np.einsum("bsh,hnd->bsnd", xn, p["key"]["kernel"]) + p["key"]["bias"]
    v = np.einsum("bsh,hnd->bsnd", xn, p["value"]["kernel"]) + p["value"]["bias"]
    logits = np.einsum("btnd,bsnd->bnts", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(m[:, None, None, :], logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bnts,bsnd->btnd", probs, v)
    out = np.einsum("btnd,ndh->bth", context, p["output"]["kernel"]) + p["output"]["bias"]
    want = _numpy_layer_norm(out + xn, p["norm"]["scale"], p["norm"]["bias"], 1e-6)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # The explicit-softmax path (used with attention dropout) agrees too.
    np.testing.assert_allclose(attention_weights_reference(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                                                           mask[:, None, None, :]), probs, atol=1e-5)


def test_dropout_differs_per_layer_and_per_key():
    x, mask = _inputs()
    spec = _spec("all", dropout=0.5, attention_dropout=0.3)
    params = _random_params(layer_stack(spec), x, mask)
    train = jax.jit(lambda key: layer_stack(spec, deterministic=False).apply(
        {"params": params}, x, mask, rngs={"dropout": key}))
    a, b, c = train(jax.random.key(1)), train(jax.random.key(2)), train(jax.random.key(1))
    assert not np.allclose(a, b) and np.array_equal(a, c)
    infer = jax.jit(layer_stack(spec).apply)({"params": params}, x, mask)
    assert not np.allclose(a, infer)


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match="not divisible by num_groups"):
        layer_stack(_spec("all", groups=3))
    with pytest.raises(ValueError, match="sharing must be one of"):
        layer_stack(_spec("layers"))
