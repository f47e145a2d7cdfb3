"""Once-for-all (OFA) sequence compression: lambda sampling, pooled targets, alpha losses.

Pretraining one model for every compression rate needs four pieces, all
pure functions here:

* **lambda per batch** (:func:`sample_lambda`): ``uniform`` draws
  ``lam ~ U(0, upper)``; ``uniform_fr`` draws a frame period
  ``FP ~ U(base, fp_max)`` and inverts ``FP(lam) = base / (1 - lam (1 - a))``
  with the assumed mean weight ``a`` (2/9 in the reference); ``fixed`` trains a
  single-rate model. One draw per batch, as the reference does, or one per
  utterance.
* **targets on the student's grid** (:func:`bestrq_codes`): the 50 Hz
  targets are pooled with the student's own CIF weights
  (:func:`jaxcompress.ops.pool_like`) and quantised with a frozen random
  projection and codebook (BEST-RQ), so predictions and targets share one
  time grid whatever the rate.
* **span masks** on the compressed grid (:func:`span_mask`).
* **alpha supervision** towards known segment boundaries
  (:func:`alpha_losses`), on the un-mixed alpha so it keeps tracking segments
  whatever lambda was drawn: the frame loss ``|alpha - 1/L|``, the segment
  loss ``|cumsum(alpha)[b_k - 1] - k|`` (one fire per segment) and the
  quantity loss ``|sum(alpha) - K|`` (CIF's).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Chiu et al.,
"Self-supervised Learning with Random-projection Quantizer for Speech
Recognition" (BEST-RQ), ICML 2022; Dong & Xu, "CIF", ICASSP 2020 (quantity loss).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError
from jaxcompress.nn.speech import SpeechEncoderConfig

LAMBDA_MODES = ("uniform", "uniform_fr", "fixed")
#: The 50 Hz frame period of the front end, in milliseconds.
BASE_FRAME_MS = 20.0


@dataclasses.dataclass
class OFASpeechConfig(SpeechEncoderConfig):
    """The CIF speech encoder plus its once-for-all masked-prediction pretraining."""

    lambda_mode: str = option("uniform", help="how lambda is drawn per batch", choices=LAMBDA_MODES)
    lambda_upper: float = option(1.0, help="uniform: lambda ~ U(0, lambda_upper)", min=0.0, max=1.0)
    fixed_lambda: float = option(0.0, help="fixed: the one lambda this model is trained at", min=0.0, max=1.0)
    fp_max_ms: float = option(90.0, help="uniform_fr: frame period ~ U(20 ms, fp_max_ms)", min=20.0)
    fr_mean_alpha: float = option(2.0 / 9.0, help="uniform_fr: assumed mean alpha (the reference's 2/9)",
                                  min=0.0, max=1.0, min_exclusive=True)
    lambda_per_example: bool = option(False, help="one lambda per utterance instead of per batch")
    segments: str = option("phone", help="boundaries alpha is supervised towards", choices=("phone", "word"))
    frame_loss_weight: float = option(0.5, help="weight of |alpha - 1/L| (reference: 0.5)", min=0.0)
    seg_loss_weight: float = option(0.05, help="weight of |cumsum(alpha)[b_k - 1] - k| (reference: 0.05)",
                                    min=0.0)
    quantity_loss_weight: float = option(0.0, help="weight of |sum(alpha) - K| / K", min=0.0)
    mask_prob: float = option(0.15, help="probability that a compressed frame starts a masked span",
                              min=0.0, max=1.0)
    mask_span: int = option(3, help="compressed frames per masked span", min=1)
    num_codebooks: int = option(2, help="BEST-RQ codebooks (one prediction head each)", min=1)
    codebook_size: int = option(128, help="codes per codebook", min=2)
    code_dim: int = option(16, help="dimension of the random projection", min=1)
    eval_lambda: float = option(0.5, help="lambda of the evaluation metrics", min=0.0, max=1.0)

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.lambda_mode == "uniform_fr":
            top = lambda_for_frame_period(self.fp_max_ms, self.fr_mean_alpha)
            if top > 1.0 + 1e-6:
                raise ConfigError(f"config key '{prefix}fp_max_ms' = {self.fp_max_ms} needs lambda {top:.3f} > 1 "
                                  f"with {prefix}fr_mean_alpha={self.fr_mean_alpha:.4f}; the longest frame period "
                                  f"is {frame_period_ms(1.0, self.fr_mean_alpha):.1f} ms")


def frame_period_ms(lam: jax.Array | float, mean_alpha: jax.Array | float,
                    base_ms: float = BASE_FRAME_MS) -> jax.Array:
    """Mean frame period after OFA mixing: ``base / (1 - lam (1 - mean_alpha))`` for lam in [0, 1].

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
    """
    return base_ms / (1.0 - jnp.asarray(lam) * (1.0 - jnp.asarray(mean_alpha)))


def lambda_for_frame_period(fp_ms: jax.Array | float, mean_alpha: jax.Array | float,
                            base_ms: float = BASE_FRAME_MS) -> jax.Array:
    """Inverse of :func:`frame_period_ms`: ``(1 - base / FP) / (1 - mean_alpha)``."""
    return (1.0 - base_ms / jnp.asarray(fp_ms)) / (1.0 - jnp.asarray(mean_alpha))


def sample_lambda(rng: jax.Array, config: OFASpeechConfig, batch_size: int) -> jax.Array:
    """Lambda for one training batch: scalar, or [B] with ``lambda_per_example``.

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332) (``mixup_distro``
    ``uniform`` and ``uniform-fr`` of the reference code).
    """
    shape = (batch_size,) if config.lambda_per_example else ()
    if config.lambda_mode == "fixed":
        return jnp.full(shape, config.fixed_lambda, jnp.float32)
    u = jax.random.uniform(rng, shape, jnp.float32)
    if config.lambda_mode == "uniform":
        return u * config.lambda_upper
    fp = BASE_FRAME_MS + u * (config.fp_max_ms - BASE_FRAME_MS)
    return jnp.clip(lambda_for_frame_period(fp, config.fr_mean_alpha), 0.0, 1.0).astype(jnp.float32)


def span_mask(rng: jax.Array, valid: jax.Array, prob: float, span: int) -> jax.Array:
    """Random spans on a [B, T] grid: each frame starts a span of ``span`` frames with probability ``prob``.

    Returns:
        bool [B, T], False outside ``valid``.

    References: Baevski et al., "wav2vec 2.0", NeurIPS 2020 (span masking).
    """
    starts = jax.random.bernoulli(rng, prob, valid.shape)
    covered = starts
    for shift in range(1, span):
        covered = covered | jnp.pad(starts, ((0, 0), (shift, 0)))[:, :valid.shape[1]]
    return covered & valid


def standardize(values: jax.Array, mask: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Per-utterance, per-feature standardisation over the real frames of ``values [B, S, F]``."""
    m = mask[..., None].astype(values.dtype)
    count = jnp.maximum(m.sum(1, keepdims=True), 1.0)
    mean = (values * m).sum(1, keepdims=True) / count
    var = (((values - mean) * m) ** 2).sum(1, keepdims=True) / count
    return jnp.where(mask[..., None], (values - mean) / jnp.sqrt(var + eps), 0.0)


