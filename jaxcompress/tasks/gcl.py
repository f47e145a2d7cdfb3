"""Graph contrastive learning as a training-loop task (GraphCL, GRACE, local-global; SPAN views).

The dataset must be a padded graph dataset (records ``node_features`` [N, F],
``edges`` [E, 2], ``num_nodes``, ``num_edges``, ``graph_id``), as the embedded
graph datasets are and :func:`jaxcompress.graph.datasets.prepare_padded`
writes for any TFDS graph dataset. With ``augmentation=span`` (or its
budget-matched uniform baseline ``span_uniform``) the task computes the SPAN
flip probabilities of the train and eval splits when it is built (batched,
jitted, sharded over the mesh ``data`` axis, cached on disk), and
``prepare_batch`` attaches each graph's two probability matrices to the batch
by ``graph_id``; the jitted step samples fresh symmetric views from them.

References:
  You et al., NeurIPS 2020 (GraphCL); Zhu et al., 2020 (GRACE); Sun et al.,
  ICLR 2020 (InfoGraph); Lin et al., ICLR 2023 (SPAN).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.config import Config, DataConfig, MeshConfig, OptimConfig, option, register_preset
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.graph import batching as gb
from jaxcompress.ssl import gcl, span
from jaxcompress.ssl.graph_augment import TOPOLOGY
from jaxcompress.train.task import Batch, Metrics, Task, register_task

_REQUIRED = (gb.NODE_FEATURES, gb.EDGES, gb.NUM_NODES, gb.NUM_EDGES, gb.GRAPH_ID)


@dataclasses.dataclass
class GCLConfig:
    """Graph contrastive learning: framework, encoder, heads, augmentation and SPAN settings."""

    framework: str = option("graphcl", help="what is contrasted", choices=gcl.FRAMEWORKS)
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
    span_spectrum: str = option("eigvalsh", help="eigvalsh, or the exact Frobenius shortcut for 'norm'",
                                choices=span.SPECTRA)
    span_normalize_grad: bool = option(True, help="scale each SPAN step by the largest |gradient|")
    span_clip_max: float = option(1.0, help="upper bound of a flip probability", min=0.0, max=1.0,
                                  min_exclusive=True)
    span_seed: int = option(0, help="seed of the SPAN initialisation", min=0)

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


def extra_edge_slots(model: GCLConfig, max_edges: int) -> int:
    """Edge slots reserved for added edges: twice the expected additions plus slack."""
    ratio = model.span_ratio if model.augmentation in ("span", "span_uniform") else model.aug_ratio
    if model.augmentation in ("none", "edge_drop", "node_drop", "subgraph"):
        return 0
    return int(math.ceil(2.0 * ratio * max_edges)) + 8


@register_task("gcl")
class GraphContrastiveTask(Task):
    """Self-supervised graph contrastive pretraining on a padded graph dataset.

    Training metrics: ``loss``, realised flips per graph of each view, and
    ``overflow`` (sampled additions that did not fit the reserved edge slots).
    Evaluation metrics per graph: the contrastive ``loss`` and the cosine
    ``alignment`` of the two views' graph embeddings (fixed view seed).

    References:
      You et al., NeurIPS 2020; Zhu et al., 2020; Lin et al., ICLR 2023.
    """

    def __init__(self, config: Config, data_info: dict[str, Any], *, progress: bool = True):
        if not isinstance(config.model, GCLConfig):
            raise ConfigError(f"task 'gcl' needs a GCLConfig model config, got {type(config.model).__name__}")
        features = data_info.get("features") or {}
        missing = [key for key in _REQUIRED if key not in features]
        if missing:
            raise DataError(f"dataset {data_info.get('name')!r} is not a padded graph dataset (missing "
                            f"{', '.join(missing)}); pad it with jaxcompress.graph.datasets.prepare_padded")
        (self.max_nodes, self.num_features), _ = features[gb.NODE_FEATURES]
        (self.max_edges, _), _ = features[gb.EDGES]
        m = config.model
        self.settings = gcl.GCLSettings(
            framework=m.framework, encoder=m.encoder, hidden=m.hidden, num_layers=m.num_layers, readout=m.readout,
            activation=m.activation, concat_layers=m.concat_layers, proj_hidden=m.proj_hidden,
            proj_dim=m.proj_dim, temperature=m.temperature, symmetric=m.symmetric, augmentation=m.augmentation,
            aug_ratio=m.aug_ratio, feature_mask=m.feature_mask, feature_mask_2=m.feature_mask_2,
            extra_edges=extra_edge_slots(m, self.max_edges))
        self.model = gcl.GCLModel(self.settings)
        self.span_results: dict[str, Any] = {}
        if self.settings.uses_span:
            self._load_span(config, m.span_config(), progress)

    def _load_span(self, config: Config, span_config: span.SpanConfig, progress: bool) -> None:
        from jaxcompress import data as data_lib
        from jaxcompress.graph import span_cache
        from jaxcompress.train.sharding import build_mesh

        mesh = build_mesh(config.mesh)
        splits = [s for s in dict.fromkeys((config.data.train_split, config.data.eval_split)) if s]
        ids, p1, p2 = [], [], []
        for split in splits:
            source = data_lib.load_split(config.data.name, split, config.data.data_dir or None)
            padded = source.read(np.arange(len(source)))
            result = span_cache.load_or_compute(config.data.name, split, padded, span_config,
                                                data_dir=config.data.data_dir or None, mesh=mesh,
                                                progress=progress)
            self.span_results[split] = result
            ids.append(result.graph_id)
            p1.append(result.p_max)
            p2.append(result.p_min)
        self._span_lookup = span_cache.SpanResult(np.concatenate(ids), np.concatenate(p1), np.concatenate(p2),
                                                  np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = {key: np.asarray(raw[key]) for key in _REQUIRED}
        batch[gb.NODE_FEATURES] = batch[gb.NODE_FEATURES].astype(np.float32)
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        if self.settings.uses_span:
            rows = self._span_lookup.rows_for(batch[gb.GRAPH_ID].astype(np.int64))
            real = batch[gb.NUM_NODES] > 0
            if np.any((rows < 0) & real):
                missing = batch[gb.GRAPH_ID][(rows < 0) & real][:3].tolist()
                raise DataError(f"graphs {missing} have no precomputed SPAN probabilities (graph ids must be "
                                f"unique over the dataset's splits)")
            safe = np.maximum(rows, 0)
            keep = (rows >= 0)[:, None, None].astype(np.float32)
            batch["span_p1"] = self._span_lookup.p_max[safe] * keep
            batch["span_p2"] = self._span_lookup.p_min[safe] * keep
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        return self.model.init(rng, gb.batch_graphs_tuple(batch))["params"]

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        return gcl.objective(self.model, params, batch, rng)

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        g1, g2, _ = gcl.make_views(self.settings, batch, jax.random.key(0))
        out1 = self.model.apply({"params": params}, g1)
        out2 = self.model.apply({"params": params}, g2)
        _, per_graph = gcl.contrastive_loss(self.settings, out1, out2, g1, g2)
        from jaxcompress.ssl.gcl_losses import cosine_matrix

        alignment = jax.vmap(lambda a, b: cosine_matrix(a[None], b[None])[0, 0])(out1["graphs"], out2["graphs"])
        return {"loss": per_graph, "alignment": alignment}

    def embed(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        """Frozen-encoder embeddings of the un-augmented graphs (nodes [B, N, D], graphs [B, D])."""
        return gcl.embed(self.model, params, batch)

    def forward_for_flops(self):
        example = {gb.NODE_FEATURES: jnp.zeros((1, self.max_nodes, self.num_features), jnp.float32),
                   gb.EDGES: jnp.zeros((1, self.max_edges, 2), jnp.int32),
                   gb.NUM_NODES: jnp.full((1,), self.max_nodes, jnp.int32),
                   gb.NUM_EDGES: jnp.full((1,), self.max_edges, jnp.int32),
                   gb.GRAPH_ID: jnp.zeros((1,), jnp.int64)}
        return (lambda params, batch: gcl.embed(self.model, params, batch)["graphs"]), (example,)


# ----------------------------------------------------------------------------
# Presets


def gcl_config(name: str, dataset: str, model: GCLConfig, steps: int, batch_size: int = 64,
               learning_rate: float = 1e-3) -> Config:
    """A GCL training config (no evaluation split by default: the probe evaluates)."""
    return Config(name=name, task="gcl", model=model,
                  data=DataConfig(name=dataset, eval_split="", batch_size=batch_size, eval_batch_size=batch_size),
                  optim=OptimConfig(name="adam", learning_rate=learning_rate, schedule="constant",
                                    grad_clip_norm=0.0),
                  mesh=MeshConfig(), steps=steps, eval_every=0, checkpoint_every=0, log_every=10)


@register_preset("span-graphcl-families")
def _span_graphcl_families() -> Config:
    """GraphCL (GIN, NT-Xent) with SPAN views on graph_families: about a minute on 2 CPU cores."""
    return gcl_config("span-graphcl-families", "graph_families", GCLConfig(), steps=300)


@register_preset("span-grace-sbm")
def _span_grace_sbm() -> Config:
    """GRACE (2-layer GCN, node InfoNCE) with SPAN views on sbm_nodes: about a minute on 2 CPU cores."""
    model = GCLConfig(framework="grace", encoder="gcn", num_layers=2, hidden=64, activation="prelu",
                      concat_layers=False, proj_hidden=64, proj_dim=64, temperature=0.5, feature_mask=0.3,
                      feature_mask_2=0.4, span_ratio=0.3)
    return gcl_config("span-grace-sbm", "sbm_nodes", model, steps=200, batch_size=8)


@register_preset("span-graphcl-tiny")
def _span_graphcl_tiny() -> Config:
    """A few seconds: GraphCL with SPAN views on graph_cycles, tiny encoder (tests, smoke runs)."""
    model = GCLConfig(hidden=16, num_layers=2, proj_hidden=16, proj_dim=16, span_iterations=4)
    return gcl_config("span-graphcl-tiny", "graph_cycles", model, steps=6, batch_size=32)
