"""Graph datasets generated offline with networkx: structural labels, controlled difficulty.

Graph classification (the label is a property of the structure only; node
features are one-hot degrees, as usual for featureless graphs):

* :func:`families`: Erdos-Renyi vs Barabasi-Albert vs Watts-Strogatz vs
  2-block SBM at matched mean degree. ``difficulty`` in [0, 1] moves the
  Watts-Strogatz rewiring and the SBM block contrast towards Erdos-Renyi.
* :func:`communities`: SBMs with 2 vs 3 planted blocks at the same size and
  density; ``difficulty`` lowers the in/out contrast.
* :func:`cycles`: a random tree plus the same number of extra edges, closing
  short cycles (triangles) in one class and long cycles in the other: same
  node and edge counts, so degree counting alone cannot separate them.

Node classification:

* :func:`sbm_node_graphs`: SBM graphs with planted blocks as node labels and
  noisy class-dependent Gaussian features (``feature_snr`` sets how much the
  features alone reveal; the rest must come from the structure).
* :func:`real_graphs`: the small real graphs networkx ships (Zachary's karate
  club, the Davis southern women, the Florentine families, Les Miserables),
  with their node labels.

Every generator is deterministic given its seed.

References:
  Erdos & Renyi 1959; Barabasi & Albert, Science 1999; Watts & Strogatz,
  Nature 1998; Holland et al., "Stochastic blockmodels", 1983; Zachary, "An
  Information Flow Model for Conflict and Fission in Small Groups", 1977;
  Davis, Gardner & Gardner, "Deep South", 1941; Padgett & Ansell, 1993;
  Knuth, "The Stanford GraphBase", 1993 (Les Miserables).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxcompress.data.graphs.batching import Graph, canonical_graph, from_networkx

#: Width of the one-hot degree features (degrees >= DEGREE_BINS - 1 share the last bin).
DEGREE_BINS = 8


def degree_features(num_nodes: int, edges: np.ndarray, bins: int = DEGREE_BINS) -> np.ndarray:
    """One-hot node degrees, float32 [n, bins] (the last bin collects degrees >= bins - 1)."""
    degree = np.bincount(edges.reshape(-1), minlength=num_nodes) if edges.size else np.zeros(num_nodes, int)
    return np.eye(bins, dtype=np.float32)[np.minimum(degree, bins - 1)]


def _with_degrees(graph: Graph, label: int, node_labels: np.ndarray | None = None) -> Graph:
    return canonical_graph(graph.num_nodes, graph.edges, degree_features(graph.num_nodes, graph.edges), label,
                           node_labels)


def _sizes(rng: np.random.Generator, count: int, low: int, high: int) -> np.ndarray:
    return rng.integers(low, high + 1, size=count)


def families(per_class: int, seed: int = 0, difficulty: float = 0.3, min_nodes: int = 16,
             max_nodes: int = 40, mean_degree: float = 4.0) -> list[Graph]:
    """Four generative families at matched mean degree; label = family (0 ER, 1 BA, 2 WS, 3 SBM).

    Returns ``4 * per_class`` graphs, classes interleaved.
    """
    import networkx as nx

    rng = np.random.default_rng([seed, 1])
    makers: list[Callable[[int, int], object]] = [
        lambda n, s: nx.gnp_random_graph(n, mean_degree / (n - 1), seed=s),
        lambda n, s: nx.barabasi_albert_graph(n, max(1, int(round(mean_degree / 2))), seed=s),
        lambda n, s: nx.watts_strogatz_graph(n, int(round(mean_degree)), 0.05 + 0.6 * difficulty, seed=s),
        lambda n, s: _sbm(n, 2, mean_degree, contrast=8.0 * (1 - difficulty) + 1.0, seed=s),
    ]
    graphs = []
    sizes = _sizes(rng, per_class * 4, min_nodes, max_nodes)
    seeds = rng.integers(0, 2**31 - 1, size=per_class * 4)
    for i in range(per_class * 4):
        label = i % 4
        graphs.append(_with_degrees(from_networkx(makers[label](int(sizes[i]), int(seeds[i]))), label))
    return graphs


def _sbm(n: int, blocks: int, mean_degree: float, contrast: float, seed: int, return_blocks: bool = False):
    """SBM with ``blocks`` near-equal blocks, p_in / p_out = contrast, expected mean degree ``mean_degree``."""
    import networkx as nx

    sizes = [n // blocks + (1 if b < n % blocks else 0) for b in range(blocks)]
    inside = sum(s * (s - 1) for s in sizes) / 2
    between = (n * (n - 1) / 2) - inside
    # Expected edges = p_in * inside + p_out * between = n * mean_degree / 2, p_in = contrast * p_out.
    p_out = (n * mean_degree / 2) / (contrast * inside + between)
    p_in = min(contrast * p_out, 1.0)
    probs = [[p_in if a == b else p_out for b in range(blocks)] for a in range(blocks)]
    graph = nx.stochastic_block_model(sizes, probs, seed=seed)
    if return_blocks:
        return graph, np.repeat(np.arange(blocks), sizes)
    return graph


def communities(per_class: int, seed: int = 0, difficulty: float = 0.5, min_nodes: int = 24,
                max_nodes: int = 48, mean_degree: float = 5.0) -> list[Graph]:
    """SBMs with 2 (label 0) vs 3 (label 1) blocks at the same size distribution and density."""
    from jaxcompress.data.graphs.batching import from_networkx as _from

    rng = np.random.default_rng([seed, 2])
    sizes = _sizes(rng, per_class * 2, min_nodes, max_nodes)
    seeds = rng.integers(0, 2**31 - 1, size=per_class * 2)
    contrast = 1.0 + 15.0 * (1.0 - difficulty)
    return [_with_degrees(_from(_sbm(int(sizes[i]), 2 + i % 2, mean_degree, contrast, int(seeds[i]))), i % 2)
            for i in range(per_class * 2)]


def cycles(per_class: int, seed: int = 0, extra_fraction: float = 0.25, min_nodes: int = 16,
           max_nodes: int = 36) -> list[Graph]:
    """Random trees plus ``round(extra_fraction * n)`` extra edges; label 0 closes triangles
    (endpoints 2 hops apart when added), label 1 closes only cycles of length >= 5 (endpoints
    >= 4 hops apart when added), so label-1 graphs have girth >= 5."""
    import networkx as nx

    rng = np.random.default_rng([seed, 3])
    graphs = []
    for i in range(per_class * 2):
        label = i % 2
        n = int(rng.integers(min_nodes, max_nodes + 1))
        tree = nx.random_labeled_tree(n, seed=int(rng.integers(0, 2**31 - 1))) if hasattr(
            nx, "random_labeled_tree") else nx.random_tree(n, seed=int(rng.integers(0, 2**31 - 1)))
        want = max(1, int(round(extra_fraction * n)))
        pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
        graph = tree.copy()
        added = 0
        for j in rng.permutation(len(pairs)):
            u, v = pairs[j]
            if graph.has_edge(u, v):
                continue
            # Distance in the current graph, so that the shortest cycle through the new edge
            # is a triangle (label 0) or has length >= 5 (label 1): label-1 graphs stay triangle-free.
            d = nx.shortest_path_length(graph, u, v)
            if (label == 0 and d == 2) or (label == 1 and d >= 4):
                graph.add_edge(u, v)
                added += 1
                if added == want:
                    break
        graphs.append(_with_degrees(from_networkx(graph), label))
    return graphs


def sbm_node_graphs(num_graphs: int, seed: int = 0, blocks: int = 4, min_nodes: int = 60, max_nodes: int = 120,
                    mean_degree: float = 6.0, contrast: float = 6.0, num_features: int = 16,
                    feature_snr: float = 0.35) -> list[Graph]:
    """SBM graphs whose node labels are the planted blocks.

    Features: ``feature_snr * mu[block] + N(0, I)`` with one fixed random unit
    mean per block (shared by all graphs), so a node's own features are a weak
    hint of its class and its neighbourhood a strong one.
    """
    rng = np.random.default_rng([seed, 4])
    means = rng.normal(size=(blocks, num_features))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    graphs = []
    for _ in range(num_graphs):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        nxg, membership = _sbm(n, blocks, mean_degree, contrast, int(rng.integers(0, 2**31 - 1)),
                               return_blocks=True)
        order = rng.permutation(n)  # node ids must not reveal the block
        relabel = {int(old): int(new) for new, old in enumerate(order)}
        labels = membership[order]
        edges = np.asarray([(relabel[u], relabel[v]) for u, v in nxg.edges()], np.int64).reshape(-1, 2)
        features = feature_snr * means[labels] * np.sqrt(num_features) + rng.normal(size=(n, num_features))
        graphs.append(canonical_graph(n, edges, features.astype(np.float32), -1, labels))
    return graphs


#: The networkx graphs shipped as node-level checks, with how their node labels are defined.
REAL_GRAPHS = {
    "karate_club": "Zachary's karate club (34 nodes); label: the club each member joined after the split",
    "davis_southern_women": "Davis southern women (32 nodes, bipartite); label: woman (0) or event (1)",
    "florentine_families": "Florentine families (15 nodes); label: greedy-modularity community",
    "les_miserables": "Les Miserables co-appearances (77 nodes); label: greedy-modularity community",
}


def real_graphs() -> dict[str, Graph]:
    """The small real graphs of networkx with node labels and one-hot degree features.

    Karate and Davis carry ground-truth labels; the Florentine families and Les
    Miserables have none, so their labels are the communities found by
    networkx's deterministic greedy modularity maximisation (a structural
    target for node-level sanity checks, not ground truth).
    """
    import networkx as nx
    from networkx.algorithms.community import greedy_modularity_communities

    def community_labels(graph) -> np.ndarray:
        index = {node: i for i, node in enumerate(graph.nodes())}
        labels = np.zeros(len(index), np.int32)
        for c, members in enumerate(greedy_modularity_communities(graph)):
            for node in members:
                labels[index[node]] = c
        return labels

    karate = nx.karate_club_graph()
    davis = nx.davis_southern_women_graph()
    florentine = nx.florentine_families_graph()
    miserables = nx.les_miserables_graph()
    labelled = {
        "karate_club": (karate, np.asarray([0 if karate.nodes[v]["club"] == "Mr. Hi" else 1 for v in karate])),
        "davis_southern_women": (davis, np.asarray([davis.nodes[v]["bipartite"] for v in davis])),
        "florentine_families": (florentine, community_labels(florentine)),
        "les_miserables": (miserables, community_labels(miserables)),
    }
    out = {}
    for name, (graph, labels) in labelled.items():
        g = from_networkx(graph, where=name)
        out[name] = _with_degrees(g, -1, labels.astype(np.int32))
    return out
