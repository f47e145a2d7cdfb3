"""Embedded graph datasets, real TFDS graph datasets by name (a tiny ragged one made here), the loop."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxcompress import data as data_lib
from jaxcompress.data.graphs import batching as gb
from jaxcompress.data.graphs import datasets, generators
from jaxcompress.errors import DataError


def test_embedded_graph_datasets_are_canonical_padded_and_stratified():
    info = data_lib.dataset_info("graph_cycles")
    assert info["splits"] == {"train": 400, "validation": 100, "test": 100} and info["num_classes"] == 2
    ids = []
    for split, size in info["splits"].items():
        arrays = datasets.padded_arrays("graph_cycles", split)
        ids.append(arrays[gb.GRAPH_ID])
        assert np.bincount(arrays[gb.LABEL]).tolist() == [size // 2, size // 2]
        for g in range(0, size, 37):
            e, n = arrays[gb.NUM_EDGES][g], arrays[gb.NUM_NODES][g]
            edges = arrays[gb.EDGES][g][:e]
            assert np.all(edges[:, 0] < edges[:, 1]) and edges.max() < n
            assert len({tuple(x) for x in edges}) == e
            # One-hot degree features agree with the stored edges.
            degree = np.bincount(edges.reshape(-1), minlength=n)
            assert np.all(arrays[gb.NODE_FEATURES][g][:n].argmax(1) == np.minimum(degree, 7))
    assert len(np.unique(np.concatenate(ids))) == 600  # ids unique across splits (SPAN cache keys)


def test_structural_labels_control_difficulty():
    graphs = generators.cycles(20, seed=1)
    for label in (0, 1):
        members = [g for g in graphs if g.label == label]
        # Same number of extra edges over a tree in both classes: m = n - 1 + round(n / 4).
        assert all(g.num_edges == g.num_nodes - 1 + max(1, round(g.num_nodes / 4)) for g in members)
    triangles = {label: np.mean([sum(nx.triangles(nx.Graph(g.edges.tolist())).values()) / 3
                                 for g in graphs if g.label == label]) for label in (0, 1)}
    assert triangles[0] >= 3 and triangles[1] == 0
    easy = generators.communities(10, seed=0, difficulty=0.0)
    hard = generators.communities(10, seed=0, difficulty=1.0)

    def modularity(g: gb.Graph) -> float:
        graph = nx.Graph()
        graph.add_nodes_from(range(g.num_nodes))
        graph.add_edges_from(g.edges.tolist())
        return nx.community.modularity(graph, nx.community.greedy_modularity_communities(graph))

    assert np.mean([modularity(g) for g in easy]) > np.mean([modularity(g) for g in hard]) + 0.1


def test_real_networkx_graphs_with_their_labels():
    arrays = data_lib.load_split("nx_real_graphs", "karate_club").read(np.arange(1))
    assert int(arrays[gb.NUM_NODES][0]) == 34 and int(arrays[gb.NUM_EDGES][0]) == 78
    labels = arrays[gb.NODE_LABELS][0]
    assert np.bincount(labels[:34]).tolist() == [17, 17] and np.all(labels[34:] == -1)
    graphs = generators.real_graphs()
    assert {k: g.num_nodes for k, g in graphs.items()} == {"karate_club": 34, "davis_southern_women": 32,
                                                           "florentine_families": 15, "les_miserables": 77}


class TinyOgbLike(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A ragged graph dataset laid out like ogbg_molpcba (node_feat, edge_index both ways, num_nodes [1])."""

    VERSION = tfds.core.Version("1.0.0")
    url_infos = None
    name = "tiny_ogb_like"

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "node_feat": tfds.features.Tensor(shape=(None, 3), dtype=np.float32),
            "edge_index": tfds.features.Tensor(shape=(None, 2), dtype=np.int64),
            "num_nodes": tfds.features.Tensor(shape=(1,), dtype=np.int64),
            "labels": tfds.features.Tensor(shape=(1,), dtype=np.int64)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 16), "validation": self._generate_examples(16, 8)}

    def _generate_examples(self, first, count):
        for i in range(first, first + count):
            g = nx.cycle_graph(5 + i % 7) if i % 2 else nx.star_graph(4 + i % 5)
            edges = np.asarray(list(g.edges()), np.int64)
            both = np.concatenate([edges, edges[:, ::-1]])  # directed both ways, as OGB stores them
            n = g.number_of_nodes()
            yield i, {"node_feat": np.full((n, 3), i % 3, np.float32), "edge_index": both,
                      "num_nodes": np.asarray([n]), "labels": np.asarray([i % 2])}


def test_real_tfds_graph_dataset_by_name_pads_and_trains_with_span(tmp_path):
    builder = TinyOgbLike(data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare(download_dir=str(tmp_path / "downloads"))
    graphs = datasets.read_graphs("tiny_ogb_like", "train", data_dir=tmp_path)
    assert len(graphs) == 16 and graphs[0].num_edges == graphs[0].num_nodes - 1  # a star, each edge once
    with pytest.raises(DataError, match="graph 0 of split 'train' of dataset 'tiny_ogb_like' has 6 nodes, more than .* max_nodes=4"):
        datasets.prepare_padded("tiny_ogb_like", gb.GraphBudget(4, 64), data_dir=tmp_path)
    name = datasets.prepare_padded("tiny_ogb_like", data_dir=tmp_path)
    assert name == "tiny_ogb_like_padded_n16_e16"
    info = data_lib.dataset_info(name, tmp_path)
    assert info["splits"] == {"train": 16, "validation": 8} and info["num_classes"] == 2

    from jaxcompress.configs.gcl import gcl_config
    from jaxcompress.ssl.gcl import GCLConfig
    from jaxcompress.tasks.gcl import GraphContrastiveTask
    from jaxcompress.train import train

    model = GCLConfig(hidden=8, num_layers=2, proj_hidden=8, proj_dim=8, span_iterations=2)
    config = gcl_config("tiny", name, model, steps=2, batch_size=8)
    config.data.data_dir = str(tmp_path)
    config.data.eval_split = "validation"
    summary = train(config, tmp_path / "run", quiet=True)
    assert math.isfinite(summary["train_metrics"]["loss"]) and summary["final_step"] == 2
    assert math.isfinite(summary["eval_metrics"]["loss"]) and -1 <= summary["eval_metrics"]["alignment"] <= 1
    again = GraphContrastiveTask(config, info, progress=False)
    assert all(r.from_cache for r in again.span_results.values())
    assert sorted(again.span_results) == ["train", "validation"]
