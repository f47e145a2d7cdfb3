"""Graph data for graph contrastive learning: canonical graphs, padded batches, datasets, evaluation.

See :mod:`jaxcompress.data.graphs.batching` for how graphs are validated and padded,
:mod:`jaxcompress.data.graphs.datasets` for loading graph datasets by name,
:mod:`jaxcompress.ssl.span_cache` for the cached SPAN precompute and
:mod:`jaxcompress.ssl.probe` / :mod:`jaxcompress.ssl.robustness` for the
linear-probe and perturbation evaluations.
"""

from jaxcompress.data.graphs.batching import (
                                        Graph,
                                        GraphBudget,
                                        canonical_graph,
                                        from_networkx,
                                        graphs_tuple,
                                        pad_graph,
                                        stack_padded,
)

__all__ = ["Graph", "GraphBudget", "canonical_graph", "from_networkx", "graphs_tuple", "pad_graph", "stack_padded"]
