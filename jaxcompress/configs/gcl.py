"""Graph contrastive learning presets (GraphCL and GRACE with SPAN views) on the embedded graph datasets."""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.ssl.gcl import GCLConfig
from jaxcompress.train.config import Config, DataConfig, MeshConfig, OptimConfig


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
