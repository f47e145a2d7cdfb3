"""Graphs on the host and padded graph batches on the device.

A graph on the host is a :class:`Graph`: ``num_nodes``, an undirected edge
list (each edge once, ``i < j``), node features and labels, all NumPy. Every
graph that enters jaxcompress goes through :func:`canonical_graph`, which is
where bad input is handled or rejected:

* self-loops are removed (the GCN operator adds its own, and SPAN flips only
  off-diagonal pairs);
* directed edge lists are read as undirected: ``(i, j)`` and ``(j, i)`` both
  become the one edge ``{i, j}``, and duplicates are merged;
* isolated nodes and disconnected components are kept as they are;
* a single node is a valid graph (no edges, no flip candidates);
* zero nodes, an edge endpoint outside ``[0, num_nodes)``, non-finite
  features or ragged shapes are rejected with a :class:`DataError` that names
  the graph.

Batches have static shapes so that a jitted step compiles once: every graph
is padded into a *slot* of ``max_nodes`` nodes and ``max_edges`` undirected
edges (:class:`GraphBudget`), and a batch of B graphs is B slots
(:func:`pad_graph`, :func:`stack_padded`). A graph larger than the budget is
rejected with a message saying which budget to raise. Inside jitted code
:func:`graphs_tuple` turns a padded batch into a ``jraph.GraphsTuple`` whose
leaves keep the leading slot axis ``[B, ...]`` (so the batch shards over the
mesh ``data`` axis like any other batch), with node/edge masks instead of the
jraph convention of a trailing padding graph: padded nodes and edges never
carry weight, so message passing and readouts ignore them exactly.

References:
  Battaglia et al., "Relational inductive biases, deep learning, and graph
  networks", arXiv 1806.01261, 2018 (the GraphsTuple representation, jraph).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxcompress.errors import DataError

#: Feature names of a padded graph record (embedded datasets and derived caches).
NODE_FEATURES = "node_features"
EDGES = "edges"
NUM_NODES = "num_nodes"
NUM_EDGES = "num_edges"
GRAPH_ID = "graph_id"
LABEL = "label"
NODE_LABELS = "node_labels"


@dataclasses.dataclass(frozen=True)
class Graph:
    """One undirected graph on the host.

    Attributes:
      num_nodes: n >= 1.
      edges: int32 [e, 2], each undirected edge once with ``i < j``, sorted, unique.
      node_features: float32 [n, F].
      label: graph class, or -1 when the graph has none.
      node_labels: int32 [n] node classes (-1 = unlabelled), or None.
    """

    num_nodes: int
    edges: np.ndarray
    node_features: np.ndarray
    label: int = -1
    node_labels: np.ndarray | None = None

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def adjacency(self) -> np.ndarray:
        """Dense symmetric 0/1 adjacency, float32 [n, n], zero diagonal."""
        a = np.zeros((self.num_nodes, self.num_nodes), np.float32)
        a[self.edges[:, 0], self.edges[:, 1]] = 1.0
        return a + a.T


def canonical_graph(num_nodes: Any, edge_index: Any, node_features: Any = None, label: Any = -1,
                    node_labels: Any = None, *, where: str = "graph") -> Graph:
    """Validates one graph and puts it in the canonical undirected form.

    Args:
      num_nodes: n, an integer >= 1.
      edge_index: int [e, 2] (directed or undirected, any order, may repeat,
        may contain self-loops); e may be 0.
      node_features: float [n, F], or None for a constant feature [n, 1].
      label: graph class (int), -1 for none.
      node_labels: int [n] or None.
      where: names the graph in error messages (e.g. ``"graph 17 of split 'train'"``).

    Returns:
      A :class:`Graph` with self-loops removed and each edge once as ``i < j``.

    Raises:
      DataError: zero nodes, malformed or out-of-range edges, bad feature or
        label shapes, non-finite features.
    """
    try:
        n = int(num_nodes)
    except (TypeError, ValueError):
        raise DataError(f"{where}: num_nodes must be an integer, got {num_nodes!r}") from None
    if n < 1:
        raise DataError(f"{where}: a graph needs at least one node, got num_nodes={n}")
    edges = np.asarray(edge_index)
    if edges.size == 0:
        edges = np.zeros((0, 2), np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise DataError(f"{where}: edge_index must have shape [num_edges, 2], got {list(edges.shape)}")
    if not np.issubdtype(edges.dtype, np.integer):
        if not np.all(np.isfinite(edges)) or np.any(edges != np.round(edges)):
            raise DataError(f"{where}: edge_index must hold integer node ids, got dtype {edges.dtype}")
        edges = edges.astype(np.int64)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise DataError(f"{where}: edge_index refers to node {int(edges.max() if edges.max() >= n else edges.min())}"
                        f" but node ids must lie in [0, {n}) (num_nodes={n})")
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    keep = lo != hi  # self-loops dropped
    pairs = np.unique(np.stack([lo[keep], hi[keep]], 1).astype(np.int32), axis=0).reshape(-1, 2)
    if node_features is None:
        features = np.ones((n, 1), np.float32)
    else:
        features = np.asarray(node_features, np.float32)
        if features.ndim == 1:
            features = features[:, None]
        if features.ndim != 2 or features.shape[0] != n:
            raise DataError(f"{where}: node_features must have shape [num_nodes={n}, F], got {list(features.shape)}")
        if not np.all(np.isfinite(features)):
            raise DataError(f"{where}: node_features contain NaN or infinite values")
    labels = None
    if node_labels is not None:
        labels = np.asarray(node_labels).astype(np.int32)
        if labels.shape != (n,):
            raise DataError(f"{where}: node_labels must have shape [num_nodes={n}], got {list(labels.shape)}")
    return Graph(n, pairs, features, int(label), labels)


def from_networkx(graph: Any, node_features: Any = None, label: int = -1, node_labels: Any = None,
                  where: str = "graph") -> Graph:
    """A :class:`Graph` from a networkx graph (nodes renumbered 0..n-1 in iteration order)."""
    index = {node: i for i, node in enumerate(graph.nodes())}
    edges = np.asarray([(index[u], index[v]) for u, v in graph.edges()], np.int64).reshape(-1, 2)
    return canonical_graph(len(index), edges, node_features, label, node_labels, where=where)


@dataclasses.dataclass(frozen=True)
class GraphBudget:
    """Static padding sizes of one graph slot.

    Attributes:
      max_nodes: node slots per graph (N).
      max_edges: undirected edge slots per graph (E); messages use 2E directed edges.
    """

    max_nodes: int
    max_edges: int

    def __post_init__(self) -> None:
        if self.max_nodes < 1 or self.max_edges < 0:
            raise DataError(f"graph budget needs max_nodes >= 1 and max_edges >= 0, got "
                            f"max_nodes={self.max_nodes}, max_edges={self.max_edges}")

    @staticmethod
    def covering(graphs: Sequence[Graph], multiple: int = 8) -> "GraphBudget":
        """The smallest budget (rounded up to ``multiple``) that holds every graph."""
        nodes = max(g.num_nodes for g in graphs)
        edges = max(max(g.num_edges for g in graphs), 1)
        return GraphBudget(multiple * math.ceil(nodes / multiple), multiple * math.ceil(edges / multiple))


def check_fits(graph: Graph, budget: GraphBudget, where: str = "graph") -> None:
    """Raises a DataError naming the budget to raise when ``graph`` does not fit."""
    if graph.num_nodes > budget.max_nodes:
        raise DataError(f"{where} has {graph.num_nodes} nodes, more than the padding budget "
                        f"max_nodes={budget.max_nodes}; raise max_nodes or drop larger graphs")
    if graph.num_edges > budget.max_edges:
        raise DataError(f"{where} has {graph.num_edges} edges, more than the padding budget "
                        f"max_edges={budget.max_edges}; raise max_edges or drop larger graphs")


def pad_graph(graph: Graph, budget: GraphBudget, graph_id: int = 0, where: str = "graph") -> dict[str, np.ndarray]:
    """One graph padded into a slot: a record of static shapes.

    Returns:
      ``node_features`` float32 [N, F] (zeros past n), ``edges`` int32 [E, 2]
      (rows past e are (0, 0)), ``num_nodes`` int32, ``num_edges`` int32,
      ``graph_id`` int64, ``label`` int64, ``node_labels`` int32 [N] (-1 past n
      or when unlabelled).

    Raises:
      DataError: when the graph exceeds the budget.
    """
    check_fits(graph, budget, where)
    n, e, f = graph.num_nodes, graph.num_edges, graph.node_features.shape[1]
    features = np.zeros((budget.max_nodes, f), np.float32)
    features[:n] = graph.node_features
    edges = np.zeros((budget.max_edges, 2), np.int32)
    edges[:e] = graph.edges
    node_labels = np.full((budget.max_nodes,), -1, np.int32)
    if graph.node_labels is not None:
        node_labels[:n] = graph.node_labels
    return {NODE_FEATURES: features, EDGES: edges, NUM_NODES: np.int32(n), NUM_EDGES: np.int32(e),
            GRAPH_ID: np.int64(graph_id), LABEL: np.int64(graph.label), NODE_LABELS: node_labels}


def stack_padded(graphs: Sequence[Graph], budget: GraphBudget, first_id: int = 0) -> dict[str, np.ndarray]:
    """B graphs padded and stacked: every value gets a leading [B] axis."""
    if not graphs:
        raise DataError("cannot build a batch from zero graphs")
    widths = {g.node_features.shape[1] for g in graphs}
    if len(widths) != 1:
        raise DataError(f"all graphs of a batch need the same node feature width, got {sorted(widths)}")
    records = [pad_graph(g, budget, first_id + i, where=f"graph {first_id + i}") for i, g in enumerate(graphs)]
    return {key: np.stack([r[key] for r in records]) for key in records[0]}


def unpad(batch: dict[str, np.ndarray], index: int) -> Graph:
    """Row ``index`` of a padded batch back to a :class:`Graph` (validated again)."""
    n, e = int(batch[NUM_NODES][index]), int(batch[NUM_EDGES][index])
    labels = batch.get(NODE_LABELS)
    return canonical_graph(n, batch[EDGES][index][:e], batch[NODE_FEATURES][index][:n],
                           int(batch[LABEL][index]) if LABEL in batch else -1,
                           None if labels is None else labels[index][:n], where=f"record {index}")


# ----------------------------------------------------------------------------
# Device side (jittable)


def node_mask(num_nodes: jax.Array, max_nodes: int) -> jax.Array:
    """float32 [B, N]: 1 for real nodes, 0 for padding."""
    return (jnp.arange(max_nodes)[None, :] < num_nodes[:, None]).astype(jnp.float32)


def edge_mask(num_edges: jax.Array, max_edges: int) -> jax.Array:
    """float32 [B, E]: 1 for real undirected edges, 0 for padding."""
    return (jnp.arange(max_edges)[None, :] < num_edges[:, None]).astype(jnp.float32)


def dense_adjacency(edges: jax.Array, weights: jax.Array, max_nodes: int) -> jax.Array:
    """Symmetric weighted adjacency [B, N, N] from undirected edges [B, E, 2] and weights [B, E]."""

    def one(e: jax.Array, w: jax.Array) -> jax.Array:
        a = jnp.zeros((max_nodes, max_nodes), w.dtype).at[e[:, 0], e[:, 1]].add(w)
        return a + a.T

    return jax.vmap(one)(edges, weights)


def graphs_tuple(node_features: jax.Array, nodes_mask: jax.Array, edges: jax.Array,
                 edge_weights: jax.Array) -> jraph.GraphsTuple:
    """A slot-batched ``jraph.GraphsTuple`` from undirected padded edges.

    Args:
      node_features: [B, N, F].
      nodes_mask: [B, N], 1 for real (kept) nodes.
      edges: int [B, E, 2] undirected edges (both endpoints < N).
      edge_weights: [B, E], 0 for padding and dropped edges.

    Returns:
      ``GraphsTuple`` with ``nodes={"features": [B, N, F], "mask": [B, N]}``,
      ``edges={"weight": [B, 2E]}``, ``senders``/``receivers`` int32 [B, 2E]
      (each undirected edge in both directions), ``n_node``/``n_edge`` [B, 1]
      (real nodes / directed edges with weight) and
      ``globals={"mask": [B]}`` (1 for a slot holding a graph with >= 1 node).
      Weights of edges that touch a masked node are zeroed, so message passing
      never reads from or writes to padding.
    """
    senders = jnp.concatenate([edges[..., 0], edges[..., 1]], axis=1).astype(jnp.int32)
    receivers = jnp.concatenate([edges[..., 1], edges[..., 0]], axis=1).astype(jnp.int32)
    w = jnp.concatenate([edge_weights, edge_weights], axis=1)
    take = jax.vmap(lambda m, i: m[i])
    w = w * take(nodes_mask, senders) * take(nodes_mask, receivers)
    count = nodes_mask.sum(1)
    return jraph.GraphsTuple(
        nodes={"features": node_features * nodes_mask[..., None], "mask": nodes_mask},
        edges={"weight": w}, senders=senders, receivers=receivers,
        n_node=count[:, None].astype(jnp.int32), n_edge=(w > 0).sum(1, keepdims=True).astype(jnp.int32),
        globals={"mask": (count > 0).astype(jnp.float32)})


def batch_graphs_tuple(batch: dict[str, jax.Array]) -> jraph.GraphsTuple:
    """The un-augmented ``GraphsTuple`` of a padded batch (see :func:`graphs_tuple`)."""
    max_nodes, max_edges = batch[NODE_FEATURES].shape[1], batch[EDGES].shape[1]
    return graphs_tuple(batch[NODE_FEATURES], node_mask(batch[NUM_NODES], max_nodes), batch[EDGES],
                        edge_mask(batch[NUM_EDGES], max_edges))


def to_jraph_batch(graphs: Sequence[Graph], n_node: int | None = None, n_edge: int | None = None,
                   n_graph: int | None = None) -> jraph.GraphsTuple:
    """Flat jraph batch (the jraph convention) for interoperability with jraph models.

    Edges appear in both directions; when budgets are given the batch is padded
    with ``jraph.pad_with_graphs`` (a trailing padding graph).
    """
    singles = [jraph.GraphsTuple(
        nodes=g.node_features, edges=np.ones((2 * g.num_edges,), np.float32),
        senders=np.concatenate([g.edges[:, 0], g.edges[:, 1]]).astype(np.int32),
        receivers=np.concatenate([g.edges[:, 1], g.edges[:, 0]]).astype(np.int32),
        n_node=np.asarray([g.num_nodes]), n_edge=np.asarray([2 * g.num_edges]), globals=None) for g in graphs]
    flat = jraph.batch_np(singles)
    if n_node is None:
        return flat
    return jraph.pad_with_graphs(flat, n_node, n_edge or int(flat.n_edge.sum()) + 1, n_graph or len(graphs) + 1)
