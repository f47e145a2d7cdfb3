"""GCN/GIN layers against jraph's GraphConvolution and a dense NumPy formula; padding invariance."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import networkx as nx
import numpy as np
import pytest

from jaxcompress.data.graphs import batching as gb
from jaxcompress.data.graphs.generators import degree_features
from jaxcompress.nn.graph import GCNLayer, GINLayer, GraphEncoder


def _graphs() -> list[gb.Graph]:
    out = []
    for g in (nx.karate_club_graph(), nx.cycle_graph(7), nx.star_graph(5)):
        base = gb.from_networkx(g)
        out.append(gb.canonical_graph(base.num_nodes, base.edges, degree_features(base.num_nodes, base.edges)))
    return out


def _slots(graphs, budget):
    return gb.batch_graphs_tuple(jax.tree.map(jnp.asarray, gb.stack_padded(graphs, budget)))


def test_gcn_layer_matches_jraph_graph_convolution():
    graphs = _graphs()
    slots = _slots(graphs, gb.GraphBudget(40, 96))
    layer = GCNLayer(6)
    params = nn.unbox(jax.jit(layer.init)(jax.random.key(0), slots.nodes["features"], slots)["params"])
    ours = np.asarray(jax.jit(layer.apply)({"params": params}, slots.nodes["features"], slots))
    kernel = params["linear"]["kernel"]
    flat = gb.to_jraph_batch(graphs)
    gcn = jraph.GraphConvolution(update_node_fn=lambda x: x @ kernel, add_self_edges=True,
                                 symmetric_normalization=True)
    theirs = np.asarray(gcn(flat._replace(nodes=jnp.asarray(flat.nodes))).nodes)
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs])
    for b, g in enumerate(graphs):
        np.testing.assert_allclose(ours[b, :g.num_nodes], theirs[offsets[b]:offsets[b + 1]], atol=1e-5)
        assert np.all(ours[b, g.num_nodes:] == 0)


def test_gin_layer_matches_dense_formula():
    graphs = _graphs()
    slots = _slots(graphs, gb.GraphBudget(40, 96))
    layer = GINLayer(5)
    params = nn.unbox(jax.jit(layer.init)(jax.random.key(1), slots.nodes["features"], slots)["params"])
    params = jax.tree.map(lambda x: x + 0.1, params)  # eps != 0, biases != 0
    ours = np.asarray(jax.jit(layer.apply)({"params": params}, slots.nodes["features"], slots))
    for b, g in enumerate(graphs):
        x = g.node_features
        h = (1 + float(params["eps"])) * x + g.adjacency() @ x
        h = np.maximum(h @ params["mlp_0"]["kernel"] + params["mlp_0"]["bias"], 0)
        h = h @ params["mlp_1"]["kernel"] + params["mlp_1"]["bias"]
        np.testing.assert_allclose(ours[b, :g.num_nodes], h, atol=1e-4)


@pytest.mark.parametrize("kind,readout", [("gin", "sum"), ("gcn", "mean")])
def test_encoder_is_invariant_to_padding_budget(kind, readout):
    graphs = _graphs()
    encoder = GraphEncoder(kind, hidden=8, num_layers=2, readout=readout)
    small = _slots(graphs, gb.GraphBudget(34, 78))
    large = _slots(graphs, gb.GraphBudget(50, 130))
    params = nn.unbox(jax.jit(encoder.init)(jax.random.key(2), small)["params"])
    nodes_s, graphs_s = jax.jit(encoder.apply)({"params": params}, small)
    nodes_l, graphs_l = jax.jit(encoder.apply)({"params": params}, large)
    np.testing.assert_allclose(np.asarray(graphs_s), np.asarray(graphs_l), atol=1e-4)
    np.testing.assert_allclose(np.asarray(nodes_s), np.asarray(nodes_l)[:, :34], atol=1e-4)
    assert np.all(np.asarray(nodes_l)[:, 34:] == 0)
    assert nodes_s.shape == (3, 34, 16) and graphs_s.shape == (3, 16)
