"""A NumPy transcription of the reference code's contrastive loss loop (``calculate_contrastive_loss``).

Written from the description of the authors' code, one anchor at a time, with the
candidate list built the way the reference builds it (the batch's detached anchors,
then every batch example's R bank views, then R views of each of ``extra // R``
random examples), so it shares no code or structure with the JAX version.
"""

from __future__ import annotations

import numpy as np


def _log_softmax(row: np.ndarray) -> np.ndarray:
    top = row.max()
    return row - top - np.log(np.exp(row - top).sum())


def reference_bank_loss(z: np.ndarray, ids: np.ndarray, labels: np.ndarray, bank: np.ndarray,
                        all_labels: np.ndarray, extra_ids: np.ndarray, tau: float, w_unsup: float,
                        w_sup: float, normalization: str = "reference") -> float:
    """One bank's loss. ``bank [N, R, d]`` holds only the R views that exist (no padding slots)."""
    z = z.astype(np.float64)
    cand, cand_id, cand_label = [], [], []
    for i in range(len(ids)):
        cand.append(z[i])
        cand_id.append(ids[i])
        cand_label.append(labels[i])
    for i in range(len(ids)):
        for r in range(bank.shape[1]):
            cand.append(bank[ids[i], r])
            cand_id.append(ids[i])
            cand_label.append(labels[i])
    for j in extra_ids:
        for r in range(bank.shape[1]):
            cand.append(bank[j, r])
            cand_id.append(j)
            cand_label.append(all_labels[j])
    cand = np.asarray(cand, np.float64)
    total = 0.0
    for weight, same in ((w_unsup, lambda i, j: cand_id[j] == ids[i]),
                         (w_sup, lambda i, j: cand_label[j] == labels[i])):
        per_anchor, counts = [], []
        for i in range(len(ids)):
            scores = cand @ z[i] / tau
            scores[i] = -1e6  # the anchor's own detached copy
            logp = _log_softmax(scores)
            positives = [j for j in range(len(cand)) if j != i and same(i, j)]
            counts.append(len(positives))
            per_anchor.append(sum(logp[j] for j in positives) / len(positives) if positives else 0.0)
        if normalization == "reference":
            term = -sum(per_anchor) / max(sum(counts), 1)
        else:
            with_positives = [p for p, n in zip(per_anchor, counts) if n > 0]
            term = -sum(with_positives) / max(len(with_positives), 1)
        total += weight * term
    return total


def reference_kept_fraction(step: int, total: int, warmup: int, initial_warmup: float, final_warmup: float,
                            kept_final: float, kept_initial: float = 1.0) -> float:
    """``schedule_threshold`` of the movement-pruning code: the fraction of weights kept at ``step``."""
    if step <= initial_warmup * warmup:
        return kept_initial
    if step > total - final_warmup * warmup:
        return kept_final
    progress = 1 - (step - initial_warmup * warmup) / (total - (initial_warmup + final_warmup) * warmup)
    return kept_final + (kept_initial - kept_final) * progress ** 3
