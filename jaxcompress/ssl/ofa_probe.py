"""Downstream probes of a frozen OFA speech encoder, and adaptive compression rates.

Targets with different tolerance to compression (the paper's SUPERB mix, at
toy scale):

=========  ====================  =============  ==============================
target     dataset               level          head and metric
=========  ====================  =============  ==============================
keyword    speech_commands       utterance      mean-pool -> logits, accuracy
speaker    speech_digits         utterance      mean-pool -> logits, accuracy
language   speech_digits         utterance      mean-pool -> logits, accuracy
digits     speech_digits         sequence       per frame -> CTC, digit error rate
phones     speech_digits         sequence       per frame -> CTC, phone error rate
=========  ====================  =============  ==============================

Adaptive rate: ``lam = sigmoid(rho)`` with ``rho`` a per-task parameter trained
on the task loss through CIF's soft pooling weights (the number of output
frames and bin indices are piecewise constant, the weights are not), plus an
optional compute penalty ``mu * mean(alpha_mix)``, which is proportional to
the compressed length (off by default; not confirmed to be in the paper).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332) (adaptive
compressing rate); Yang et al., "SUPERB: Speech processing Universal
PERformance Benchmark", Interspeech 2021 (frozen upstream, light heads).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxcompress.speech.ctc import ctc_loss, edit_distance, greedy_decode


@dataclasses.dataclass(frozen=True)
class ProbeTarget:
    """One downstream task: the dataset, the record field of its labels, and the level."""

    name: str
    dataset: str
    field: str
    level: str  # "utterance" or "sequence"

    @property
    def metric(self) -> str:
        """Name of the headline score (higher is better for accuracy, lower for error rates)."""
        return "accuracy" if self.level == "utterance" else "error_rate"


PROBE_TARGETS: dict[str, ProbeTarget] = {
    "keyword": ProbeTarget("keyword", "speech_commands", "keyword", "utterance"),
    "speaker": ProbeTarget("speaker", "speech_digits", "speaker", "utterance"),
    "language": ProbeTarget("language", "speech_digits", "language", "utterance"),
    "digits": ProbeTarget("digits", "speech_digits", "tokens", "sequence"),
    "phones": ProbeTarget("phones", "speech_digits", "phones", "sequence"),
}


def _dense(features: int, names: tuple[str | None, str | None], name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]), name=name)


class ProbeHead(nn.Module):
    """A light head on frozen features: masked mean pooling (utterance level) or per frame (CTC).

    Shapes: ``hidden [B, T, H]``, ``mask [B, T]`` -> ``[B, C]`` (utterance) or
    ``[B, T, C]`` (sequence; C includes the CTC blank).

    References: Yang et al., SUPERB, Interspeech 2021 (mean-pooled linear heads).
    """

    num_outputs: int
    level: str
    hidden_size: int = 0

    @nn.compact
    def __call__(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
        x = hidden
        if self.level == "utterance":
            m = mask[..., None].astype(x.dtype)
            x = (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
            axes = ("embed", "mlp")
        else:
            axes = ("embed", "mlp")
        if self.hidden_size:
            x = nn.relu(_dense(self.hidden_size, axes, "hidden")(x))
            axes = ("mlp", "classes")
        else:
            axes = ("embed", "classes")
        return _dense(self.num_outputs, axes, "logits")(x)


def num_outputs(target: ProbeTarget, num_labels: int) -> int:
    """Head width: the classes, or the labels plus the CTC blank."""
    return num_labels if target.level == "utterance" else num_labels + 1


def probe_losses(target: ProbeTarget, logits: jax.Array, mask: jax.Array, labels: jax.Array
                 ) -> dict[str, jax.Array]:
    """Per-utterance loss and score.

    Args:
        target: the task.
        logits: [B, C] or [B, T, V + 1].
        mask: [B, T] real compressed frames.
        labels: [B] class ids, or [B, L] label ids padded with -1.

    Returns:
        utterance: ``loss``, ``accuracy`` [B]; sequence: ``loss``, ``edits``,
        ``ref_length``, ``error_rate`` and ``feasible`` (enough frames for CTC) [B].
    """
    if target.level == "utterance":
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return {"loss": loss, "accuracy": (jnp.argmax(logits, -1) == labels).astype(jnp.float32)}
    loss, feasible = ctc_loss(logits, mask, labels)
    hyp, hyp_len = greedy_decode(logits, mask)
    ref_len = (labels >= 0).sum(-1)
    edits = edit_distance(hyp, hyp_len, labels, ref_len).astype(jnp.float32)
    ref = ref_len.astype(jnp.float32)
    return {"loss": loss, "edits": edits, "ref_length": ref, "error_rate": edits / jnp.maximum(ref, 1.0),
            "feasible": feasible.astype(jnp.float32)}


def lambda_from_logit(rho: jax.Array) -> jax.Array:
    """The learned operating point ``sigmoid(rho)`` in (0, 1)."""
    return jax.nn.sigmoid(rho)


def logit_of(lam: float) -> float:
    """``rho`` with ``sigmoid(rho) = lam`` (clipped away from 0 and 1)."""
    lam = min(max(lam, 1e-4), 1 - 1e-4)
    return math.log(lam) - math.log1p(-lam)


def mean_alpha_mix(alpha_mix: jax.Array, frame_mask: jax.Array) -> jax.Array:
    """Per-utterance mean of alpha_mix over real 50 Hz frames: compressed length / input length."""
    m = frame_mask.astype(jnp.float32)
    return (alpha_mix * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)
