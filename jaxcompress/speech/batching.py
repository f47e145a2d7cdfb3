"""Host-side conversion of ``speech_*`` records into model inputs and CIF supervision.

Everything here is NumPy on the host (a task's ``prepare_batch``): segment
boundaries move from seconds onto the encoder's 50 Hz grid and become the
pseudo weights and boundary indices that supervise alpha.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxcompress.errors import DataError
from jaxcompress.speech.boundaries import frame_boundaries, pad_boundaries, pseudo_alpha

#: Seconds per frame of the features (100 Hz) and of the encoder's front end (50 Hz).
FEATURE_PERIOD = 0.01
ENCODER_PERIOD = 0.02
SEGMENT_LEVELS = ("phone", "word")
#: Features every ``speech_*`` record has.
RECORD_FEATURES = ("logmel", "num_frames", "segment_ends", "word_starts", "word_ends")


def check_features(data_info: dict[str, Any], task: str, extra: tuple[str, ...] = ()) -> None:
    """Raises DataError unless the dataset has the speech record features (plus ``extra``)."""
    missing = [f for f in RECORD_FEATURES + extra if f not in data_info["features"]]
    if missing:
        raise DataError(f"dataset {data_info['name']!r} cannot be used for task {task!r}: it lacks the "
                        f"feature(s) {', '.join(missing)} (use a speech dataset such as speech_digits or "
                        f"speech_commands); its features are: {', '.join(sorted(data_info['features']))}")


def word_segment_ends(starts: np.ndarray, ends: np.ndarray, duration: float) -> list[float]:
    """Word-level segmentation: each word, and each silence between words, is one segment."""
    out: list[float] = []
    previous = 0.0
    for start, end in zip(starts, ends):
        if start < 0:
            break
        if start > previous + 1e-3:
            out.append(float(start))  # the silence before this word
        out.append(float(end))
        previous = float(end)
    if duration > previous + 1e-3:
        out.append(duration)
    return out


def segment_targets(raw: dict[str, np.ndarray], level: str, max_segments: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries and pseudo weights on the 50 Hz grid for a batch of records.

    Args:
        raw: records with ``num_frames``, ``segment_ends``, ``word_starts``,
            ``word_ends`` and ``logmel`` ([B, S, M]).
        level: ``phone`` (phones and silences) or ``word`` (words and silences).
        max_segments: K, width of the returned boundary array.

    Returns:
        ``(boundaries int32 [B, K] 1-based, -1 padded; alpha_target float32 [B, ceil(S/2)])``.
    """
    if level not in SEGMENT_LEVELS:
        raise ValueError(f"segment level must be one of {SEGMENT_LEVELS}; got {level!r}")
    n100 = np.asarray(raw["num_frames"], np.int64)
    width = (np.asarray(raw["logmel"]).shape[1] + 1) // 2
    boundaries = np.full((n100.size, max_segments), -1, np.int32)
    targets = np.zeros((n100.size, width), np.float32)
    for i, n in enumerate(n100):
        n50 = int((n + 1) // 2)
        duration = n50 * ENCODER_PERIOD
        if level == "phone":
            ends = np.asarray(raw["segment_ends"][i])
        else:
            ends = word_segment_ends(np.asarray(raw["word_starts"][i]), np.asarray(raw["word_ends"][i]), duration)
        b = frame_boundaries(ends, n50, ENCODER_PERIOD)
        boundaries[i] = pad_boundaries(b, max_segments)
        targets[i] = pseudo_alpha(boundaries[i][boundaries[i] > 0], n50, width)
    return boundaries, targets


def model_inputs(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``logmel`` float32 [B, S, M] and ``mask`` bool [B, S] from records."""
    logmel = np.asarray(raw["logmel"], np.float32)
    mask = np.arange(logmel.shape[1])[None, :] < np.asarray(raw["num_frames"])[:, None]
    return {"logmel": logmel, "mask": mask}
