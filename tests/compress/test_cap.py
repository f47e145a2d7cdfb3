"""CAP: the contrastive loss against a NumPy transcription of the reference loop, the schedule, the refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.compress import cap as C
from jaxcompress.compress.pruning import Pruner
from jaxcompress.errors import ConfigError
from tests.compress.cap_numpy_reference import reference_bank_loss, reference_kept_fraction

N, B, D, LABELS = 40, 6, 8, 3


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _inputs(seed, slots):
    rng = np.random.default_rng(seed)
    z = _unit(rng.normal(size=(B, D))).astype(np.float32)
    bank = _unit(rng.normal(size=(N, slots, D))).astype(np.float32)
    all_labels = rng.integers(0, LABELS, N).astype(np.int32)
    ids = rng.choice(N, B, replace=False).astype(np.int32)
    return z, bank, all_labels, ids, all_labels[ids]


def _jax_loss(z, bank, filled, all_labels, ids, labels, key, extra, normalization, tau=0.1, w_unsup=0.1, w_sup=10.0):
    loss, _ = C.bank_term(jnp.asarray(z), jnp.asarray(ids), jnp.asarray(labels), jnp.asarray(bank),
                          jnp.asarray(filled), jnp.asarray(all_labels), key, extra=extra, tau=tau, w_unsup=w_unsup,
                          w_sup=w_sup, normalization=normalization)
    return float(loss)


def _extra_ids(key, views, extra):
    """The examples the reference draws: ``extra // R`` distinct random ids (from the same key)."""
    return np.asarray(jax.random.permutation(key, N))[:min(extra // views, N)]


@pytest.mark.parametrize("normalization", ["reference", "supcon"])
@pytest.mark.parametrize("filled_views,extra", [(1, 12), (2, 12), (3, 7), (2, 0), (1, 500)])
def test_bank_loss_matches_the_reference_loop_and_unfilled_slots_change_nothing(normalization, filled_views, extra):
    slots = 4
    z, bank, all_labels, ids, labels = _inputs(filled_views * 10 + extra, slots)
    key = jax.random.key(filled_views + extra)
    filled = np.arange(slots) < filled_views
    got = _jax_loss(z, bank, filled, all_labels, ids, labels, key, extra, normalization)
    want = reference_bank_loss(z, ids, labels, bank[:, :filled_views], all_labels,
                               _extra_ids(key, filled_views, extra) if extra else np.zeros(0, int), 0.1, 0.1, 10.0,
                               normalization)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    # Garbage in the unfilled slots, or no unfilled slots at all: the same loss.
    noisy = bank.copy()
    noisy[:, filled_views:] = np.random.default_rng(0).normal(size=noisy[:, filled_views:].shape) * 5
    np.testing.assert_allclose(_jax_loss(z, noisy, filled, all_labels, ids, labels, key, extra, normalization), got,
                               rtol=1e-6, atol=1e-7)
    trimmed = bank[:, :filled_views]
    np.testing.assert_allclose(_jax_loss(z, trimmed, np.ones(filled_views, bool), all_labels, ids, labels, key,
                                         extra, normalization), got, rtol=1e-6, atol=1e-7)


def test_an_empty_bank_adds_nothing():
    z, bank, all_labels, ids, labels = _inputs(0, 3)
    assert _jax_loss(z, bank, np.zeros(3, bool), all_labels, ids, labels, jax.random.key(0), 16, "reference") == 0.0


def test_reference_normalisation_is_the_mean_log_probability_of_the_positive_for_one_view():
    """With R = 1 and no label term, the reference loss is about -mean_i log p(positive_i) (sec. 4 of the note)."""
    z, bank, all_labels, ids, labels = _inputs(5, 1)
    loss = _jax_loss(z, bank, np.ones(1, bool), all_labels, ids, labels, jax.random.key(1), 0, "reference",
                     w_unsup=1.0, w_sup=0.0)
    cand = np.concatenate([z, bank[ids, 0]])
    scores = z @ cand.T / 0.1
    scores[np.arange(B), np.arange(B)] = -1e6
    logp = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - scores.max(1, keepdims=True)
    np.testing.assert_allclose(loss, -logp[np.arange(B), B + np.arange(B)].mean(), rtol=1e-5)


def test_gradient_flows_through_the_anchor_only():
    z, bank, all_labels, ids, labels = _inputs(9, 2)
    filled = np.array([True, False])
    key = jax.random.key(3)

    def loss(z_, bank_):
        return C.bank_term(z_, jnp.asarray(ids), jnp.asarray(labels), bank_, jnp.asarray(filled),
                           jnp.asarray(all_labels), key, extra=10, tau=0.1, w_unsup=0.1, w_sup=10.0)[0]

    g_z, g_bank = jax.grad(loss, argnums=(0, 1))(jnp.asarray(z), jnp.asarray(bank))
    assert not np.any(np.asarray(g_bank))
    # The anchor's gradient with every candidate (its own detached copies included) held fixed.
    extra_ids = _extra_ids(key, 1, 10)
    z64 = z.astype(np.float64)

    def fixed(anchor):
        return _reference_with_fixed_candidates(anchor, z64, ids, labels, bank[:, :1], all_labels, extra_ids)

    numeric = np.zeros_like(z64)
    eps = 1e-5
    for i in range(B):
        for j in range(D):
            up, down = z64.copy(), z64.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (fixed(up) - fixed(down)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(g_z), numeric, rtol=2e-3, atol=2e-4)


def _reference_with_fixed_candidates(anchor, detached, ids, labels, bank, all_labels, extra_ids):
    """The reference loss where the anchors move but the candidate list (own copies included) does not."""
    cand = [detached[i] for i in range(B)] + [bank[i, 0] for i in ids] + [bank[j, 0] for j in extra_ids]
    cand_id = list(ids) * 2 + list(extra_ids)
    cand_label = list(labels) * 2 + [all_labels[j] for j in extra_ids]
    cand = np.asarray(cand)
    total = 0.0
    for weight, key in ((0.1, cand_id), (10.0, cand_label)):
        anchor_key = ids if key is cand_id else labels
        sums, count = 0.0, 0
        for i in range(B):
            scores = cand @ anchor[i] / 0.1
            scores[i] = -1e6
            logp = scores - scores.max() - np.log(np.exp(scores - scores.max()).sum())
            pos = [j for j in range(len(cand)) if j != i and key[j] == anchor_key[i]]
            if pos:
                sums += logp[pos].mean()
                count += len(pos)
        total += weight * -sums / max(count, 1)
    return total


def test_cubic_schedule_matches_the_reference_at_its_three_checkpoints():
    total, warmup, sparsity = 1000, 60, 0.9
    start, end = C.reference_schedule(total, warmup)
    schedule = Pruner(method="movement", sparsity=sparsity, schedule="gradual", start_step=start, end_step=end,
                      frequency=1).sparsity_schedule()
    middle = (start + end) // 2
    for step in (start, middle, end, start - 5, end + 5, 0, total):
        kept = reference_kept_fraction(step, total, warmup, 2, 3, 1 - sparsity)
        np.testing.assert_allclose(float(schedule.target(step)), 1 - kept, atol=1e-6, err_msg=f"step {step}")
        assert bool(schedule.is_update(step)) == (start <= step <= end)
    np.testing.assert_allclose(float(schedule.target(middle)), sparsity * (1 - 0.5 ** 3), atol=1e-6)
    with pytest.raises(ConfigError, match="no pruning ramp"):
        C.reference_schedule(100, 30)


def test_label_map_mismatch_is_refused_naming_both():
    C.check_label_maps(("a", "b"), ("a", "b"), "x", "y")
    with pytest.raises(ConfigError, match=r"teacher's labels \(pydocs_topic.*student's \(pydocs_pair"):
        C.check_label_maps(("io", "net"), ("different_document", "same_document"), "pydocs_topic", "pydocs_pair")
    with pytest.raises(ConfigError, match="same label map"):
        C.check_label_maps(("b", "a"), ("a", "b"), "x", "x")  # same names, another order


def test_bank_memory_is_counted_and_refused_when_it_would_not_fit():
    # QQP at BERT-base width: 364k examples, PrC + FiC + 9 snapshot views of 768 floats, plus 2 logits each.
    qqp = C.bank_bytes(363_846, 768, 9, 2)
    assert qqp == 363_846 * 768 * 11 * 4 + 363_846 * 2 * 4
    assert C.bank_bytes(363_846, 768, 9, 2, "bfloat16") < qqp * 0.51
    assert C.bank_bytes(100, 8, 3, 2, banks=("fine",)) == 100 * 8 * 4 + 100 * 2 * 4
    C.check_bank_memory(qqp, 0.0, 64 * 2**30)
    with pytest.raises(ConfigError, match="max_bank_mb"):
        C.check_bank_memory(qqp, 0.0, 16 * 2**30)  # half of 16 GiB is less than ~11.5 GiB
    with pytest.raises(ConfigError, match="snapshot_slots"):
        C.check_bank_memory(2**20 + 1, 1.0, 0)
