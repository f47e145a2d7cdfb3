"""Supervised classification: cross-entropy training, accuracy evaluation."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.compress.quantize import model_for_training
from jaxcompress.errors import DataError
from jaxcompress.nn.classifiers import build_classifier
from jaxcompress.train.task import Batch, Metrics, Task, register_task


@register_task("classify")
class ClassificationTask(Task):
    """Cross-entropy on ``(input, label)`` records of a classification dataset.

    ``data_info`` must give ``num_classes`` and the feature names of the
    input and the label (the dataset's supervised keys).

    References:
      Bishop, "Pattern Recognition and Machine Learning", 2006, sec. 4.3.4
      (softmax cross-entropy).
    """

    handles_qwix_qat = True

    def __init__(self, config: Any, data_info: dict[str, Any]):
        for key in ("num_classes", "input_key", "label_key", "input_shape"):
            if data_info.get(key) is None:
                raise DataError(f"dataset {config.data.name!r} cannot be used for classification: "
                                f"it does not declare {key} (needs a ClassLabel and supervised keys)")
        self.input_key = data_info["input_key"]
        self.label_key = data_info["label_key"]
        self.input_shape = tuple(data_info["input_shape"])
        # An MLPConfig builds the MLP, a CNNConfig the CNN; anything else is a ConfigError.
        self.model = build_classifier(config.model, int(data_info["num_classes"]))
        if config.quant.qat == "qwix":
            # qwix intercepts the layers (weights and activations); the other QAT kinds
            # quantise parameters for every task (train.qat).
            self.model = model_for_training(self.model, config.quant)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = {"input": np.asarray(raw[self.input_key], np.float32),
                 "label": np.asarray(raw[self.label_key], np.int32)}
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        return self.model.init(rng, batch["input"], train=False)["params"]

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        logits = self.model.apply({"params": params}, batch["input"], train=True, rngs={"dropout": rng})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        accuracy = (logits.argmax(-1) == batch["label"]).mean()
        return loss, {"loss": loss, "accuracy": accuracy}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        logits = self.model.apply({"params": params}, batch["input"], train=False)
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
                "accuracy": (logits.argmax(-1) == batch["label"]).astype(jnp.float32)}

    def forward_for_flops(self):
        x = jnp.zeros((1,) + self.input_shape, jnp.float32)
        return (lambda params, inputs: self.model.apply({"params": params}, inputs)), (x,)
