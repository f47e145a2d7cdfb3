"""Graph contrastive learning as a training-loop task (GraphCL, GRACE, local-global; SPAN views).

The dataset must be a padded graph dataset (records ``node_features`` [N, F],
``edges`` [E, 2], ``num_nodes``, ``num_edges``, ``graph_id``), as the embedded
graph datasets are and :func:`jaxcompress.data.graphs.datasets.prepare_padded`
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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.ssl import gcl, span
from jaxcompress.train.task import Batch, Metrics, Task, register_task

_REQUIRED = (gb.NODE_FEATURES, gb.EDGES, gb.NUM_NODES, gb.NUM_EDGES, gb.GRAPH_ID)


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

    def __init__(self, config: Any, data_info: dict[str, Any], *, progress: bool = True):
        if not isinstance(config.model, gcl.GCLConfig):
            raise ConfigError(f"task 'gcl' needs a GCLConfig model config, got {type(config.model).__name__}")
        features = data_info.get("features") or {}
        missing = [key for key in _REQUIRED if key not in features]
        if missing:
            raise DataError(f"dataset {data_info.get('name')!r} is not a padded graph dataset (missing "
                            f"{', '.join(missing)}); pad it with jaxcompress.data.graphs.datasets.prepare_padded")
        (self.max_nodes, self.num_features), _ = features[gb.NODE_FEATURES]
        (self.max_edges, _), _ = features[gb.EDGES]
        self.settings = config.model.for_dataset(self.max_edges)
        self.model = gcl.GCLModel(self.settings)
        self.span_results: dict[str, Any] = {}
        if self.settings.uses_span:
            self._load_span(config, self.settings.span_config(), progress)

    def _load_span(self, config: Any, span_config: span.SpanConfig, progress: bool) -> None:
        from jaxcompress import data as data_lib
        from jaxcompress.ssl import span_cache
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
