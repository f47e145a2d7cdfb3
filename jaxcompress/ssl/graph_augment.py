"""Graph augmentations for contrastive learning, jittable on padded graph slots.

Every topology augmentation is a symmetric edge-flip probability matrix P
followed by one sampler (:func:`flip_view`): SPAN's learned probabilities,
their budget-matched uniform baseline, uniform flips, edge drop (P on the
edges) and edge add (P on the non-edges). A sampled view keeps the slot's
static shapes: deleted edges get weight 0 and added edges fill ``extra_edges``
preallocated slots (chosen at random among the sampled additions if there are
more; the count that did not fit is reported). Node drop and subgraph change
the node mask; feature masking zeroes feature columns.

All functions here act on one graph (vmap them over the slot axis):
``features`` [N, F], ``nodes_mask`` [N], ``edges`` int [E, 2] (undirected,
i < j), ``edges_mask`` [E], ``adjacency`` [N, N].

References:
  You et al., "Graph Contrastive Learning with Augmentations", NeurIPS 2020
  (node drop, edge perturbation, attribute masking, subgraph); Zhu et al.,
  "Deep Graph Contrastive Representation Learning", 2020 (GRACE: edge
  removal, feature-column masking); Lin et al., "Spectral Augmentation for
  Self-Supervised Learning on Graphs", ICLR 2023 (SPAN).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcompress.ssl.span import flip_signs, pair_mask, sample_flips

#: Topology augmentations; "span" and "span_uniform" need precomputed SPAN probabilities.
TOPOLOGY = ("none", "span", "span_uniform", "uniform_flip", "edge_drop", "edge_add", "node_drop", "subgraph")


class View(NamedTuple):
    """One augmented graph slot (inputs of ``graphs_tuple``) and its flip counts."""

    features: jax.Array  # [N, F]
    nodes_mask: jax.Array  # [N]
    edges: jax.Array  # int [E + K, 2]
    weights: jax.Array  # [E + K]
    flips: jax.Array  # scalar: realised flipped pairs (deleted + added that fit)
    overflow: jax.Array  # scalar: sampled additions that did not fit the K extra slots


def uniform_flip_probabilities(adjacency: jax.Array, nodes_mask: jax.Array, num_edges: jax.Array,
                               ratio: float) -> jax.Array:
    """Every real pair flipped with the same probability, ratio * |E| expected flips; [N, N]."""
    pairs = pair_mask(nodes_mask)
    rate = jnp.clip(ratio * num_edges / jnp.maximum(pairs.sum(), 1.0), 0.0, 1.0)
    upper = pairs * rate
    return upper + upper.T


def edge_drop_probabilities(adjacency: jax.Array, ratio: float) -> jax.Array:
    """Each existing edge deleted with probability ratio; [N, N]."""
    return adjacency * ratio


def edge_add_probabilities(adjacency: jax.Array, nodes_mask: jax.Array, num_edges: jax.Array,
                           ratio: float) -> jax.Array:
    """ratio * |E| non-edges added in expectation, uniformly; [N, N]."""
    pairs = pair_mask(nodes_mask)
    candidates = pairs * (1.0 - adjacency)
    rate = jnp.clip(ratio * num_edges / jnp.maximum(candidates.sum(), 1.0), 0.0, 1.0)
    upper = candidates * rate
    return upper + upper.T


def flip_view(key: jax.Array, features: jax.Array, nodes_mask: jax.Array, edges: jax.Array,
              edges_mask: jax.Array, adjacency: jax.Array, probabilities: jax.Array, extra_edges: int) -> View:
    """Samples a symmetric flip mask from P and applies it to one graph slot.

    Returns:
      A :class:`View` with ``E + extra_edges`` edge slots: the original edges
      (weight 0 where deleted) then the added ones.
    """
    k_flip, k_pick = jax.random.split(key)
    flips = sample_flips(k_flip, probabilities, nodes_mask)
    deleted = flips[edges[:, 0], edges[:, 1]] * edges_mask
    weights = edges_mask * (1.0 - deleted)
    n = adjacency.shape[0]
    additions = jnp.triu(flips * (1.0 - adjacency) * (flip_signs(adjacency, nodes_mask) > 0), 1).reshape(-1)
    k = min(extra_edges, n * n)
    if k > 0:
        # Random priorities pick which additions fit when more were sampled than slots.
        priority = jnp.where(additions > 0, jax.random.uniform(k_pick, additions.shape), -1.0)
        top, index = jax.lax.top_k(priority, k)
        added = jnp.stack([index // n, index % n], 1).astype(edges.dtype)
        added_w = (top >= 0).astype(weights.dtype)
    else:
        added = jnp.zeros((0, 2), edges.dtype)
        added_w = jnp.zeros((0,), weights.dtype)
    kept_additions = added_w.sum()
    return View(features, nodes_mask, jnp.concatenate([edges, added]), jnp.concatenate([weights, added_w]),
                deleted.sum() + kept_additions, additions.sum() - kept_additions)


def drop_nodes(key: jax.Array, nodes_mask: jax.Array, ratio: float) -> jax.Array:
    """Drops each real node with probability ``ratio``, always keeping at least one; [N] mask."""
    score = jax.random.uniform(key, nodes_mask.shape)
    keep = (score >= ratio) * nodes_mask
    best = jnp.argmax(jnp.where(nodes_mask > 0, score, -1.0))
    rescue = jax.nn.one_hot(best, nodes_mask.shape[0]) * nodes_mask
    return jnp.where(keep.sum() > 0, keep, rescue)


def subgraph_nodes(key: jax.Array, nodes_mask: jax.Array, adjacency: jax.Array, ratio: float,
                   hops: int = 16) -> jax.Array:
    """Keeps the ceil((1 - ratio) n) real nodes closest (in hops) to a random seed node; [N] mask.

    Ties, and nodes the seed cannot reach (other components), are broken at random.
    """
    k_seed, k_tie = jax.random.split(key)
    n_real = nodes_mask.sum()
    seed_scores = jnp.where(nodes_mask > 0, jax.random.uniform(k_seed, nodes_mask.shape), -1.0)
    frontier = jax.nn.one_hot(jnp.argmax(seed_scores), nodes_mask.shape[0])
    big = float(hops + 1)
    distance = jnp.where(frontier > 0, 0.0, big)

    def expand(step: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        reached, dist = carry
        nxt = jnp.minimum((adjacency @ reached > 0) + reached, 1.0) * nodes_mask
        dist = jnp.where((nxt > 0) & (reached == 0), step + 1.0, dist)
        return nxt, dist

    _, distance = jax.lax.fori_loop(0, hops, expand, (frontier, distance))
    score = distance + 0.5 * jax.random.uniform(k_tie, distance.shape)
    score = jnp.where(nodes_mask > 0, score, jnp.inf)
    keep_count = jnp.maximum(jnp.ceil((1.0 - ratio) * n_real), 1.0)
    rank = jnp.argsort(jnp.argsort(score))
    return (rank < keep_count).astype(nodes_mask.dtype) * nodes_mask


def mask_features(key: jax.Array, features: jax.Array, rate: float) -> jax.Array:
    """Zeroes each feature column with probability ``rate`` (same columns for all nodes); [N, F]."""
    if rate <= 0:
        return features
    keep = jax.random.bernoulli(key, 1.0 - rate, (features.shape[-1],))
    return features * keep.astype(features.dtype)


def augment(key: jax.Array, kind: str, features: jax.Array, nodes_mask: jax.Array, edges: jax.Array,
            edges_mask: jax.Array, adjacency: jax.Array, num_edges: jax.Array, ratio: float,
            feature_mask: float, extra_edges: int, span_probabilities: jax.Array | None = None) -> View:
    """One view of one graph slot under augmentation ``kind`` (see :data:`TOPOLOGY`).

    ``span_probabilities`` [N, N] is required by "span" (the view's own P) and
    "span_uniform" (uniform flips with the same expected count as that P).
    """
    k_topo, k_feat = jax.random.split(key)
    features = mask_features(k_feat, features, feature_mask)
    zero = jnp.zeros((), features.dtype)
    plain = View(features, nodes_mask, jnp.concatenate([edges, jnp.zeros((extra_edges, 2), edges.dtype)]),
                 jnp.concatenate([edges_mask, jnp.zeros((extra_edges,), edges_mask.dtype)]), zero, zero)
    if kind == "none":
        return plain
    if kind in ("node_drop", "subgraph"):
        kept = drop_nodes(k_topo, nodes_mask, ratio) if kind == "node_drop" \
            else subgraph_nodes(k_topo, nodes_mask, adjacency, ratio)
        return plain._replace(nodes_mask=kept, features=features * kept[:, None])
    if kind in ("span", "span_uniform"):
        if span_probabilities is None:
            raise ValueError(f"augmentation {kind!r} needs precomputed SPAN probabilities")
        probabilities = span_probabilities
        if kind == "span_uniform":
            pairs = pair_mask(nodes_mask)
            rate = jnp.sum(jnp.triu(span_probabilities, 1)) / jnp.maximum(pairs.sum(), 1.0)
            probabilities = (pairs + pairs.T) * jnp.clip(rate, 0.0, 1.0)
    elif kind == "uniform_flip":
        probabilities = uniform_flip_probabilities(adjacency, nodes_mask, num_edges, ratio)
    elif kind == "edge_drop":
        probabilities = edge_drop_probabilities(adjacency, ratio)
    elif kind == "edge_add":
        probabilities = edge_add_probabilities(adjacency, nodes_mask, num_edges, ratio)
    else:
        raise ValueError(f"augmentation must be one of {TOPOLOGY}, got {kind!r}")
    return flip_view(k_topo, features, nodes_mask, edges, edges_mask, adjacency, probabilities, extra_edges)
