"""Multi-task detection + segmentation as a training-loop task, and the pool inference behind active learning.

Records need ``image`` [H, W, C], ``segmentation`` [H, W] (class ids),
``boxes`` [M, 4] (top, left, bottom, right), ``classes`` [M] (detection
class, -1 = padding), as in the embedded ``street_scenes``. ``prepare_batch``
turns the boxes into CenterNet targets at the network's stride on the host:
a Gaussian peak per object in its class's heatmap (sigma grows with the
box), and size / offset targets at the centre cell.

Loss: CenterNet's penalty-reduced focal loss on the heatmap (normalised by
the number of objects), L1 on size and offset at centre cells, pixel cross
entropy on the segmentation. Evaluation (per image): ``loss``, ``pixel_accuracy``.

References:
  Zhou, Wang & Krähenbühl, "Objects as Points", arXiv 1904.07850;
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.errors import ConfigError, DataError
from jaxcompress.nn.multitask import MultiTaskConfig, MultiTaskNet, decode_detections
from jaxcompress.train.task import Batch, Metrics, Task, register_task

REQUIRED = ("image", "segmentation", "boxes", "classes")


def centre_targets(boxes: np.ndarray, classes: np.ndarray, grid: tuple[int, int], stride: float,
                   num_classes: int) -> dict[str, np.ndarray]:
    """CenterNet targets of one batch.

    Args:
      boxes: [B, M, 4] pixels; classes: int [B, M] (-1: no object).
      grid: (h, w) feature cells; stride: pixels per cell.

    Returns:
      ``heat`` [B, h, w, D] in [0, 1] (exactly 1 at centre cells), ``size`` and ``offset`` [B, h, w, 2]
      (cells; offset = fractional centre position in its cell), ``centre`` [B, h, w] (1 at centre cells).

    References:
      Zhou, Wang & Krähenbühl, "Objects as Points", arXiv 1904.07850.
    """
    b, m = classes.shape
    h, w = grid
    heat = np.zeros((b, h, w, num_classes), np.float32)
    size = np.zeros((b, h, w, 2), np.float32)
    offset = np.zeros((b, h, w, 2), np.float32)
    centre = np.zeros((b, h, w), np.float32)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for i in range(b):
        for k in range(m):
            c = int(classes[i, k])
            if c < 0:
                continue
            top, left, bottom, right = (float(v) / stride for v in boxes[i, k])
            cy, cx = (top + bottom) / 2, (left + right) / 2
            row, col = min(int(cy), h - 1), min(int(cx), w - 1)
            # Gaussian spread ~ object size (CenterNet's radius rule, simplified to sigma = size / 6, >= 0.5).
            sigma = max(0.5, min(bottom - top, right - left) / 6)
            bump = np.exp(-((ys - row) ** 2 + (xs - col) ** 2) / (2 * sigma ** 2))
            heat[i, :, :, c] = np.maximum(heat[i, :, :, c], bump)
            size[i, row, col] = (bottom - top, right - left)
            offset[i, row, col] = (cy - row, cx - col)
            centre[i, row, col] = 1.0
    return {"heat": heat, "size": size, "offset": offset, "centre": centre}


def focal_heatmap_loss(logits: jax.Array, target: jax.Array) -> jax.Array:
    """CenterNet's penalty-reduced pixel focal loss (alpha 2, beta 4), per image, over the number of peaks.

    Shapes: logits, target [B, h, w, D] -> [B].
    """
    p = jax.nn.sigmoid(logits)
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    positive = (target >= 1.0).astype(jnp.float32)
    pos = -((1 - p) ** 2) * log_p * positive
    neg = -((1 - target) ** 4) * (p ** 2) * log_not_p * (1 - positive)
    count = jnp.maximum(positive.sum((1, 2, 3)), 1.0)
    return (pos + neg).sum((1, 2, 3)) / count


@register_task("mtal")
class MultiTaskTask(Task):
    """Detection (CenterNet) + semantic segmentation with a shared backbone.

    Training metrics: ``loss``, ``heat``, ``size``, ``offset``, ``seg``. Evaluation: per-image ``loss`` and
    ``pixel_accuracy``.

    References:
      Zhou et al., arXiv 1904.07850; Hekimoglu et al., ICCVW 2023.
    """

    def __init__(self, config: Any, data_info: dict[str, Any]):
        if not isinstance(config.model, MultiTaskConfig):
            raise ConfigError(f"task 'mtal' needs a MultiTaskConfig model config, got {type(config.model).__name__}")
        features = data_info.get("features") or {}
        missing = [k for k in REQUIRED if k not in features]
        if missing:
            raise DataError(f"dataset {config.data.name!r} cannot be used by task 'mtal': it lacks the features "
                            f"{', '.join(missing)} (needs {', '.join(REQUIRED)}, as in 'street_scenes')")
        self.settings: MultiTaskConfig = config.model
        self.image_shape = tuple(features["image"][0])
        self.num_det_classes, self.num_seg_classes = self.settings.det_classes, self.settings.seg_classes
        self.model = MultiTaskNet(self.settings, self.num_det_classes, self.num_seg_classes)
        example = jnp.zeros((1,) + self.image_shape, jnp.float32)
        shapes = jax.eval_shape(lambda x: self.model.init_with_output(jax.random.key(0), x)[0], example)
        self.grid = tuple(shapes["heat"].shape[1:3])
        self.stride = self.image_shape[0] / self.grid[0]

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = {"input": np.asarray(raw["image"], np.float32),
                 "seg_target": np.asarray(raw["segmentation"], np.int32),
                 **centre_targets(np.asarray(raw["boxes"]), np.asarray(raw["classes"]), self.grid, self.stride,
                                  self.num_det_classes)}
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        return self.model.init(rng, batch["input"], train=True)["params"]

    def _losses(self, params: Any, batch: Batch) -> tuple[dict[str, jax.Array], jax.Array]:
        out = self.model.apply({"params": params}, batch["input"], train=True)
        centre = batch["centre"][..., None]
        count = jnp.maximum(batch["centre"].sum((1, 2)), 1.0)
        parts = {
            "heat": focal_heatmap_loss(out["heat"], batch["heat"]),
            "size": (jnp.abs(out["size"] - batch["size"]) * centre).sum((1, 2, 3)) / count,
            "offset": (jnp.abs(out["offset"] - batch["offset"]) * centre).sum((1, 2, 3)) / count,
            # One-hot cross entropy: a gather on integer labels turns into a slow-to-compile scatter in the backward.
            "seg": -(jax.nn.one_hot(batch["seg_target"], self.num_seg_classes)
                     * jax.nn.log_softmax(out["seg"])).sum(-1).mean((1, 2)),
        }
        s = self.settings
        total = parts["heat"] + s.size_weight * parts["size"] + s.offset_weight * parts["offset"] \
            + s.seg_weight * parts["seg"]
        return {**parts, "loss": total}, out["seg"]

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng  # deterministic forward
        parts, _ = self._losses(params, batch)
        metrics = {k: v.mean() for k, v in parts.items()}
        return metrics["loss"], metrics

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        parts, seg = self._losses(params, batch)
        accuracy = (seg.argmax(-1) == batch["seg_target"]).mean((1, 2))
        return {"loss": parts["loss"], "pixel_accuracy": accuracy}

    def predict(self, params: Any, images: jax.Array) -> dict[str, jax.Array]:
        """Inference outputs the selection strategies and metrics read (jittable).

        Shapes: images [B, H, W, C] ->
          ``boxes`` [B, K, 4], ``scores`` [B, K], ``classes`` [B, K] (top-K peaks, before NMS);
          ``flip_boxes``/``flip_scores``/``flip_classes``: the same on the horizontally flipped image, boxes
          mapped back; ``seg`` int32 [B, H, W] (argmax); ``entropy_seg`` [B] (mean pixel entropy);
          ``flip_seg`` [B] (mean total-variation distance to the flipped-back softmax);
          ``embedding`` [B, F].
        """
        width = images.shape[2]
        both = jnp.concatenate([images, images[:, :, ::-1]], 0)
        out = self.model.apply({"params": params}, both)
        n = images.shape[0]
        dets = decode_detections(out["heat"], out["size"], out["offset"], self.stride, self.settings.max_detections)
        probs = jax.nn.softmax(out["seg"], -1)
        p, p_flip = probs[:n], probs[n:, :, ::-1]
        entropy = -(p * jnp.log(jnp.clip(p, 1e-12))).sum(-1).mean((1, 2))
        flipped = dets["boxes"][n:]
        flipped = jnp.stack([flipped[..., 0], width - flipped[..., 3], flipped[..., 2], width - flipped[..., 1]], -1)
        return {"boxes": dets["boxes"][:n], "scores": dets["scores"][:n], "classes": dets["classes"][:n],
                "flip_boxes": flipped, "flip_scores": dets["scores"][n:], "flip_classes": dets["classes"][n:],
                "seg": p.argmax(-1).astype(jnp.int32), "entropy_seg": entropy,
                "flip_seg": 0.5 * jnp.abs(p - p_flip).sum(-1).mean((1, 2)), "embedding": out["embedding"][:n]}

    def forward_for_flops(self):
        x = jnp.zeros((1,) + self.image_shape, jnp.float32)
        return (lambda params, inputs: self.model.apply({"params": params}, inputs)), (x,)
