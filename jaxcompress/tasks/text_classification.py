"""Fine-tuning an ALBERT/BERT encoder on text classification and sentence-pair classification.

Both tasks read text features of any prepared TFDS dataset (the embedded
``pydocs_topic`` and ``pydocs_pair``, or e.g. ``glue/sst2`` and ``glue/qqp``
copied into the data directory): the feature names are config keys
(``text.text_field``, ``text.pair_field``, ``text.label_field``) and the label
must be a TFDS ``ClassLabel``. ``prepare_batch`` tokenizes on the host and packs
``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]``), trimming the longer text
first from its end so the pair fits ``text.max_seq_length``. The classifier
reads the pooled [CLS] vector, or with ``text.pooling=mean`` the mean of the
last layer over the real tokens; ``text.init_from`` starts the encoder from a
pretraining run.

Metrics: ``loss`` (cross-entropy) and ``accuracy``, per example in evaluation.

References:
  Devlin et al., "BERT", NAACL 2019, sec. 4 (fine-tuning with [CLS]);
  Lan et al., "ALBERT", ICLR 2020, sec. 4.5 (GLUE fine-tuning).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.data.text.pretraining import fit_pair, pack_pair, trim
from jaxcompress.errors import DataError
from jaxcompress.tasks import _text
from jaxcompress.train.task import Batch, Metrics, Task, register_task

_MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def _num_classes(config: Any, data_info: dict[str, Any], field: str) -> int:
    """The number of classes of ``field``, which must be a ClassLabel of the dataset."""
    import tensorflow_datasets as tfds

    from jaxcompress.data import load_split

    if field not in data_info["features"]:
        raise DataError(f"dataset {data_info['name']!r} has no label feature {field!r} (config key "
                        f"'text.label_field'); its features are: {', '.join(sorted(data_info['features']))}")
    info = load_split(config.data.name, config.data.train_split, config.data.data_dir or None).info
    feature = info.features[field]
    if not isinstance(feature, tfds.features.ClassLabel):
        raise DataError(f"feature {field!r} of dataset {data_info['name']!r} (config key 'text.label_field') must "
                        f"be a ClassLabel, got {type(feature).__name__}")
    return int(feature.num_classes)


class _TextClassifier(Task):
    """Shared body of ``text_classification`` (one text) and ``sentence_pair`` (two)."""

    pair: bool = False
    name: str = ""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        from jaxcompress.nn.albert import AlbertForSequenceClassification

        _text.check_model(config, self.name)
        text = config.text
        self.text_field = text.text_field or ("first" if self.pair else "text")
        _text.require_text(data_info, self.text_field, "text.text_field")
        self.pair_field = None
        if self.pair:
            self.pair_field = text.pair_field or "second"
            _text.require_text(data_info, self.pair_field, "text.pair_field")
        self.label_field = text.label_field
        self.num_classes = _num_classes(config, data_info, self.label_field)
        self.config = config
        self.max_seq_length = text.max_seq_length
        self.tokenizer = _text.make_tokenizer(config)
        self.vocab_map = _text.vocab_map(text.vocab_keep, self.tokenizer)
        self.train_model = AlbertForSequenceClassification(config.model, self.num_classes, deterministic=False,
                                                           pooling=text.pooling)
        self.eval_model = AlbertForSequenceClassification(config.model, self.num_classes, deterministic=True,
                                                          pooling=text.pooling)
        self.init_from = text.init_from
        self._encoder = _text.load_encoder(text.init_from, config) if text.init_from else None

    def encode(self, first: list[str], second: list[str] | None) -> dict[str, np.ndarray]:
        """Token batch ``[B, L]`` (ids, types, mask) of texts (or text pairs), trimmed to fit."""
        tok = self.tokenizer
        a_ids = tok.encode(first)
        b_ids = tok.encode(second) if second is not None else [None] * len(first)
        rows = []
        for a, b in zip(a_ids, b_ids):
            if b is None:
                a = trim(a, self.max_seq_length - 2, from_front=False)
            else:
                len_a, len_b = fit_pair(len(a), len(b), self.max_seq_length - 3)
                a, b = trim(a, len_a, from_front=False), trim(b, len_b, from_front=False)
            rows.append(pack_pair(a, b, self.max_seq_length, tok.cls_id, tok.sep_id, tok.pad_id))
        ids, types, mask = (np.stack(column) for column in zip(*rows))
        if self.vocab_map is not None:  # a vocabulary-pruned model has its own, shorter id space
            ids = self.vocab_map[ids]
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from jaxcompress.nn.albert import validate_inputs

        second = _text.decode(raw[self.pair_field]) if self.pair_field else None
        batch = self.encode(_text.decode(raw[self.text_field]), second)
        validate_inputs(self.config.model, batch["input_ids"], batch["token_type_ids"])
        labels = np.asarray(raw[self.label_field]).astype(np.int32)
        weight = np.asarray(raw["weight"], np.float32) if "weight" in raw else np.ones(len(labels), np.float32)
        real = weight > 0
        if real.any() and (labels[real].min() < 0 or labels[real].max() >= self.num_classes):
            raise DataError(f"label feature {self.label_field!r} holds {int(labels[real].max())}, outside "
                            f"[0, {self.num_classes})")
        batch["label"] = labels
        if "weight" in raw:
            batch["weight"] = weight
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        params = self.eval_model.init(rng, *(batch[k] for k in _MODEL_INPUTS))["params"]
        if self._encoder is not None:
            params = _text.graft_encoder(params, self._encoder, self.init_from)
        return params

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        logits = self.train_model.apply({"params": params}, *(batch[k] for k in _MODEL_INPUTS),
                                        rngs={"dropout": rng}).astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return loss, {"loss": loss, "accuracy": (logits.argmax(-1) == batch["label"]).mean()}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        logits = self.eval_model.apply({"params": params}, *(batch[k] for k in _MODEL_INPUTS)).astype(jnp.float32)
        return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
                "accuracy": (logits.argmax(-1) == batch["label"]).astype(jnp.float32)}

    def forward_for_flops(self):
        ids = jnp.zeros((1, self.max_seq_length), jnp.int32)
        return (lambda params, input_ids: self.eval_model.apply({"params": params}, input_ids)), (ids,)


@register_task("text_classification")
class TextClassificationTask(_TextClassifier):
    """One text -> class (``text.text_field``, default ``text``; e.g. pydocs_topic, glue/sst2 with
    ``text.text_field=sentence``)."""

    pair = False
    name = "text_classification"


@register_task("sentence_pair")
class SentencePairTask(_TextClassifier):
    """Two texts -> class (``text.text_field``/``text.pair_field``, default ``first``/``second``;
    e.g. pydocs_pair, glue/qqp with question1/question2)."""

    pair = True
    name = "sentence_pair"
