"""Point-cloud Transformer presets (Point-MAE, MoCo, hybrid pretraining; fine-tuning regimes) on point_shapes.

The sizes follow the small-scale reproduction of ExpPoint-MAE: 512 points, 32
groups of 16, width 128, depth 4, 4 heads, decoder depth 2 (the paper: 1024
points, 64 groups of 32, width 384, depth 12, 6 heads, decoder depth 4).
"""

from __future__ import annotations

from jaxcompress.configs._registry import register_preset
from jaxcompress.ssl.point_ssl import PointSSLConfig
from jaxcompress.train.config import Config, DataConfig, MeshConfig, OptimConfig


def point_pretrain_config(name: str, model: PointSSLConfig, dataset: str = "point_shapes_scan", steps: int = 300,
                          batch_size: int = 32, learning_rate: float = 1e-3, train_split: str = "pretrain") -> Config:
    """A ``point_ssl`` config: AdamW, weight decay 0.05, warm-up then cosine (Point-MAE's recipe, shortened)."""
    return Config(name=name, task="point_ssl", model=model,
                  data=DataConfig(name=dataset, train_split=train_split, eval_split="", batch_size=batch_size,
                                  eval_batch_size=batch_size),
                  optim=OptimConfig(name="adamw", learning_rate=learning_rate, schedule="cosine",
                                    warmup_steps=max(1, steps // 20), weight_decay=0.05, grad_clip_norm=10.0),
                  mesh=MeshConfig(), steps=steps, eval_every=0, checkpoint_every=0, log_every=10)


def point_finetune_config(name: str, model: PointSSLConfig, dataset: str = "point_shapes_scan", steps: int = 200,
                          batch_size: int = 32, learning_rate: float = 5e-4) -> Config:
    """A ``point_cls`` config: AdamW 5e-4, weight decay 0.05, warm-up then cosine, clip 10 (ExpPoint-MAE)."""
    return Config(name=name, task="point_cls", model=model,
                  data=DataConfig(name=dataset, train_split="train", eval_split="test", batch_size=batch_size,
                                  eval_batch_size=64),
                  optim=OptimConfig(name="adamw", learning_rate=learning_rate, schedule="cosine",
                                    warmup_steps=max(1, steps // 20), weight_decay=0.05, grad_clip_norm=10.0),
                  mesh=MeshConfig(), steps=steps, eval_every=0, checkpoint_every=0, log_every=10)


@register_preset("point-mae-shapes")
def _point_mae_shapes() -> Config:
    """Point-MAE pretraining (mask 0.6, Chamfer-L2) on point_shapes_scan's pretrain split: minutes on 2 CPU cores."""
    return point_pretrain_config("point-mae-shapes", PointSSLConfig(method="mae"))


@register_preset("point-moco-shapes")
def _point_moco_shapes() -> Config:
    """MoCo pretraining (EMA key encoder, queue 512, InfoNCE t = 0.2) on point_shapes_scan's pretrain split."""
    return point_pretrain_config("point-moco-shapes", PointSSLConfig(method="moco"))


@register_preset("point-hybrid-shapes")
def _point_hybrid_shapes() -> Config:
    """MAE + MoCo hybrid pretraining (Chamfer + InfoNCE) on point_shapes_scan's pretrain split."""
    return point_pretrain_config("point-hybrid-shapes", PointSSLConfig(method="hybrid"))


@register_preset("point-cls-scratch")
def _point_cls_scratch() -> Config:
    """Point Transformer trained from scratch on the 260 labelled clouds of point_shapes_scan."""
    return point_finetune_config("point-cls-scratch", PointSSLConfig(regime="scratch"))


@register_preset("point-mae-tiny")
def _point_mae_tiny() -> Config:
    """Seconds: a tiny Point-MAE on point_shapes (tests, smoke runs)."""
    model = PointSSLConfig(method="mae", num_groups=16, group_size=8, width=32, depth=2, num_heads=2,
                           decoder_depth=1, pointnet_width=8, head_hidden=32)
    return point_pretrain_config("point-mae-tiny", model, dataset="point_shapes", steps=4, batch_size=16)
