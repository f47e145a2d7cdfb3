"""Bad graphs: handled correctly (self-loops, isolated nodes, directed lists, components, one node)
or rejected with one clear message (no nodes, bad ids, NaN features, over the padding budget);
never NaN embeddings, losses, gradients or SPAN probabilities."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import DataError
from jaxcompress.ssl import gcl, span, span_cache


def test_self_loops_are_removed_and_directed_lists_symmetrised():
    g = gb.canonical_graph(4, [[0, 0], [1, 0], [0, 1], [2, 3], [3, 2], [3, 3], [1, 2]])
    assert g.edges.tolist() == [[0, 1], [1, 2], [2, 3]]
    directed_only = gb.canonical_graph(3, [[2, 0], [1, 2]])
    assert directed_only.edges.tolist() == [[0, 2], [1, 2]]


@pytest.mark.parametrize("args,message", [
    ((0, np.zeros((0, 2))), "at least one node"),
    ((3, [[0, 3]]), "node ids must lie in [0, 3)"),
    ((3, [[0, -1]]), "node ids must lie in [0, 3)"),
    ((3, [[0, 1, 2]]), "shape [num_edges, 2]"),
    ((3, [[0.5, 1]]), "integer node ids"),
])
def test_malformed_graphs_are_rejected_with_one_clear_message(args, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        gb.canonical_graph(*args, where="graph 7")


def test_bad_features_and_oversized_graphs_are_rejected():
    with pytest.raises(DataError, match="NaN or infinite"):
        gb.canonical_graph(2, [[0, 1]], np.array([[1.0], [np.nan]]))
    with pytest.raises(DataError, match=r"node_features must have shape \[num_nodes=2, F\]"):
        gb.canonical_graph(2, [[0, 1]], np.ones((3, 2)))
    big = gb.canonical_graph(12, np.stack([np.arange(11), np.arange(1, 12)], 1))
    with pytest.raises(DataError, match="graph 3 has 12 nodes, more than the padding budget max_nodes=10"):
        gb.stack_padded([big], gb.GraphBudget(10, 40), first_id=3)
    with pytest.raises(DataError, match="11 edges, more than the padding budget max_edges=8"):
        gb.stack_padded([big], gb.GraphBudget(16, 8))


def test_awkward_graphs_give_finite_embeddings_losses_gradients_and_span():
    graphs = [
        gb.canonical_graph(1, np.zeros((0, 2))),  # a single node
        gb.canonical_graph(5, np.zeros((0, 2))),  # only isolated nodes
        gb.canonical_graph(6, [[0, 1], [1, 2], [3, 4]]),  # two components and an isolated node
        gb.canonical_graph(4, [[0, 0], [1, 0], [0, 1], [2, 3], [3, 2], [1, 1]]),  # loops + both directions
    ]
    padded = gb.stack_padded(graphs, gb.GraphBudget(8, 12))
    result = span_cache.compute(padded, span.SpanConfig(iterations=3), chunk=4, progress=False)
    assert np.all(np.isfinite(result.p_max)) and np.all(np.isfinite(result.p_min))
    assert np.all(result.p_max[:2] == 0)  # no edges: zero budget
    batch = jax.tree.map(jnp.asarray, dict(padded, span_p1=result.p_max, span_p2=result.p_min))
    for framework, augmentation in (("graphcl", "span"), ("grace", "edge_add")):
        if True:
            settings = gcl.GCLConfig(framework=framework, augmentation=augmentation, hidden=8, proj_hidden=8,
                                       proj_dim=8, num_layers=2, extra_edges=8,
                                       encoder="gcn" if framework == "grace" else "gin")
            model = gcl.GCLModel(settings)
            params = nn.unbox(jax.jit(model.init)(jax.random.key(0), gb.batch_graphs_tuple(batch))["params"])
            (loss, _), grads = jax.jit(jax.value_and_grad(lambda p, b: gcl.objective(model, p, b, jax.random.key(1)),
                                                          has_aux=True))(params, batch)
            emb = jax.jit(lambda p, b: gcl.embed(model, p, b))(params, batch)
            assert np.isfinite(float(loss)), (framework, augmentation)
            assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
            assert np.all(np.isfinite(np.asarray(emb["graphs"]))) and np.all(np.isfinite(np.asarray(emb["nodes"])))
