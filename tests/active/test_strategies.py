"""Selection: top-B picking, core-set k-centre greedy (vs brute force), entropy and flip scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxcompress.active import strategies as St
from jaxcompress.errors import ConfigError


def test_select_top_returns_budget_unique_unlabelled_ids():
    rng = np.random.default_rng(0)
    scores = np.asarray([0.1, 0.9, 0.9, 0.5, 0.9, 0.2])
    labelled = np.asarray([False, True, False, False, False, False])
    picked = St.select_top(scores, labelled, 3, rng)
    assert sorted(picked.tolist()) == [2, 3, 4]  # 1 is labelled; ties 2/4 both kept, then 0.5
    assert len(set(picked.tolist())) == 3 and not labelled[picked].any()
    two = {tuple(sorted(St.select_top(scores, labelled, 1, np.random.default_rng(s)).tolist())) for s in range(20)}
    assert two == {(2,), (4,)}  # ties broken at random, both possible
    with pytest.raises(ConfigError, match="budget"):
        St.select_top(scores, labelled, 6, rng)


def test_k_center_greedy_matches_brute_force_choice_each_step():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    labelled = np.zeros(30, bool)
    labelled[[0, 5]] = True
    picks = St.k_center_greedy(x, labelled, 4)
    chosen = [0, 5]
    for p in picks:  # slow reference: the point maximising its distance to the nearest chosen centre
        dist = [min(np.linalg.norm(x[i] - x[c]) for c in chosen) if i not in chosen else -1 for i in range(30)]
        assert p == int(np.argmax(dist))
        chosen.append(int(p))


def test_k_center_greedy_is_the_optimal_radius_on_a_tiny_case():
    # Four far clusters, one labelled: 3 picks must land in the 3 other clusters.
    centres = np.asarray([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    x = np.concatenate([c + 0.1 * np.asarray(list(itertools.product([0, 1], [0, 1]))) for c in centres])
    labelled = np.zeros(len(x), bool)
    labelled[0] = True
    picks = St.k_center_greedy(x, labelled, 3)
    assert sorted(set(p // 4 for p in picks)) == [1, 2, 3]


def test_entropies_and_combination():
    assert St.binary_entropy(np.asarray([0.5]))[0] == pytest.approx(np.log(2))
    assert St.binary_entropy(np.asarray([0.0, 1.0])).tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
    parts = {"entropy_det": np.asarray([0.0, 1.0, 2.0]), "entropy_seg": np.asarray([4.0, 2.0, 0.0])}
    rng = np.random.default_rng(0)
    assert St.combine_scores("entropy", parts, rng).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert St.combine_scores("max_uncertainty", parts, rng).tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert St.combine_scores("entropy_det", parts, rng).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ConfigError, match="strategy"):
        St.combine_scores("bald", parts, rng)


def test_flip_detection_disagreement_hand_case():
    boxes = np.asarray([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    flip = np.asarray([[0, 0, 10, 10], [20, 25, 30, 35]], float)  # second one shifted: IoU 50/150
    value = St.flip_detection_disagreement(boxes, np.asarray([0.8, 0.6]), np.asarray([0, 0]), flip,
                                           np.asarray([0, 0]))
    assert value == pytest.approx((0.8 * 0 + 0.6 * (1 - 1 / 3)) / 2)
    other_class = St.flip_detection_disagreement(boxes[:1], np.asarray([0.8]), np.asarray([0]), flip[:1],
                                                 np.asarray([1]))
    assert other_class == pytest.approx(0.8)
