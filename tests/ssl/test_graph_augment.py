"""Augmentations: symmetric views within the static slots, counts and masks as specified."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jaxcompress.data.graphs import batching as gb
from jaxcompress.ssl import graph_augment as ga


def _slot(graph: nx.Graph, budget: gb.GraphBudget):
    arrays = jax.tree.map(jnp.asarray, gb.stack_padded([gb.from_networkx(graph)], budget))
    nodes_mask = gb.node_mask(arrays[gb.NUM_NODES], budget.max_nodes)[0]
    edges_mask = gb.edge_mask(arrays[gb.NUM_EDGES], budget.max_edges)[0]
    adjacency = gb.dense_adjacency(arrays[gb.EDGES], edges_mask[None], budget.max_nodes)[0]
    features = jnp.ones((budget.max_nodes, 3)) * nodes_mask[:, None]
    return features, nodes_mask, arrays[gb.EDGES][0], edges_mask, adjacency, arrays[gb.NUM_EDGES][0]


def _view_adjacency(view: ga.View, size: int) -> np.ndarray:
    a = np.zeros((size, size))
    for (i, j), w in zip(np.asarray(view.edges), np.asarray(view.weights)):
        if w > 0:
            a[i, j] += 1
            a[j, i] += 1
    return a


@functools.partial(jax.jit, static_argnums=(1, 8, 9, 10))
def _augment(key, kind, features, nodes_mask, edges, edges_mask, adjacency, num_edges, ratio, feature_mask, extra,
             probabilities=None):
    return ga.augment(key, kind, features, nodes_mask, edges, edges_mask, adjacency, num_edges, ratio, feature_mask,
                      extra, probabilities)


def test_flip_augmentations_give_simple_symmetric_graphs_on_real_nodes():
    budget = gb.GraphBudget(24, 64)
    slot = _slot(nx.gnp_random_graph(18, 0.2, seed=0), budget)
    a = np.asarray(slot[4])
    uniform = np.triu(np.full((24, 24), 0.05), 1) * np.outer(np.asarray(slot[1]), np.asarray(slot[1]))
    uniform = jnp.asarray(uniform + uniform.T, jnp.float32)
    for kind in ("span", "span_uniform", "uniform_flip", "edge_drop", "edge_add"):
        view = _augment(jax.random.key(1), kind, *slot, 0.3, 0.0, 40, uniform)
        v = _view_adjacency(view, 24)
        assert set(np.unique(v)) <= {0.0, 1.0}, kind  # no duplicate edges
        assert np.all(v == v.T) and np.all(np.diag(v) == 0)
        assert np.all(v[18:] == 0) and np.all(v[:, 18:] == 0)  # nothing touches padding
        assert int(view.flips) == int(np.sum(np.triu(np.abs(v - a), 1))), kind
        if kind == "edge_drop":
            assert np.all(v <= a)
        if kind == "edge_add":
            assert np.all(v >= a)


def test_overflowing_additions_are_counted_not_silently_lost():
    budget = gb.GraphBudget(20, 32)
    slot = _slot(nx.path_graph(20), budget)
    everything = jnp.asarray(np.ones((20, 20)) - np.eye(20), jnp.float32)
    view = _augment(jax.random.key(0), "span", *slot, 0.2, 0.0, 5, everything)
    added = int(np.sum(np.asarray(view.weights)[32:]))
    assert added == 5 and int(view.overflow) == 20 * 19 // 2 - 19 - 5


def test_node_drop_subgraph_and_feature_masking():
    budget = gb.GraphBudget(30, 64)
    graph = nx.disjoint_union(nx.cycle_graph(12), nx.path_graph(8))  # two components
    slot = _slot(graph, budget)
    for seed in range(5):
        kept = np.asarray(_augment(jax.random.key(seed), "node_drop", *slot, 0.99, 0.0, 0).nodes_mask)
        assert 1 <= kept.sum() <= 20 and np.all(kept[20:] == 0)
        sub = np.asarray(_augment(jax.random.key(seed), "subgraph", *slot, 0.5, 0.0, 0).nodes_mask)
        assert sub.sum() == 10 and np.all(sub[20:] == 0)
    masked = np.asarray(_augment(jax.random.key(3), "none", *slot, 0.0, 0.5, 0).features)
    columns = masked[:20].sum(0)
    assert set(np.unique(columns)) <= {0.0, 20.0}