def stack_to_50hz(logmel: jax.Array) -> jax.Array:
    """[B, S, M] at 100 Hz -> [B, ceil(S/2), 2M]: pairs of frames side by side (the 50 Hz target vectors)."""
    b, s, m = logmel.shape
    if s % 2:
        logmel = jnp.pad(logmel, ((0, 0), (0, 1), (0, 0)))
    return logmel.reshape(b, (s + 1) // 2, 2 * m)


def random_quantizer(seed: int, input_dim: int, config: OFASpeechConfig) -> tuple[jax.Array, jax.Array]:
    """Frozen BEST-RQ projections [G, F, P] (Xavier-normal) and unit codebooks [G, K, P]."""
    k_proj, k_code = jax.random.split(jax.random.key(seed))
    g, p, k = config.num_codebooks, config.code_dim, config.codebook_size
    proj = jax.random.normal(k_proj, (g, input_dim, p)) * jnp.sqrt(2.0 / (input_dim + p))
    codes = jax.random.normal(k_code, (g, k, p))
    return proj, codes / jnp.linalg.norm(codes, axis=-1, keepdims=True)


def bestrq_codes(targets: jax.Array, projection: jax.Array, codebook: jax.Array) -> jax.Array:
    """Nearest-codeword ids of projected target vectors.

    Args:
        targets: [B, T, F] target vectors (already pooled onto the student's grid).
        projection: [G, F, P] frozen random projections.
        codebook: [G, K, P] frozen unit-norm codebooks.

    Returns:
        int32 [B, T, G]: ``argmin_k || normalize(x W_g) - c_gk ||``, i.e. the
        codeword of largest cosine similarity.

    References: Chiu et al., BEST-RQ, ICML 2022.
    """
    z = jnp.einsum("btf,gfp->btgp", targets, projection)
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-6)
    return jnp.argmax(jnp.einsum("btgp,gkp->btgk", z, codebook), axis=-1).astype(jnp.int32)


def alpha_losses(alpha: jax.Array, alpha_target: jax.Array, frame_mask: jax.Array,
                 boundaries: jax.Array) -> dict[str, jax.Array]:
    """Per-utterance losses pulling the un-mixed alpha towards known segments.

    Args:
        alpha: [B, S] predicted weights (zero on padding).
        alpha_target: [B, S] pseudo weights, ``1/L`` on each frame of an L-frame segment.
        frame_mask: [B, S] bool real frames.
        boundaries: [B, K] int 1-based last frame of each segment, -1 padded.

    Returns:
        ``frame`` (mean ``|alpha - target|`` over real frames), ``seg`` (mean
        over segments of ``|cumsum(alpha)[b_k - 1] - k|``) and ``quantity``
        (``|sum alpha - K| / K``), each [B].

    References: Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332) (frame and
    segment losses of the reference code); Dong & Xu, ICASSP 2020 (quantity loss).
    """
    m = frame_mask.astype(jnp.float32)
    frame = (jnp.abs(alpha - alpha_target) * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)
    has = boundaries > 0
    count = has.sum(-1).astype(jnp.float32)
    csum = jnp.cumsum(alpha, axis=-1)
    at = jnp.take_along_axis(csum, jnp.clip(boundaries - 1, 0, alpha.shape[1] - 1), axis=-1)
    k = jnp.arange(1, boundaries.shape[1] + 1, dtype=jnp.float32)
    seg = (jnp.abs(at - k) * has).sum(-1) / jnp.maximum(count, 1.0)
    quantity = jnp.abs(alpha.sum(-1) - count) / jnp.maximum(count, 1.0)
    return {"frame": frame, "seg": seg, "quantity": quantity}
