"""Once-for-all evaluation: encode a split at one operating point, fit a probe on the frozen features.

The encoder is frozen, so its features at a given lambda are computed once
per split (:func:`encode_split`) and every probe is fitted on them
(:func:`fit_probe`), with the same head and losses as the ``speech_probe``
task (:mod:`jaxcompress.ssl.ofa_probe`). Utterance-level targets keep only the
masked mean of the compressed frames, which is what their head computes first.

Cost is reported analytically from the compressed lengths
(:func:`transformer_flops`): the encoder here always runs on a static bound
``T = ceil(S / 2)`` (padding is masked), so CPU wall time would not show the
saving that a length-bucketed deployment gets.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Yang et al.,
SUPERB, Interspeech 2021 (frozen upstream, light downstream heads).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.data import Source
from jaxcompress.nn.speech import SpeechEncoder, SpeechEncoderConfig
from jaxcompress.speech.batching import model_inputs
from jaxcompress.ssl.ofa import BASE_FRAME_MS
from jaxcompress.ssl.ofa_probe import ProbeHead, ProbeTarget, num_outputs, probe_losses
from jaxcompress.ssl.probe import HeadFit, fit_head


@dataclasses.dataclass
class Encoded:
    """Frozen features of one split at one operating point.

    Attributes:
        hidden: [N, T, H] compressed frames (sequence targets; trimmed to the
            longest utterance) or [N, 1, H] their masked mean (utterance targets).
        mask: [N, T] bool real frames.
        labels: [N] class ids or [N, L] padded label ids.
        lengths: [N] compressed lengths (before any pooling).
        frames50: [N] real 50 Hz frames.
        alpha_sum: [N] sum of the un-mixed alpha (expected segments per utterance).
    """

    hidden: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    frames50: np.ndarray
    alpha_sum: np.ndarray


def _encode_fn(config: SpeechEncoderConfig) -> Any:
    encoder = SpeechEncoder(config, deterministic=True)

    @jax.jit
    def encode(params: Any, logmel: jax.Array, mask: jax.Array, lam: jax.Array) -> dict[str, jax.Array]:
        out = encoder.apply({"params": params}, logmel, mask, lam)
        m = out.mask[..., None].astype(jnp.float32)
        pooled = (out.hidden * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
        return {"hidden": out.hidden, "pooled": pooled, "mask": out.mask, "lengths": out.lengths,
                "frames50": out.frame_mask.sum(-1), "alpha_sum": out.alpha.sum(-1)}

    return encode


_ENCODERS: dict[Any, Any] = {}


def encode_records(config: SpeechEncoderConfig, params: Any, source: Source, lam: float,
                   fields: tuple[str, ...], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Runs the frozen encoder over every record of ``source`` at ``lam`` (one pass for many targets).

    Returns:
        ``hidden`` [N, T, H] (trimmed to the longest compressed utterance),
        ``pooled`` [N, H] (masked mean of the compressed frames), ``mask``
        [N, T], ``lengths``, ``frames50``, ``alpha_sum`` [N], and the record
        fields named in ``fields``.
    """
    key = dataclasses.astuple(config)
    if key not in _ENCODERS:
        _ENCODERS[key] = _encode_fn(config)
    encode = _ENCODERS[key]
    n = len(source)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        raw = source.read(idx)
        batch = model_inputs(raw)
        pad = batch_size - idx.size  # one static batch shape: a single compilation
        arrays = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
        out = jax.device_get(encode(params, arrays["logmel"], arrays["mask"], jnp.float32(lam)))
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v)[:idx.size])
        for f in fields:
            parts.setdefault(f, []).append(np.asarray(raw[f]).astype(np.int32))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    width = max(int(cat["lengths"].max()), 1)
    cat["hidden"] = cat["hidden"][:, :width].astype(np.float32)
    cat["mask"] = cat["mask"][:, :width]
    return cat


def for_target(encoded: dict[str, np.ndarray], target: ProbeTarget) -> Encoded:
    """The :class:`Encoded` view of :func:`encode_records` output that ``target``'s probe reads."""
    n = encoded["lengths"].shape[0]
    if target.level == "utterance":
        hidden, mask = encoded["pooled"][:, None, :], np.ones((n, 1), bool)
    else:
        hidden, mask = encoded["hidden"], encoded["mask"]
    return Encoded(hidden, mask, encoded[target.field], encoded["lengths"], encoded["frames50"],
                   encoded["alpha_sum"])


def encode_split(config: SpeechEncoderConfig, params: Any, source: Source, lam: float, target: ProbeTarget,
                 batch_size: int = 64) -> Encoded:
    """Runs the frozen encoder over every record of ``source`` at ``lam`` for one target.

    Returns:
        :class:`Encoded` with ``hidden`` as [N, T, H] for sequence targets and
        [N, 1, H] (masked mean) for utterance targets.
    """
    return for_target(encode_records(config, params, source, lam, (target.field,), batch_size), target)


def score(target: ProbeTarget, stats: dict[str, np.ndarray]) -> float:
    """Accuracy (utterance targets) or corpus error rate ``sum(edits) / sum(ref_length)``."""
    if target.level == "utterance":
        return float(np.mean(stats["accuracy"]))
    return float(np.sum(stats["edits"]) / max(np.sum(stats["ref_length"]), 1.0))


def fit_probe(target: ProbeTarget, num_labels: int, train: Encoded, validation: Encoded, test: Encoded,
              settings: HeadFit = HeadFit(), head_hidden: int = 0) -> dict[str, Any]:
    """Trains ``target``'s probe head on frozen features (:func:`~jaxcompress.ssl.probe.fit_head`).

    Returns:
        ``{"validation": score, "test": score, "best_step": int}`` with scores from :func:`score`.
    """
    head = ProbeHead(num_outputs(target, num_labels), target.level, head_hidden)
    params = head.init(jax.random.key(settings.seed), jnp.asarray(train.hidden[:1]),
                       jnp.asarray(train.mask[:1]))["params"]

    def per_example(p: Any, hidden: jax.Array, mask: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
        return probe_losses(target, head.apply({"params": p}, hidden, mask), mask, labels)

    def batch_loss(stats: dict[str, jax.Array]) -> jax.Array:
        if target.level == "sequence":  # CTC: mean over the feasible utterances
            return stats["loss"].sum() / jnp.maximum(stats["feasible"].sum(), 1.0)
        return stats["loss"].mean()

    def arrays(data: Encoded) -> tuple[np.ndarray, ...]:
        return data.hidden, data.mask, data.labels

    return fit_head(params, per_example, batch_loss, lambda stats: score(target, stats), arrays(train),
                    arrays(validation), arrays(test), settings, higher_is_better=target.level == "utterance")


def transformer_flops(lengths: np.ndarray, config: SpeechEncoderConfig) -> float:
    """Mean multiply-adds x 2 of the transformer stack per utterance for compressed ``lengths``.

    Per layer and utterance of T frames with width H and feed-forward width F:
    projections ``8 T H^2``, attention scores and context ``4 T^2 H``, feed-forward ``4 T H F``.
    """
    t = np.asarray(lengths, np.float64)
    h, f = config.hidden_size, config.intermediate_size
    per_layer = 8 * t * h * h + 4 * t * t * h + 4 * t * h * f
    return float(np.mean(per_layer) * config.num_layers)


def frame_period_ms(frames50: np.ndarray, lengths: np.ndarray) -> float:
    """Measured mean frame period of a split: 20 ms x (50 Hz frames) / (compressed frames), over all utterances."""
    return BASE_FRAME_MS * float(np.sum(frames50)) / max(float(np.sum(lengths)), 1.0)
