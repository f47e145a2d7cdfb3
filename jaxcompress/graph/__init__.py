"""Graph data for graph contrastive learning: canonical graphs, padded batches, datasets, evaluation.

See :mod:`jaxcompress.graph.batching` for how graphs are validated and padded,
:mod:`jaxcompress.graph.datasets` for loading graph datasets by name,
:mod:`jaxcompress.graph.span_cache` for the cached SPAN precompute and
:mod:`jaxcompress.graph.probe` / :mod:`jaxcompress.graph.robustness` for the
linear-probe and perturbation evaluations.
"""

from jaxcompress.graph.batching import (Graph, GraphBudget, canonical_graph, from_networkx, graphs_tuple,
                                        pad_graph, stack_padded)

__all__ = ["Graph", "GraphBudget", "canonical_graph", "from_networkx", "graphs_tuple", "pad_graph", "stack_padded"]
