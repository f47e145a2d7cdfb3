"""CTC loss on padded batches, greedy decoding and edit distance, all jittable.

Label convention: labels are ids ``>= 0`` padded with ``-1``; the CTC output
layer has ``num_labels + 1`` classes with the blank at index 0, so label ``l``
is class ``l + 1``.

References: Graves et al., "Connectionist Temporal Classification: Labelling
Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006;
Levenshtein, "Binary codes capable of correcting deletions, insertions, and
reversals", 1966.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

BLANK = 0
#: optax gives an impossible alignment (too few frames) a loss near -log_epsilon = 1e5.
INFEASIBLE = 1e4


def ctc_loss(logits: jax.Array, frame_mask: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-utterance CTC negative log-likelihood.

    Args:
        logits: [B, T, V + 1] unnormalised scores, blank at 0.
        frame_mask: [B, T] bool real frames.
        labels: [B, L] int label ids in ``[0, V)``, ``-1`` padded.

    Returns:
        ``(loss [B], feasible [B] bool)``. An utterance with too few frames for
        its labels (fewer than the labels plus one blank per repeat) has no
        alignment; its loss is replaced by 0 and ``feasible`` is False, so one
        such row cannot swamp the batch (PyTorch's ``zero_infinity``).

    References: Graves et al., ICML 2006 (the forward algorithm, via ``optax.ctc_loss``).
    """
    label_pad = (labels < 0).astype(jnp.float32)
    ids = jnp.where(labels < 0, 0, labels + 1).astype(jnp.int32)
    loss = optax.ctc_loss(logits.astype(jnp.float32), (~frame_mask).astype(jnp.float32), ids, label_pad,
                          blank_id=BLANK)
    feasible = loss < INFEASIBLE
    return jnp.where(feasible, loss, 0.0), feasible


def greedy_decode(logits: jax.Array, frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        logits: [B, T, V + 1] scores, blank at 0.
        frame_mask: [B, T] bool.

    Returns:
        ``(ids [B, T] label ids left-packed and -1 padded, lengths [B])``.
    """
    best = jnp.where(frame_mask, jnp.argmax(logits, axis=-1), BLANK)
    previous = jnp.pad(best, ((0, 0), (1, 0)), constant_values=BLANK)[:, :-1]
    keep = (best != BLANK) & (best != previous)
    lengths = keep.sum(-1).astype(jnp.int32)
    # Stable left-packing: kept frames first, in order.
    order = jnp.argsort(~keep, axis=-1, stable=True)
    packed = jnp.take_along_axis(best - 1, order, axis=-1)
    ids = jnp.where(jnp.arange(best.shape[1])[None, :] < lengths[:, None], packed, -1)
    return ids.astype(jnp.int32), lengths


def edit_distance(hyp: jax.Array, hyp_len: jax.Array, ref: jax.Array, ref_len: jax.Array) -> jax.Array:
    """Levenshtein distance between padded sequences, one row of the DP table per hypothesis symbol.

    Row update: ``e[j] = min(d[j] + 1, d[j-1] + (h != r_j))`` then the insertions
    along the row, ``d'[j] = j + cummin_k (e[k] - k)``.

    Args:
        hyp: [B, N] int; hyp_len: [B]; ref: [B, L] int; ref_len: [B].

    Returns:
        int32 [B] distances.
    """
    batch, length = ref.shape
    cols = jnp.arange(length + 1)
    row0 = jnp.broadcast_to(cols, (batch, length + 1)).astype(jnp.int32)

    def step(row, inputs):
        i, token = inputs  # i is 1-based
        substitute = row[:, :-1] + (token[:, None] != ref).astype(jnp.int32)
        e = jnp.concatenate([jnp.full((batch, 1), i, jnp.int32), jnp.minimum(row[:, 1:] + 1, substitute)], 1)
        new = cols[None, :] + jax.lax.cummin(e - cols[None, :], axis=1)
        active = (i <= hyp_len)[:, None]
        return jnp.where(active, new, row), None

    steps = jnp.arange(1, hyp.shape[1] + 1, dtype=jnp.int32)
    final, _ = jax.lax.scan(step, row0, (steps, hyp.T))
    return jnp.take_along_axis(final, ref_len[:, None].astype(jnp.int32), axis=1)[:, 0]
