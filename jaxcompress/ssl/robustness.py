"""Structural perturbations for robustness evaluation: random, degree- and spectrum-targeted edge flips.

Each attack flips ``round(budget * |E|)`` node pairs of every graph (an edge
is deleted, a non-edge added), never touching padding:

* ``random``: pairs drawn uniformly among all pairs of real nodes;
* ``degree``: the pairs with the largest degree sum d_i + d_j (hub-hub edges
  are cut, hubs are joined), ties broken at random;
* ``spectrum``: the pairs with the largest first-order change of the
  spectral norm of the GCN-normalised adjacency, |df/dP_ij| at P = 0 (the
  objective SPAN ascends), computed for all graphs at once with ``jax.grad``.

The perturbed graphs keep the node budget; the edge budget grows by the
largest number of additions.

References:
  Lin et al., ICLR 2023 (spectral objective, robustness evaluation); Chang et
  al., "A Restricted Black-box Adversarial Framework Towards Attacking Graph
  Embedding Models", AAAI 2020 (spectral attacks); Zugner et al.,
  "Adversarial Attacks on Neural Networks for Graph Data", KDD 2018.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.data.graphs import batching as gb
from jaxcompress.ssl import span

ATTACKS = ("random", "degree", "spectrum")


def _spectral_scores(padded: dict[str, np.ndarray], operator: str = "gcn_adj") -> np.ndarray:
    """|df/dP| at P = 0 for every pair of every graph: [G, N, N] (0 off the real pairs)."""
    max_nodes = padded[gb.NODE_FEATURES].shape[1]
    config = span.SpanConfig(operator=operator, spectrum="frobenius")
    nodes_mask = gb.node_mask(jnp.asarray(padded[gb.NUM_NODES]), max_nodes)
    edges_mask = gb.edge_mask(jnp.asarray(padded[gb.NUM_EDGES]), padded[gb.EDGES].shape[1])
    adjacency = gb.dense_adjacency(jnp.asarray(padded[gb.EDGES]), edges_mask, max_nodes)
    grad = jax.jit(jax.vmap(jax.grad(lambda u, a, m: span.objective(u, a, m, config))))
    g = grad(jnp.zeros_like(adjacency), adjacency, nodes_mask)
    return np.abs(np.asarray(g)) * np.asarray(jax.vmap(span.pair_mask)(nodes_mask))


def perturb(padded: dict[str, np.ndarray], attack: str, budget: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Flips ``round(budget * |E|)`` pairs of every graph of a padded split.

    Args:
      padded: stacked padded records (``node_features``, ``edges``, ``num_nodes``, ``num_edges``, ...).
      attack: one of :data:`ATTACKS`.
      budget: flips as a fraction of each graph's edge count (>= 0).

    Returns:
      A padded dict of the same graphs (same ids, features, labels) with flipped edges.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    rng = np.random.default_rng([seed, ATTACKS.index(attack), int(round(budget * 1000))])
    count, max_nodes = padded[gb.NUM_NODES].shape[0], padded[gb.NODE_FEATURES].shape[1]
    scores = _spectral_scores(padded) if attack == "spectrum" else None
    graphs = []
    for g in range(count):
        graph = gb.unpad(padded, g)
        n, a = graph.num_nodes, graph.adjacency()
        flips = int(round(budget * graph.num_edges))
        iu = np.triu_indices(n, 1)
        if flips and len(iu[0]):
            if attack == "random":
                score = rng.random(len(iu[0]))
            elif attack == "degree":
                degree = a.sum(1)
                score = degree[iu[0]] + degree[iu[1]] + 0.5 * rng.random(len(iu[0]))
            else:
                score = scores[g][:n, :n][iu] + 1e-9 * rng.random(len(iu[0]))
            pick = np.argsort(-score)[:flips]
            rows, cols = iu[0][pick], iu[1][pick]
            a[rows, cols] = 1.0 - a[rows, cols]
            a[cols, rows] = a[rows, cols]
        edges = np.stack(np.nonzero(np.triu(a, 1)), 1)
        graphs.append(gb.Graph(n, edges.astype(np.int32), graph.node_features, graph.label, graph.node_labels))
    max_edges = max(max(g.num_edges for g in graphs), 1)
    budget_out = gb.GraphBudget(max_nodes, 8 * math.ceil(max_edges / 8))
    out = gb.stack_padded(graphs, budget_out)
    out[gb.GRAPH_ID] = np.asarray(padded[gb.GRAPH_ID])
    if gb.NODE_LABELS not in padded:
        out.pop(gb.NODE_LABELS)
    if gb.LABEL in padded:
        out[gb.LABEL] = np.asarray(padded[gb.LABEL])
    return out
