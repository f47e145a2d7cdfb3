"""Once-for-all pretraining of the CIF speech encoder (task ``ofa_speech``).

Each step draws one lambda (:func:`jaxcompress.ssl.ofa.sample_lambda`),
compresses the 50 Hz front-end sequence with CIF at ``alpha_mix(lambda)``,
masks spans of the compressed sequence and predicts, at the masked positions,
BEST-RQ codes of the log-mel targets pooled with the same CIF weights. The
un-mixed alpha is pulled towards the corpus's known segment boundaries
(phones or words). Loss::

    masked_ce + frame_loss_weight * frame + seg_loss_weight * seg + quantity_loss_weight * quantity

Training metrics: ``loss``, ``mp_loss``, ``mp_accuracy``, ``frame_loss``,
``seg_loss``, ``quantity_loss``, ``lambda``, ``compression`` (compressed frames
per 50 Hz frame) and ``mean_alpha``. Evaluation reports them per utterance at
``model.eval_lambda`` with a fixed mask.

Presets: ``ofa-speech-tiny`` (the small encoder on ``speech_digits``, a few
minutes on 2 CPU cores) and ``ofa-speech-smoke`` (``speech_digits_tiny``,
seconds).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Chiu et al.,
BEST-RQ, ICML 2022.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress.errors import ConfigError
from jaxcompress.nn.speech import MaskedPredictionModel
from jaxcompress.ops import pool_like
from jaxcompress.speech.batching import check_features, model_inputs, segment_targets
from jaxcompress.speech.corpus import MAX_SEGMENTS
from jaxcompress.ssl import ofa
from jaxcompress.train.task import Batch, Metrics, Task, register_task

#: Seed of the frozen BEST-RQ projection and codebooks (part of the method, not of the run).
QUANTIZER_SEED = 20221104
_EVAL_MASK_SEED = 7


@register_task("ofa_speech")
class OFASpeechTask(Task):
    """Once-for-all masked-prediction pretraining (see the module docstring)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        if not isinstance(config.model, ofa.OFASpeechConfig):
            raise ConfigError(f"task 'ofa_speech' needs an OFASpeechConfig model (start from the preset "
                              f"ofa-speech-tiny); got {type(config.model).__name__}")
        check_features(data_info, "ofa_speech")
        num_mels = data_info["features"]["logmel"][0][-1]
        if num_mels != config.model.num_mels:
            raise ConfigError(f"config key 'model.num_mels' = {config.model.num_mels} but dataset "
                              f"{data_info['name']!r} has {num_mels} mel bins")
        self.cfg = config.model
        self.train_model = MaskedPredictionModel(self.cfg, self.cfg.num_codebooks, self.cfg.codebook_size, False)
        self.eval_model = MaskedPredictionModel(self.cfg, self.cfg.num_codebooks, self.cfg.codebook_size, True)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = model_inputs(raw)
        batch["boundaries"], batch["alpha_target"] = segment_targets(raw, self.cfg.segments, MAX_SEGMENTS)
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        spans = jnp.zeros(batch["alpha_target"].shape, bool)
        return self.eval_model.init(rng, batch["logmel"], batch["mask"], 0.5, spans)["params"]

    def _forward(self, model: Any, params: Any, batch: Batch, lam: jax.Array, mask_rng: jax.Array,
                 rngs: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Per-utterance losses and statistics of one forward pass."""
        cfg = self.cfg
        valid50 = batch["mask"][:, ::2]
        spans = ofa.span_mask(mask_rng, valid50, cfg.mask_prob, cfg.mask_span)
        out, logits = model.apply({"params": params}, batch["logmel"], batch["mask"], lam, spans, rngs=rngs)
        # Targets: standardised 100 Hz log-mels stacked to 50 Hz, pooled with the student's weights.
        targets = ofa.stack_to_50hz(ofa.standardize(batch["logmel"], batch["mask"]))
        pooled = jax.lax.stop_gradient(pool_like(targets, out.weights, implementation=cfg.cif_implementation))
        projection, codebook = ofa.random_quantizer(QUANTIZER_SEED, targets.shape[-1], cfg)
        codes = ofa.bestrq_codes(pooled, projection, codebook)  # [B, T, G]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, codes).mean(-1)  # [B, T]
        hit = (jnp.argmax(logits, -1) == codes).mean(-1)
        chosen = (spans & out.mask).astype(jnp.float32)
        count = chosen.sum(-1)
        alpha = ofa.alpha_losses(out.alpha, batch["alpha_target"], out.frame_mask, batch["boundaries"])
        frames50 = jnp.maximum(out.frame_mask.sum(-1), 1)
        return {"ce_sum": (ce * chosen).sum(-1), "hit_sum": (hit * chosen).sum(-1), "masked": count,
                "frame": alpha["frame"], "seg": alpha["seg"], "quantity": alpha["quantity"],
                "compression": out.lengths / frames50, "mean_alpha": out.alpha.sum(-1) / frames50}

    def _total(self, stats: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        cfg = self.cfg
        mp = stats["ce_sum"].sum() / jnp.maximum(stats["masked"].sum(), 1.0)
        total = (mp + cfg.frame_loss_weight * stats["frame"].mean() + cfg.seg_loss_weight * stats["seg"].mean()
                 + cfg.quantity_loss_weight * stats["quantity"].mean())
        return total, mp

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        k_lambda, k_mask, k_dropout = jax.random.split(rng, 3)
        lam = ofa.sample_lambda(k_lambda, self.cfg, batch["logmel"].shape[0])
        stats = self._forward(self.train_model, params, batch, lam, k_mask, {"dropout": k_dropout})
        total, mp = self._total(stats)
        accuracy = stats["hit_sum"].sum() / jnp.maximum(stats["masked"].sum(), 1.0)
        return total, {"loss": total, "mp_loss": mp, "mp_accuracy": accuracy,
                       "frame_loss": stats["frame"].mean(), "seg_loss": stats["seg"].mean(),
                       "quantity_loss": stats["quantity"].mean(), "lambda": jnp.mean(lam),
                       "compression": stats["compression"].mean(), "mean_alpha": stats["mean_alpha"].mean()}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        stats = self._forward(self.eval_model, params, batch, jnp.float32(self.cfg.eval_lambda),
                              jax.random.key(_EVAL_MASK_SEED))
        masked = jnp.maximum(stats["masked"], 1.0)
        return {"mp_loss": stats["ce_sum"] / masked, "mp_accuracy": stats["hit_sum"] / masked,
                "frame_loss": stats["frame"], "seg_loss": stats["seg"], "quantity_loss": stats["quantity"],
                "compression": stats["compression"], "mean_alpha": stats["mean_alpha"]}

    def forward_for_flops(self):
        s = 240  # the longest speech_digits record (100 Hz frames)
        x, mask = jnp.zeros((1, s, self.cfg.num_mels)), jnp.ones((1, s), bool)

        def forward(params: Any, logmel: jax.Array, mask: jax.Array) -> jax.Array:
            return self.eval_model.apply({"params": params}, logmel, mask, self.cfg.eval_lambda)[1]

        return forward, (x, mask)
