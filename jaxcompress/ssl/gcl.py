"""Graph contrastive learning frameworks: GraphCL, GRACE and local-global (InfoGraph/MVGRL).

One shared encoder embeds two augmented views of every graph in a padded
batch; a framework picks what is contrasted:

* ``graphcl``: projected graph embeddings, NT-Xent across the batch;
* ``grace``: projected node embeddings, InfoNCE with intra- and inter-view
  negatives inside each graph;
* ``local_global``: node embeddings of one view against graph summaries of
  the other (both directions), Jensen-Shannon estimator, other graphs of the
  batch as negatives.

Everything is a pure function of (params, batch arrays, rng) so the training
loop jits, shards and differentiates it.

References:
  You et al., NeurIPS 2020 (GraphCL); Zhu et al., 2020 (GRACE); Sun et al.,
  ICLR 2020 (InfoGraph); Hassani & Khasahmadi, ICML 2020 (MVGRL); Lin et al.,
  ICLR 2023 (SPAN views).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxcompress.configlib import option
from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import ConfigError
from jaxcompress.nn.graph import GraphEncoder, ProjectionHead
from jaxcompress.ssl import gcl_losses, span
from jaxcompress.ssl.graph_augment import TOPOLOGY, augment

FRAMEWORKS = ("graphcl", "grace", "local_global")


@dataclasses.dataclass(unsafe_hash=True)
class GCLConfig:
    """Graph contrastive learning: framework, encoder, heads, augmentation and SPAN settings.

    The model config of the ``gcl`` task and the static settings of
    :class:`GCLModel` (hashable, since jitted functions close over it; treat a
    built config as a value). ``extra_edges=-1`` is resolved from the dataset
    by :meth:`for_dataset` before a model is built.
    """

    framework: str = option("graphcl", help="what is contrasted", choices=FRAMEWORKS)
    encoder: str = option("gin", help="message-passing layers", choices=("gin", "gcn"))
    hidden: int = option(32, help="width of every encoder layer", min=1)
    num_layers: int = option(3, help="encoder layers", min=1, max=16)
    readout: str = option("sum", help="graph readout over real nodes", choices=("sum", "mean"))
    activation: str = option("relu", help="encoder activation", choices=("relu", "prelu", "elu"))
    concat_layers: bool = option(True, help="embeddings concatenate every layer (GraphCL) or keep the last")
    proj_hidden: int = option(32, help="projection head hidden width", min=1)
    proj_dim: int = option(32, help="projection head output width", min=1)
    temperature: float = option(0.2, help="NT-Xent / InfoNCE temperature", min=0.0, min_exclusive=True)
    symmetric: bool = option(False, help="graphcl: SimCLR two-way NT-Xent with intra-view negatives")
    augmentation: str = option("span", help="topology augmentation of both views", choices=TOPOLOGY)
    aug_ratio: float = option(0.2, help="strength of the random augmentations (edges, nodes)", min=0.0, max=1.0)
    feature_mask: float = option(0.0, help="feature-column masking rate of view 1", min=0.0, max=0.95)
    feature_mask_2: float = option(-1.0, help="feature-column masking rate of view 2 (-1: as view 1)",
                                   min=-1.0, max=0.95)
    span_ratio: float = option(0.2, help="SPAN flip budget per graph, ratio * |E|", min=0.0, max=10.0)
    span_lr: float = option(0.5, help="SPAN projected-gradient step size", min=0.0, min_exclusive=True)
    span_iterations: int = option(20, help="SPAN projected-gradient steps per view", min=0)
    span_operator: str = option("gcn_adj", help="spectral operator", choices=span.OPERATORS)
    span_objective: str = option("norm", help="||eig|| (norm) or distance to the original spectrum (l2)",
                                 choices=span.OBJECTIVES)
    span_spectrum: str = option("auto", help="eigvalsh, frobenius (exact shortcut for 'norm') or auto (it where exact)",
                                choices=span.SPECTRA)
    span_normalize_grad: bool = option(True, help="scale each SPAN step by the largest |gradient|")
    span_clip_max: float = option(1.0, help="upper bound of a flip probability", min=0.0, max=1.0,
                                  min_exclusive=True)
    span_seed: int = option(0, help="seed of the SPAN initialisation", min=0)
    extra_edges: int = option(-1, help="edge slots reserved for added edges (-1: twice the expected additions "
                                       "plus slack, from the dataset's edge count)", min=-1)

    def validate(self, prefix: str) -> None:
        if self.framework == "grace" and self.augmentation in ("node_drop", "subgraph"):
            raise ConfigError(f"config key '{prefix}augmentation' = {self.augmentation!r} removes nodes, but "
                              f"GRACE contrasts each node with itself; use an edge augmentation or span")
        self.span_config()  # raises on inconsistent SPAN settings

    def span_config(self) -> span.SpanConfig:
        return span.SpanConfig(ratio=self.span_ratio, lr=self.span_lr, iterations=self.span_iterations,
                               operator=self.span_operator, objective=self.span_objective,
                               spectrum=self.span_spectrum, clip_max=self.span_clip_max,
                               normalize_grad=self.span_normalize_grad, seed=self.span_seed)

    @property
    def uses_span(self) -> bool:
        return self.augmentation in ("span", "span_uniform")

    def for_dataset(self, max_edges: int) -> "GCLConfig":
        """A copy with ``extra_edges`` resolved for graphs of at most ``max_edges`` edges."""
        if self.extra_edges >= 0:
            return self
        if self.augmentation in ("none", "edge_drop", "node_drop", "subgraph"):
            return dataclasses.replace(self, extra_edges=0)
        ratio = self.span_ratio if self.uses_span else self.aug_ratio
        return dataclasses.replace(self, extra_edges=int(math.ceil(2.0 * ratio * max_edges)) + 8)


class GCLModel(nn.Module):
    """Shared encoder plus the projection heads the framework needs.

    Shapes: slot-batched GraphsTuple -> dict with ``nodes`` [B, N, D],
    ``graphs`` [B, D] and the projected ``node_proj`` / ``graph_proj``.

    References:
      You et al., NeurIPS 2020; Zhu et al., 2020; Sun et al., ICLR 2020.
    """

    settings: GCLConfig

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> dict[str, jax.Array]:
        s = self.settings
        encoder = GraphEncoder(s.encoder, s.hidden, s.num_layers, s.readout, s.activation, s.concat_layers,
                               name="encoder")
        nodes, graphs = encoder(graph)
        out = {"nodes": nodes, "graphs": graphs}
        if s.framework in ("graphcl", "local_global"):
            out["graph_proj"] = ProjectionHead(s.proj_hidden, s.proj_dim, name="graph_head")(graphs)
        if s.framework in ("grace", "local_global"):
            out["node_proj"] = ProjectionHead(s.proj_hidden, s.proj_dim, name="node_head")(nodes)
        return out


def _slots(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    max_nodes, max_edges = batch[gb.NODE_FEATURES].shape[1], batch[gb.EDGES].shape[1]
    nodes_mask = gb.node_mask(batch[gb.NUM_NODES], max_nodes)
    edges_mask = gb.edge_mask(batch[gb.NUM_EDGES], max_edges)
    return {"features": batch[gb.NODE_FEATURES].astype(jnp.float32), "nodes_mask": nodes_mask,
            "edges": batch[gb.EDGES].astype(jnp.int32), "edges_mask": edges_mask,
            "adjacency": gb.dense_adjacency(batch[gb.EDGES], edges_mask, max_nodes),
            "num_edges": batch[gb.NUM_EDGES].astype(jnp.float32)}


def make_views(settings: GCLConfig, batch: dict[str, jax.Array], rng: jax.Array
               ) -> tuple[jraph.GraphsTuple, jraph.GraphsTuple, dict[str, jax.Array]]:
    """Two augmented views of every graph of a padded batch, and flip statistics."""
    slots = _slots(batch)
    size = slots["features"].shape[0]
    keys = jax.random.split(rng, 2 * size)
    keys = keys.reshape((2, size) + keys.shape[1:])  # typed keys [2B] or raw uint32 keys [2B, 2]
    graphs, stats = [], {}
    for view in (0, 1):
        span_p = batch.get(f"span_p{view + 1}") if settings.uses_span else None
        rate = settings.feature_mask if (view == 0 or settings.feature_mask_2 < 0) else settings.feature_mask_2

        def one(key, features, nodes_mask, edges, edges_mask, adjacency, num_edges, probabilities):
            return augment(key, settings.augmentation, features, nodes_mask, edges, edges_mask, adjacency,
                           num_edges, settings.aug_ratio, rate, settings.extra_edges, probabilities)

        in_axes = (0, 0, 0, 0, 0, 0, 0, 0 if span_p is not None else None)
        v = jax.vmap(one, in_axes=in_axes)(keys[view], slots["features"], slots["nodes_mask"], slots["edges"],
                                           slots["edges_mask"], slots["adjacency"], slots["num_edges"], span_p)
        graphs.append(gb.graphs_tuple(v.features, v.nodes_mask, v.edges, v.weights))
        stats[f"flips_view{view + 1}"] = v.flips
        stats[f"overflow_view{view + 1}"] = v.overflow
    return graphs[0], graphs[1], stats


def contrastive_loss(settings: GCLConfig, out1: dict[str, jax.Array], out2: dict[str, jax.Array],
                     g1: jraph.GraphsTuple, g2: jraph.GraphsTuple) -> tuple[jax.Array, jax.Array]:
    """(scalar loss, per-graph loss [B]) of the framework on two encoded views."""
    valid = g1.globals["mask"] * g2.globals["mask"]
    if settings.framework == "graphcl":
        return gcl_losses.nt_xent(out1["graph_proj"], out2["graph_proj"], settings.temperature, valid,
                                  settings.symmetric)
    if settings.framework == "grace":
        # Nodes dropped from either view are no anchors (GRACE keeps all nodes; node drop is optional here).
        both = g1.nodes["mask"] * g2.nodes["mask"]
        _, per_node = jax.vmap(gcl_losses.grace_loss, in_axes=(0, 0, None, 0))(
            out1["node_proj"], out2["node_proj"], settings.temperature, both)
        per_graph = per_node.sum(1) / jnp.maximum(both.sum(1), 1.0) * valid
        loss = per_node.sum() / jnp.maximum(both.sum(), 1.0)
        return loss, per_graph
    loss_a, per_a = gcl_losses.local_global_jsd(out1["node_proj"], out2["graph_proj"], g1.nodes["mask"], valid)
    loss_b, per_b = gcl_losses.local_global_jsd(out2["node_proj"], out1["graph_proj"], g2.nodes["mask"], valid)
    return 0.5 * (loss_a + loss_b), 0.5 * (per_a + per_b)


def objective(model: GCLModel, params: Any, batch: dict[str, jax.Array], rng: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Training loss and metrics of one padded batch (views sampled from ``rng``)."""
    g1, g2, stats = make_views(model.settings, batch, rng)
    out1 = model.apply({"params": params}, g1)
    out2 = model.apply({"params": params}, g2)
    loss, per_graph = contrastive_loss(model.settings, out1, out2, g1, g2)
    real = jnp.maximum((batch[gb.NUM_EDGES] >= 0).sum(), 1)
    metrics = {"loss": loss,
               "flips_view1": stats["flips_view1"].sum() / real, "flips_view2": stats["flips_view2"].sum() / real,
               "overflow": (stats["overflow_view1"].sum() + stats["overflow_view2"].sum()) / real}
    return loss, metrics


def embed(model: GCLModel, params: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Encoder outputs of the un-augmented graphs: ``nodes`` [B, N, D], ``graphs`` [B, D]."""
    graph = gb.batch_graphs_tuple(batch)
    out = model.apply({"params": params}, graph)
    return {"nodes": out["nodes"], "graphs": out["graphs"]}
