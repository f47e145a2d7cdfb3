"""Look-into-Object as a training-loop task: classification on anchor + positives groups with OEL and SCL.

Training batches: the loop's uniformly drawn records are the anchors;
``prepare_batch`` adds P same-class positives per anchor from the training
split (:class:`~jaxcompress.data.positives.PositiveSampler`), giving ``input``
[b, P+1, H, W, C] and ``label`` [b, P+1]. Every image gets the classification
loss; the OEL pseudo-masks come from each group. Evaluation batches (they
carry ``weight``) are plain images scored by the backbone alone: the heads
exist only in training, and :meth:`LIOTask.inference_params` is the deployed
model's parameter tree.

References:
  Zhou et al., "Look-into-Object: Self-supervised Structure Modeling for
  Object Recognition", CVPR 2020.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress import data as data_lib
from jaxcompress.data.positives import PositiveSampler
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.ssl.lio import LIOClassifier, LIOConfig, build_backbone, lio_objective
from jaxcompress.train.task import Batch, Metrics, Task, register_task


@register_task("lio")
class LIOTask(Task):
    """Cross-entropy on every image of anchor + positives groups, plus weighted OEL and SCL losses.

    Training metrics: ``loss``, ``ce``, ``accuracy`` and, for the heads
    present, ``oel``, ``scl``, ``scl_distance``, ``scl_angle``. Evaluation:
    per-image ``loss`` and ``accuracy`` of the plain backbone.

    References:
      Zhou et al., CVPR 2020.
    """

    def __init__(self, config: Any, data_info: dict[str, Any]):
        if not isinstance(config.model, LIOConfig):
            raise ConfigError(f"task 'lio' needs a LIOConfig model config, got {type(config.model).__name__}")
        for key in ("num_classes", "input_key", "label_key", "input_shape"):
            if data_info.get(key) is None:
                raise DataError(f"dataset {config.data.name!r} cannot be used by task 'lio': it does not declare "
                                f"{key} (needs a ClassLabel and supervised keys)")
        shape = tuple(data_info["input_shape"])
        if None in shape or len(shape) not in (2, 3):
            raise DataError(f"dataset {config.data.name!r} has images of shape {shape}; task 'lio' needs one fixed "
                            f"[H, W] or [H, W, C] shape: write a fixed-size copy with "
                            f"jaxcompress.data.resized.prepare_resized({config.data.name!r}, 224) and train on it")
        self.settings: LIOConfig = config.model
        self.input_key, self.label_key, self.input_shape = data_info["input_key"], data_info["label_key"], shape
        self.num_classes = int(data_info["num_classes"])
        self.backbone = build_backbone(self.settings, self.num_classes)
        self.model = LIOClassifier(self.backbone, self.settings)
        self.seed = int(config.data.seed)
        self._train = data_lib.load_split(config.data.name, config.data.train_split, config.data.data_dir or None)
        every = self._train.read(np.arange(len(self._train)))
        self.sampler = PositiveSampler(every[self.input_key], every[self.label_key], self.settings.positives)

    @staticmethod
    def _float_images(images: np.ndarray) -> np.ndarray:
        """float32 images; uint8 pixels (resized real datasets) are scaled to [0, 1]."""
        images = np.asarray(images)
        return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = self._float_images(raw[self.input_key])
        labels = np.asarray(raw[self.label_key], np.int32)
        if "weight" in raw:  # evaluation: plain images
            return {"input": images, "label": labels, "weight": np.asarray(raw["weight"], np.float32)}
        rows = self.sampler.sample(np.asarray(raw[self.input_key]), labels, self.seed)  # raw bytes: as indexed
        positives = self._train.read(rows.reshape(-1))
        pos_images = self._float_images(positives[self.input_key]).reshape(rows.shape + images.shape[1:])
        pos_labels = np.asarray(positives[self.label_key], np.int32).reshape(rows.shape)
        return {"input": np.concatenate([images[:, None], pos_images], 1),
                "label": np.concatenate([labels[:, None], pos_labels], 1)}

    @staticmethod
    def _flat(batch: Batch) -> tuple[jax.Array, jax.Array]:
        x = batch["input"]
        return x.reshape((-1,) + x.shape[2:]), batch["label"].reshape(-1)

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        x, _ = self._flat(batch)
        return self.model.init(rng, x, train=True)["params"]

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng  # no dropout, no sampling inside the step
        x, labels = self._flat(batch)
        return lio_objective(self.settings, self.model.apply({"params": params}, x, train=True), labels)

    @staticmethod
    def inference_params(params: Any) -> Any:
        """The deployed model's parameters: the backbone's subtree (the heads are dropped)."""
        return params["backbone"]

    def logits(self, backbone_params: Any, images: jax.Array) -> jax.Array:
        """The deployed forward: the plain backbone on its own parameters. [B, H, W(, C)] -> [B, K]."""
        return self.backbone.apply({"params": backbone_params}, images)

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        logits = self.logits(self.inference_params(params), batch["input"])
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
                "accuracy": (logits.argmax(-1) == batch["label"]).astype(jnp.float32)}

    def forward_for_flops(self):
        x = jnp.zeros((1,) + self.input_shape, jnp.float32)
        return (lambda params, inputs: self.logits(self.inference_params(params), inputs)), (x,)
