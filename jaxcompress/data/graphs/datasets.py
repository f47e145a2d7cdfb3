"""Graph datasets by name: embedded (padded) and real TFDS graph datasets (ragged) through one path.

Any TFDS dataset whose records hold a graph as node features plus an edge
index can be read: the padded format of the embedded datasets (``edges``
[E, 2] with ``num_nodes`` / ``num_edges``) and the ragged format of real graph
datasets such as ``ogbg_molpcba`` (``node_feat`` [n, F], ``edge_index``
[e, 2], ``num_nodes``). Records are read through
:func:`jaxcompress.data.load_split` (array_record, no TensorFlow, nothing
downloaded) and every graph goes through
:func:`jaxcompress.data.graphs.batching.canonical_graph`, so bad graphs fail with the
graph's index and split in the message.

The training loop needs static shapes, so a ragged dataset is first written
once as a padded derived TFDS dataset in the same data directory
(:func:`prepare_padded`, named ``<name>_padded_n<N>_e<E>``); the loop then
opens it by that name like any prepared TFDS dataset.

References:
  Hu et al., "Open Graph Benchmark", NeurIPS 2020 (the ogbg record layout);
  TensorFlow Datasets, array_record file format.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import types
from typing import Any

import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.data._paths import resolve_data_dir
from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import DataError

#: Feature names tried, in order, for each part of a graph record.
NODE_FEATURE_KEYS = ("node_features", "node_feat", "x")
EDGE_KEYS = ("edges", "edge_index")
NUM_NODES_KEYS = ("num_nodes", "n_node")
NUM_EDGES_KEYS = ("num_edges", "n_edge")
LABEL_KEYS = ("label", "labels", "y")
NODE_LABEL_KEYS = ("node_labels", "node_label")


def _first(features: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in features), None)


def _scalar(value: Any) -> int:
    array = np.asarray(value).reshape(-1)
    return int(array[0]) if array.size else 0


def _label(value: Any) -> int:
    """A graph label if it is one integer class; -1 otherwise (multi-task or missing targets)."""
    array = np.asarray(value).reshape(-1)
    if array.size != 1 or not np.isfinite(array[0]):
        return -1
    return int(array[0])


def schema(features: dict[str, Any], name: str) -> dict[str, str | None]:
    """Which record features hold the graph parts; raises if it is not a graph dataset."""
    found = {"nodes": _first(features, NODE_FEATURE_KEYS), "edges": _first(features, EDGE_KEYS),
             "num_nodes": _first(features, NUM_NODES_KEYS), "num_edges": _first(features, NUM_EDGES_KEYS),
             "label": _first(features, LABEL_KEYS), "node_labels": _first(features, NODE_LABEL_KEYS),
             "graph_id": gb.GRAPH_ID if gb.GRAPH_ID in features else None}
    if found["edges"] is None or (found["nodes"] is None and found["num_nodes"] is None):
        raise DataError(f"dataset {name!r} is not a graph dataset: it needs an edge list ({' or '.join(EDGE_KEYS)}) "
                        f"and node features ({', '.join(NODE_FEATURE_KEYS)}) or a node count "
                        f"({' or '.join(NUM_NODES_KEYS)}); it has {', '.join(sorted(features))}")
    return found


def record_to_graph(record: dict[str, np.ndarray], keys: dict[str, str | None], where: str) -> gb.Graph:
    """One record (padded or ragged) to a canonical :class:`Graph`."""
    edges = np.asarray(record[keys["edges"]])
    features = None if keys["nodes"] is None else np.asarray(record[keys["nodes"]])
    if keys["num_nodes"] is not None:
        n = _scalar(record[keys["num_nodes"]])
    else:
        n = features.shape[0]
    if keys["num_edges"] is not None and edges.ndim == 2 and edges.shape[0] >= _scalar(record[keys["num_edges"]]):
        edges = edges[:_scalar(record[keys["num_edges"]])]
    if edges.ndim == 2 and edges.shape[0] == 2 and edges.shape[1] != 2:
        edges = edges.T  # [2, e] edge_index (PyG layout)
    if features is not None and features.ndim >= 1 and features.shape[0] > n:
        features = features[:n]  # padded records
    node_labels = None
    if keys["node_labels"] is not None:
        node_labels = np.asarray(record[keys["node_labels"]])[:n]
    label = _label(record[keys["label"]]) if keys["label"] is not None else -1
    return gb.canonical_graph(n, edges, features, label, node_labels, where=where)


def read_graphs(name: str, split: str, data_dir: str | os.PathLike | None = None,
                limit: int | None = None) -> list[gb.Graph]:
    """All graphs of one split as canonical :class:`Graph` objects.

    Padded records are read in blocks; ragged ones one at a time (they cannot
    be stacked).

    Raises:
      DataError: not a graph dataset, or a graph that is malformed (the message
        names the graph's index and split).
    """
    source = data_lib.load_split(name, split, data_dir)
    keys = schema(dict(source.features), name)
    count = len(source) if limit is None else min(limit, len(source))
    ragged = any(None in shape for shape, _ in source.features.values())
    graphs: list[gb.Graph] = []
    step = 1 if ragged else 256
    for first in range(0, count, step):
        block = source.read(np.arange(first, min(first + step, count)))
        for i in range(len(next(iter(block.values())))):
            record = {k: v[i] for k, v in block.items()}
            graphs.append(record_to_graph(record, keys, f"graph {first + i} of split {split!r} of dataset {name!r}"))
    return graphs


def padded_name(name: str, budget: gb.GraphBudget) -> str:
    """Name of the padded derived dataset of ``name`` at ``budget``."""
    safe = "".join(c if c.isalnum() else "_" for c in name.split(":")[0]).strip("_").lower()
    return f"{safe}_padded_n{budget.max_nodes}_e{budget.max_edges}"


def prepare_padded(name: str, budget: gb.GraphBudget | None = None, splits: tuple[str, ...] | None = None,
                   data_dir: str | os.PathLike | None = None, drop_oversized: bool = False) -> str:
    """Writes a graph dataset once as a padded TFDS dataset the training loop can read.

    Args:
      name: any graph dataset name (embedded or prepared TFDS).
      budget: node/edge budget; None covers the largest graph.
      splits: splits to convert (default: all of the source's splits).
      data_dir: TFDS data directory (source and derived dataset).
      drop_oversized: skip graphs larger than ``budget`` instead of failing.

    Returns:
      The derived dataset's name (``<name>_padded_n<N>_e<E>``), already prepared.

    Raises:
      DataError: a malformed graph, or (unless ``drop_oversized``) a graph
        larger than the budget.
    """
    from jaxcompress.data.builders.graphs import GraphBuilder

    info = data_lib.dataset_info(name, data_dir)
    splits = tuple(splits or info["splits"].keys())
    per_split = {split: read_graphs(name, split, data_dir) for split in splits}
    every = [g for graphs in per_split.values() for g in graphs]
    if not every:
        raise DataError(f"dataset {name!r} has no graphs in splits {', '.join(splits)}")
    budget = budget or gb.GraphBudget.covering(every)
    if drop_oversized:
        per_split = {s: [g for g in gs if g.num_nodes <= budget.max_nodes and g.num_edges <= budget.max_edges]
                     for s, gs in per_split.items()}
    for split, graphs in per_split.items():  # fail before anything is written
        for i, graph in enumerate(graphs):
            gb.check_fits(graph, budget, f"graph {i} of split {split!r} of dataset {name!r}")
    widths = {g.node_features.shape[1] for g in every}
    if len(widths) != 1:
        raise DataError(f"dataset {name!r} has graphs with different node feature widths {sorted(widths)}")
    labels = [g.label for g in every]
    graph_level = all(label >= 0 for label in labels)
    derived = padded_name(name, budget)
    attributes = {"name": derived, "BUDGET": budget, "NUM_FEATURES": widths.pop(),
                  "NUM_CLASSES": (max(labels) + 1) if graph_level else 0, "SHORT_NAME": derived,
                  "DESCRIPTION": f"Dataset {name!r} padded for jaxcompress.",
                  "make_splits": lambda self: per_split}
    cls = types.new_class("PaddedGraphs", (GraphBuilder,), {"skip_registration": True},
                          lambda ns: ns.update(attributes))
    root = resolve_data_dir(data_dir)
    builder = cls(data_dir=os.fspath(root), file_format="array_record")
    if not builder.is_prepared():
        with tempfile.TemporaryDirectory(prefix="jaxcompress-") as downloads, \
                contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare(download_dir=downloads)
    return derived


def padded_arrays(name: str, split: str, data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Every record of a padded graph split, stacked: ``{feature: [G, ...]}``."""
    source = data_lib.load_split(name, split, data_dir)
    if any(None in shape for shape, _ in source.features.values()):
        raise DataError(f"dataset {name!r} has ragged records; pad it first with prepare_padded({name!r})")
    return source.read(np.arange(len(source)))
