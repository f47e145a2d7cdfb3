"""Selection strategies: per-image scores over the unlabelled pool, and picking a batch from them.

Scores (higher = more worth labelling), all per image [N]:

* ``random``: uniform noise from an explicit key;
* ``entropy_det``: mean binary entropy of the top-K detection peak scores;
* ``entropy_seg``: mean per-pixel entropy of the segmentation softmax;
* ``entropy``: the two min-max normalised over the pool, summed;
* ``max_uncertainty``: the larger of the two normalised entropies;
* ``flip_det`` (single-task consistency, detection): mean over confident detections of
  ``score * (1 - best IoU with a same-class detection on the flipped image)``;
* ``flip_seg`` (single-task consistency, segmentation): mean per-pixel total-variation distance between
  the softmax and the flipped image's, flipped back;
* ``inconsistency``: the inter-task score of :mod:`jaxcompress.active.consistency`;
* ``coreset``: not a score but a batch rule, k-centre greedy on backbone embeddings.

References:
  Settles, "Active Learning Literature Survey", 2009 (entropy);
  Sener & Savarese, "Active Learning for Convolutional Neural Networks: A
  Core-Set Approach", ICLR 2018 (k-centre greedy);
  Yu et al., "Consistency-based Active Learning for Object Detection" (CALD), CVPRW 2022 (flip consistency);
  Hekimoglu et al., ICCVW 2023 (multi-task inconsistency).
"""

from __future__ import annotations

import numpy as np

from jaxcompress.active.boxes import box_iou
from jaxcompress.errors import ConfigError

SCORE_STRATEGIES = ("random", "entropy_det", "entropy_seg", "entropy", "max_uncertainty", "flip_det", "flip_seg",
                    "inconsistency")
STRATEGIES = SCORE_STRATEGIES + ("coreset",)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of Bernoulli(p), elementwise (0 at p in {0, 1})."""
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def minmax(values: np.ndarray) -> np.ndarray:
    """Rescales [N] to [0, 1] over the pool (all zeros when constant)."""
    values = np.asarray(values, np.float64)
    span = values.max() - values.min() if values.size else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def flip_detection_disagreement(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, flip_boxes: np.ndarray,
                                flip_classes: np.ndarray) -> float:
    """``mean_b score_b * (1 - max IoU(b, same-class flipped-back boxes))`` of one image (0 with no boxes).

    Args: boxes [N, 4], scores [N], classes [N] on the image; flip_boxes [M, 4] (already mapped back to the
    image's coordinates), flip_classes [M].

    References:
      Yu et al., CALD, CVPRW 2022.
    """
    if len(boxes) == 0:
        return 0.0
    iou = box_iou(boxes, flip_boxes)
    same = np.asarray(classes)[:, None] == np.asarray(flip_classes)[None, :]
    best = np.where(same, iou, 0.0).max(1) if len(flip_boxes) else np.zeros(len(boxes))
    return float(np.mean(np.asarray(scores) * (1.0 - best)))


def k_center_greedy(features: np.ndarray, labelled: np.ndarray, budget: int) -> np.ndarray:
    """Core-set selection: repeatedly add the point farthest (Euclidean) from every chosen centre.

    Args:
      features: [N, F] embeddings of the whole pool.
      labelled: bool [N], the initial centres (if none, the first pick is the point farthest from the mean).
      budget: points to add.

    Returns:
      int [budget] pool indices, in the order picked (never already labelled).

    References:
      Sener & Savarese, ICLR 2018.
    """
    features = np.asarray(features, np.float64)
    labelled = np.asarray(labelled, bool).copy()
    if budget > int((~labelled).sum()):
        raise ConfigError(f"core-set budget {budget} exceeds the {int((~labelled).sum())} unlabelled points")

    def distance_to(x: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(((features - x) ** 2).sum(1), 0.0))

    if labelled.any():
        centres = features[labelled]
        sq = (features ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None, :] - 2 * features @ centres.T
        nearest = np.sqrt(np.maximum(sq, 0.0)).min(1)
    else:
        nearest = distance_to(features.mean(0))
    picks = []
    for _ in range(budget):
        i = int(np.argmax(np.where(labelled, -np.inf, nearest)))
        picks.append(i)
        labelled[i] = True
        nearest = np.minimum(nearest, distance_to(features[i]))
    return np.asarray(picks, np.int64)


def select_top(scores: np.ndarray, labelled: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """The ``budget`` unlabelled pool indices with the highest scores; ties broken by a random permutation.

    Args: scores [N] over the whole pool; labelled bool [N].

    Raises:
      ConfigError: budget larger than the unlabelled pool, or below 1.

    References:
      Settles, "Active Learning Literature Survey", 2009.
    """
    labelled = np.asarray(labelled, bool)
    free = np.flatnonzero(~labelled)
    if not 1 <= budget <= free.size:
        raise ConfigError(f"selection budget must be in 1..{free.size} (unlabelled images left), got {budget}")
    tiebreak = rng.permutation(free.size)
    order = np.lexsort((tiebreak, -np.asarray(scores, np.float64)[free]))
    return free[order[:budget]]


def combine_scores(strategy: str, parts: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Per-image scores [N] of a score strategy from the pool's per-image signals.

    Args:
      strategy: one of :data:`SCORE_STRATEGIES`.
      parts: ``entropy_det``, ``entropy_seg``, ``flip_det``, ``flip_seg``, ``inconsistency``: each [N].

    References:
      Settles, 2009; Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
    """
    if strategy not in SCORE_STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    n = len(next(iter(parts.values())))
    if strategy == "random":
        return rng.uniform(size=n)
    if strategy == "entropy":
        return minmax(parts["entropy_det"]) + minmax(parts["entropy_seg"])
    if strategy == "max_uncertainty":
        return np.maximum(minmax(parts["entropy_det"]), minmax(parts["entropy_seg"]))
    return np.asarray(parts[strategy], np.float64)
