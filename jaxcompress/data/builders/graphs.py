"""Embedded graph datasets (networkx-generated and networkx's real graphs) as TFDS builders.

Every record is one graph padded to the dataset's static budget, so batches
stack without a custom collate and a jitted step compiles once:

* ``node_features`` float32 [N, F] (one-hot degrees for structural datasets,
  Gaussian class-dependent features for ``sbm_nodes``; zero past n);
* ``edges`` int32 [E, 2]: each undirected edge once as (i, j), i < j; rows
  past ``num_edges`` are (0, 0);
* ``num_nodes``, ``num_edges`` int32 scalars;
* ``graph_id`` int64, unique over all splits (keys the SPAN cache);
* ``label`` (graph classification, ``ClassLabel``) or ``node_labels`` int32
  [N] (node classification; -1 past n).

Graph-classification splits are stratified by class, 2/3 train, 1/6
validation, 1/6 test, ordered within a class by the BLAKE2b digest of
``"<dataset>/<index>"`` (no RNG, stable across numpy versions).

References:
  See :mod:`jaxcompress.data.graphs.generators` for the generative models and the
  real graphs' sources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcompress.data.graphs import generators
from jaxcompress.data.graphs.batching import Graph, GraphBudget, pad_graph


def stratified_splits(dataset: str, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices per split, stratified by label: 2/3 train, 1/6 validation, 1/6 test."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for label in np.unique(labels):
        rows = sorted(np.flatnonzero(labels == label),
                      key=lambda row: hashlib.blake2b(f"{dataset}/{row}".encode()).digest())
        held = len(rows) // 6
        parts["train"].append(np.asarray(rows[:len(rows) - 2 * held], np.int64))
        parts["validation"].append(np.asarray(rows[len(rows) - 2 * held:len(rows) - held], np.int64))
        parts["test"].append(np.asarray(rows[len(rows) - held:], np.int64))
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


class GraphBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared record format; subclasses say how graphs are made and split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    url_infos = None  # nothing is downloaded
    BUDGET = GraphBudget(40, 96)
    NUM_FEATURES = generators.DEGREE_BINS
    NUM_CLASSES = 2  # graph classes; 0 for node-level datasets
    SHORT_NAME = ""
    DESCRIPTION = ""

    def _info(self) -> tfds.core.DatasetInfo:
        n, e = self.BUDGET.max_nodes, self.BUDGET.max_edges
        features = {
            "node_features": tfds.features.Tensor(shape=(n, self.NUM_FEATURES), dtype=np.float32),
            "edges": tfds.features.Tensor(shape=(e, 2), dtype=np.int32),
            "num_nodes": tfds.features.Tensor(shape=(), dtype=np.int32),
            "num_edges": tfds.features.Tensor(shape=(), dtype=np.int32),
            "graph_id": tfds.features.Tensor(shape=(), dtype=np.int64),
        }
        if self.NUM_CLASSES:
            features["label"] = tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)
        else:
            features["node_labels"] = tfds.features.Tensor(shape=(n,), dtype=np.int32)
        return tfds.core.DatasetInfo(
            builder=self, description=self.DESCRIPTION + f" Padded to {n} nodes and {e} undirected edges.",
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("node_features", "label") if self.NUM_CLASSES else None,
            homepage="https://networkx.org")

    def make_splits(self) -> dict[str, list[Graph]]:
        raise NotImplementedError

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager
        splits = self.make_splits()
        offset, out = 0, {}
        for name, graphs in splits.items():
            out[name] = self._generate_examples(graphs, offset)
            offset += len(graphs)
        return out

    def _generate_examples(self, graphs: list[Graph], first_id: int) -> Iterator[tuple[int, dict]]:
        for i, graph in enumerate(graphs):
            record = pad_graph(graph, self.BUDGET, first_id + i, where=f"{self.SHORT_NAME} graph {first_id + i}")
            if not self.NUM_CLASSES:
                record.pop("label")
            else:
                record.pop("node_labels")
            yield first_id + i, record


class _GraphClassification(GraphBuilder, skip_registration=True):
    def graphs(self) -> list[Graph]:
        raise NotImplementedError

    def make_splits(self) -> dict[str, list[Graph]]:
        graphs = self.graphs()
        rows = stratified_splits(self.SHORT_NAME, np.asarray([g.label for g in graphs]))
        return {name: [graphs[i] for i in index] for name, index in rows.items()}


class JaxcompressGraphFamilies(_GraphClassification, skip_registration=True):
    """Graph families: ER vs BA vs Watts-Strogatz vs 2-block SBM, 600 graphs of 16-40 nodes (networkx)."""

    SHORT_NAME = "graph_families"
    BUDGET = GraphBudget(40, 96)
    NUM_CLASSES = 4
    DESCRIPTION = ("600 graphs (150 per class) from four networkx generators at mean degree 4: Erdos-Renyi, "
                   "Barabasi-Albert, Watts-Strogatz (rewiring 0.23) and a 2-block SBM (p_in/p_out 6.6); "
                   "node features are one-hot degrees.")

    def graphs(self) -> list[Graph]:
        return generators.families(150, seed=0, difficulty=0.3)


class JaxcompressGraphCommunities(_GraphClassification, skip_registration=True):
    """Planted communities: SBM with 2 vs 3 blocks at equal size and density, 600 graphs (networkx)."""

    SHORT_NAME = "graph_communities"
    BUDGET = GraphBudget(48, 160)
    NUM_CLASSES = 2
    DESCRIPTION = ("600 stochastic block model graphs of 24-48 nodes at mean degree 5 with 2 (label 0) or 3 "
                   "(label 1) planted blocks, p_in/p_out = 8.5; node features are one-hot degrees.")

    def graphs(self) -> list[Graph]:
        return generators.communities(300, seed=0, difficulty=0.5)


class JaxcompressGraphCycles(_GraphClassification, skip_registration=True):
    """Short vs long cycles: trees plus the same number of triangle- or long-cycle-closing edges (networkx)."""

    SHORT_NAME = "graph_cycles"
    BUDGET = GraphBudget(40, 48)
    NUM_CLASSES = 2
    DESCRIPTION = ("600 random trees of 16-36 nodes plus round(n/4) extra edges closing triangles (label 0) or "
                   "cycles of length >= 5 (label 1); same node and edge counts in both classes; node features "
                   "are one-hot degrees.")

    def graphs(self) -> list[Graph]:
        return generators.cycles(300, seed=0)


class JaxcompressSbmNodes(GraphBuilder, skip_registration=True):
    """Node classification on SBM graphs: 4 planted blocks, weak Gaussian features, 64 graphs (networkx)."""

    SHORT_NAME = "sbm_nodes"
    BUDGET = GraphBudget(120, 400)
    NUM_FEATURES = 16
    NUM_CLASSES = 0
    DESCRIPTION = ("64 stochastic block model graphs of 60-120 nodes, 4 blocks (the node labels), mean degree 6, "
                   "p_in/p_out 6; 16-d features = 0.35 * sqrt(16) * block mean + N(0, I). Splits by graph: "
                   "48 train, 8 validation, 8 test (inductive node classification).")

    def make_splits(self) -> dict[str, list[Graph]]:
        graphs = generators.sbm_node_graphs(64, seed=0)
        return {"train": graphs[:48], "validation": graphs[48:56], "test": graphs[56:]}


class JaxcompressNxRealGraphs(GraphBuilder, skip_registration=True):
    """The small real graphs networkx ships, one split each, with node labels (karate, Davis, ...)."""

    SHORT_NAME = "nx_real_graphs"
    BUDGET = GraphBudget(80, 256)
    NUM_CLASSES = 0
    DESCRIPTION = ("One record per split: " + "; ".join(f"{k}: {v}" for k, v in generators.REAL_GRAPHS.items())
                   + ". Node features are one-hot degrees.")

    def make_splits(self) -> dict[str, list[Graph]]:
        return {name: [graph] for name, graph in generators.real_graphs().items()}
