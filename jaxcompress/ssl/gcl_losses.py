"""Contrastive objectives of graph contrastive learning (GraphCL, GRACE, local-global JSD).

All losses take masks so that padded graphs (evaluation batches) and padded
nodes are neither anchors nor negatives, and all guard the cosine similarity
of zero vectors, so padding never produces NaN.

References:
  You et al., "Graph Contrastive Learning with Augmentations", NeurIPS 2020
  (NT-Xent over graph embeddings); Zhu et al., "Deep Graph Contrastive
  Representation Learning", ICML GRL+ workshop 2020 (GRACE, InfoNCE with
  intra- and inter-view negatives); Hjelm et al., ICLR 2019 and Sun et al.,
  "InfoGraph", ICLR 2020 (Jensen-Shannon MI estimator, local-global);
  Hassani & Khasahmadi, "Contrastive Multi-View Representation Learning on
  Graphs", ICML 2020 (MVGRL, cross-view local-global).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_LOG2 = math.log(2.0)
_NEG = -1e9  # logit of a masked-out pair (exp underflows to exactly 0)


def cosine_matrix(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Pairwise cosine similarities, [M, D] x [K, D] -> [M, K]; zero vectors give 0."""
    # rsqrt(max(|x|^2, eps^2)) rather than x / max(|x|, eps): the norm's own
    # derivative is 0/0 at a zero vector (a padded node) and would poison the gradient.
    a = a * jax.lax.rsqrt(jnp.maximum(jnp.sum(a * a, axis=-1, keepdims=True), eps * eps))
    b = b * jax.lax.rsqrt(jnp.maximum(jnp.sum(b * b, axis=-1, keepdims=True), eps * eps))
    return a @ b.T


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float, valid: jax.Array | None = None,
            symmetric: bool = False) -> tuple[jax.Array, jax.Array]:
    """NT-Xent over a batch of paired graph embeddings.

    ``symmetric=False`` is GraphCL's loss: for anchor i in view 1,
    ``-log(exp(s_ii / t) / sum_{j != i} exp(s_ij / t))`` with s the cosine
    between view-1 and view-2 embeddings: only cross-view negatives, and the
    positive left out of the denominator. ``symmetric=True`` is SimCLR's
    2B-anchor form: both directions, intra- and inter-view negatives, the
    positive in the denominator.

    Args:
      z1, z2: [B, D] projected embeddings of the two views.
      temperature: t > 0.
      valid: [B] 1 for real graphs (padding rows are neither anchors nor negatives).

    Returns:
      (mean loss over valid anchors, per-graph loss [B], 0 for invalid rows).
    """
    batch = z1.shape[0]
    valid = jnp.ones((batch,), z1.dtype) if valid is None else valid.astype(z1.dtype)
    eye = jnp.eye(batch, dtype=z1.dtype)
    pair_ok = valid[:, None] * valid[None, :]
    s12 = cosine_matrix(z1, z2) / temperature
    if not symmetric:
        negatives = jnp.where((pair_ok * (1 - eye)) > 0, s12, _NEG)
        # logsumexp over an all-masked row (a batch of one) is -1e9: guard it.
        denom = jax.nn.logsumexp(negatives, axis=1)
        denom = jnp.where(jnp.sum(pair_ok * (1 - eye), 1) > 0, denom, 0.0)
        per = (denom - jnp.diagonal(s12)) * valid
        return _masked_mean(per, valid), per
    s11 = cosine_matrix(z1, z1) / temperature
    s22 = cosine_matrix(z2, z2) / temperature

    def direction(cross: jax.Array, intra: jax.Array) -> jax.Array:
        logits = jnp.concatenate([jnp.where(pair_ok > 0, cross, _NEG),
                                  jnp.where((pair_ok * (1 - eye)) > 0, intra, _NEG)], axis=1)
        return jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(cross)

    per = 0.5 * (direction(s12, s11) + direction(s12.T, s22)) * valid
    return _masked_mean(per, valid), per


def grace_loss(h1: jax.Array, h2: jax.Array, temperature: float, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """GRACE's node-level InfoNCE for one graph.

    For node i, ``l(u_i, v_i) = -log(e^{s(u_i,v_i)/t} / (e^{s(u_i,v_i)/t} +
    sum_{k != i} e^{s(u_i,v_k)/t} + sum_{k != i} e^{s(u_i,u_k)/t}))`` with
    s the cosine similarity; the loss of node i averages both directions.

    Args:
      h1, h2: [N, D] projected node embeddings of the two views.
      mask: [N] 1 for nodes present in both views.

    Returns:
      (mean over masked nodes, per-node loss [N]).
    """
    mask = mask.astype(h1.dtype)
    n = h1.shape[0]
    eye = jnp.eye(n, dtype=h1.dtype)
    pair_ok = mask[:, None] * mask[None, :]
    s12 = cosine_matrix(h1, h2) / temperature
    s11 = cosine_matrix(h1, h1) / temperature
    s22 = cosine_matrix(h2, h2) / temperature

    def direction(cross: jax.Array, intra: jax.Array) -> jax.Array:
        logits = jnp.concatenate([jnp.where(pair_ok > 0, cross, _NEG),
                                  jnp.where((pair_ok * (1 - eye)) > 0, intra, _NEG)], axis=1)
        return jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(cross)

    per = 0.5 * (direction(s12, s11) + direction(s12.T, s22)) * mask
    return _masked_mean(per, mask), per


def jsd_scores(scores: jax.Array, positive: jax.Array, negative: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Jensen-Shannon MI lower-bound terms (E_pos, E_neg) over masked score entries.

    ``E_pos = mean(log 2 - softplus(-s))`` over positives and
    ``E_neg = mean(softplus(-s) + s - log 2)`` over negatives.
    """
    e_pos = _masked_mean(_LOG2 - jax.nn.softplus(-scores), positive)
    e_neg = _masked_mean(jax.nn.softplus(-scores) + scores - _LOG2, negative)
    return e_pos, e_neg


def local_global_jsd(nodes: jax.Array, graphs: jax.Array, nodes_mask: jax.Array,
                     valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """InfoGraph/MVGRL local-global JSD: each node against every graph summary in the batch.

    Scores ``s[b, i, c] = <nodes[b, i], graphs[c]>``; positives are c = b
    (a node with its own graph), negatives c != b.

    Args:
      nodes: [B, N, D] node embeddings; graphs: [B, D] graph summaries.
      nodes_mask: [B, N]; valid: [B] real graphs.

    Returns:
      (loss = E_neg - E_pos, per-graph loss [B] computed with that graph's
      nodes as anchors).
    """
    batch = graphs.shape[0]
    valid = jnp.ones((batch,), nodes.dtype) if valid is None else valid.astype(nodes.dtype)
    scores = jnp.einsum("bnd,cd->bnc", nodes, graphs)
    same = jnp.eye(batch, dtype=nodes.dtype)[:, None, :]
    present = nodes_mask[:, :, None] * valid[None, None, :] * valid[:, None, None]
    positive, negative = present * same, present * (1 - same)
    e_pos, e_neg = jsd_scores(scores, positive, negative)
    per_pos = jax.vmap(_masked_mean)(_LOG2 - jax.nn.softplus(-scores), positive)
    per_neg = jax.vmap(_masked_mean)(jax.nn.softplus(-scores) + scores - _LOG2, negative)
    return e_neg - e_pos, (per_neg - per_pos) * valid
