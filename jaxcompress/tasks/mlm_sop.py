"""ALBERT pretraining: masked LM over n-gram masks plus sentence-order (or next-sentence) prediction.

Records come from a ``pydocs_pretrain``-style dataset (``text``: a block of
consecutive sentences, one per line; ``other``: a segment of another
document; ``seed``). ``prepare_batch`` tokenizes them and builds the masked
pairs on the host (:mod:`jaxcompress.data.text.pretraining`) from each record's
seed and ``data.seed``, so a batch is a pure function of ``(data.seed, step)``
and a resumed run is exact.

Loss: ``mlm_loss + sentence_loss`` (equal weights, as in ALBERT), where
``mlm_loss`` is the cross-entropy averaged over the batch's masked tokens and
``sentence_loss`` the 2-way cross-entropy on the pooled [CLS] vector
(``text.objective=none`` drops it). Training metrics: ``loss``, ``mlm_loss``,
``mlm_accuracy`` and ``sop_accuracy`` (``nsp_accuracy`` under NSP).
Evaluation reports them per example (the MLM ones averaged over the example's
masked tokens).

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020, sec. 3.1-4.1; Devlin et al., "BERT", NAACL
  2019 (masked LM, NSP).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.data.text.pretraining import PretrainingSpec, pretraining_batch
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.tasks import _text
from jaxcompress.train.task import Batch, Metrics, Task, register_task

#: Features a pretraining dataset must have.
RECORD_FEATURES = ("text", "other", "seed")
_MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "masked_positions")


@register_task("mlm_sop")
class MlmSopTask(Task):
    """Masked LM + SOP/NSP pretraining of an ALBERT/BERT encoder (see the module docstring)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        from jaxcompress.nn.albert import AlbertForPreTraining

        _text.check_model(config, "mlm_sop")
        if config.text.vocab_keep:
            raise ConfigError("config key 'text.vocab_keep' (a vocabulary-pruned model) is for fine-tuned "
                              "classifiers; masked-LM pretraining needs the whole vocabulary")
        missing = [f for f in RECORD_FEATURES if f not in data_info["features"]]
        if missing:
            raise DataError(f"dataset {data_info['name']!r} cannot be used for task 'mlm_sop': it lacks the "
                            f"feature(s) {', '.join(missing)} (needs text, other, seed as in pydocs_pretrain); "
                            f"its features are: {', '.join(sorted(data_info['features']))}")
        for field in ("text", "other"):
            _text.require_text(data_info, field, "data.name")
        text = config.text
        self.config = config
        self.spec = PretrainingSpec(max_seq_length=text.max_seq_length, objective=text.objective,
                                    masked_lm_prob=text.masked_lm_prob, max_predictions=text.max_predictions,
                                    max_ngram=text.max_ngram, single_segment=text.single_segment)
        self.sentence_metric = {"sop": "sop_accuracy", "nsp": "nsp_accuracy"}.get(text.objective)
        self.tokenizer = _text.make_tokenizer(config)
        self.data_seed = config.data.seed
        self.train_model = AlbertForPreTraining(config.model, deterministic=False)
        self.eval_model = AlbertForPreTraining(config.model, deterministic=True)
        self.init_from = text.init_from
        self._encoder = _text.load_encoder(text.init_from, config) if text.init_from else None

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from jaxcompress.nn.albert import validate_inputs

        batch = pretraining_batch(_text.decode(raw["text"]), _text.decode(raw["other"]),
                                  np.asarray(raw["seed"]).astype(np.int64) & np.iinfo(np.int64).max,
                                  self.spec, self.tokenizer, seed=self.data_seed)
        validate_inputs(self.config.model, batch["input_ids"], batch["token_type_ids"])
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        params = self.eval_model.init(rng, *(batch[k] for k in _MODEL_INPUTS))["params"]
        if self._encoder is not None:
            params = _text.graft_encoder(params, self._encoder, self.init_from)
        return params

    def _outputs(self, params: Any, batch: Batch, rng: jax.Array | None) -> dict[str, jax.Array]:
        if rng is None:
            return self.eval_model.apply({"params": params}, *(batch[k] for k in _MODEL_INPUTS))
        return self.train_model.apply({"params": params}, *(batch[k] for k in _MODEL_INPUTS),
                                      rngs={"dropout": rng})

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        out = self._outputs(params, batch, rng)
        weights = batch["masked_weights"]
        token_loss = optax.softmax_cross_entropy_with_integer_labels(out["mlm_logits"].astype(jnp.float32),
                                                                     batch["masked_ids"])
        hits = (out["mlm_logits"].argmax(-1) == batch["masked_ids"]).astype(jnp.float32)
        count = jnp.maximum(weights.sum(), 1.0)
        mlm_loss = (token_loss * weights).sum() / count
        metrics = {"mlm_loss": mlm_loss, "mlm_accuracy": (hits * weights).sum() / count}
        loss = mlm_loss
        if self.sentence_metric is not None:
            logits = out["sentence_logits"].astype(jnp.float32)
            sentence_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["sentence_label"]).mean()
            loss = loss + sentence_loss
            metrics["sentence_loss"] = sentence_loss
            metrics[self.sentence_metric] = (logits.argmax(-1) == batch["sentence_label"]).mean()
        return loss, {"loss": loss, **metrics}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        out = self._outputs(params, batch, None)
        weights = batch["masked_weights"]
        token_loss = optax.softmax_cross_entropy_with_integer_labels(out["mlm_logits"].astype(jnp.float32),
                                                                     batch["masked_ids"])
        hits = (out["mlm_logits"].argmax(-1) == batch["masked_ids"]).astype(jnp.float32)
        count = jnp.maximum(weights.sum(-1), 1.0)
        metrics = {"mlm_loss": (token_loss * weights).sum(-1) / count,
                   "mlm_accuracy": (hits * weights).sum(-1) / count}
        loss = metrics["mlm_loss"]
        if self.sentence_metric is not None:
            logits = out["sentence_logits"].astype(jnp.float32)
            sentence_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["sentence_label"])
            loss = loss + sentence_loss
            metrics[self.sentence_metric] = (logits.argmax(-1) == batch["sentence_label"]).astype(jnp.float32)
        return {"loss": loss, **metrics}

    def forward_for_flops(self):
        ids = jnp.zeros((1, self.spec.max_seq_length), jnp.int32)
        return (lambda params, input_ids: self.eval_model.apply({"params": params}, input_ids)), (ids,)
