"""Deterministic, stateless batching: which records each host reads at each step.

The training stream is an infinite sequence of epochs; epoch ``e`` visits the
N records in the order ``np.random.default_rng([seed, e]).permutation(N)``.
Step ``s`` of a global batch of B takes stream positions ``[s*B, (s+1)*B)``,
which may straddle an epoch boundary. Because the batch is a pure function of
``(step, seed)``, a job killed and resumed at step s sees exactly the data it
would have seen, with no iterator state in the checkpoint.

Each host takes a contiguous slice of the global batch and reads only those
records. Evaluation walks a split once, in order, padding the last batch and
marking real records with ``weight`` so averages are exact.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterator

import numpy as np

from jaxcompress.data._source import Source
from jaxcompress.errors import DataError


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """Returns the read-only visiting order int64 [N] of one epoch."""
    # Cached: consecutive steps almost always fall in the same epoch, and a
    # permutation of N costs O(N) while a step needs only B entries of it.
    order = np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int64)
    order.flags.writeable = False
    return order


def global_batch_indices(step: int, global_batch: int, num_examples: int, seed: int) -> np.ndarray:
    """Returns the record indices of one training step over all hosts.

    Args:
      step: training step s >= 0.
      global_batch: B >= 1, records per step over all hosts.
      num_examples: N >= 1, records in the split.
      seed: seed >= 0 of the data order.

    Returns:
      int64 [B]: entry j is record ``order_e[p mod N]`` for stream position
      ``p = s*B + j`` and epoch ``e = p // N``, where ``order_e`` is
      ``np.random.default_rng([seed, e]).permutation(N)``.

    Raises:
      DataError: on a negative step or seed, or a non-positive batch or N.
    """
    step = _check_int("step", step, 0)
    global_batch = _check_int("global_batch", global_batch, 1)
    num_examples = _check_int("num_examples", num_examples, 1)
    seed = _check_int("seed", seed, 0)
    start = step * global_batch  # Python int: no overflow however long the run.
    first_epoch, first_offset = divmod(start, num_examples)
    out = np.empty(global_batch, np.int64)
    filled, epoch, offset = 0, first_epoch, first_offset
    while filled < global_batch:
        take = min(global_batch - filled, num_examples - offset)
        out[filled:filled + take] = _epoch_order(seed, epoch, num_examples)[offset:offset + take]
        filled, epoch, offset = filled + take, epoch + 1, 0
    return out


def host_slice(global_indices: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
    """Returns this host's contiguous part of a global batch.

    Args:
      global_indices: [B] record indices of the whole step.
      process_index: this host, in [0, process_count).
      process_count: number of hosts P; B must be divisible by P.

    Returns:
      ``global_indices[k*B/P:(k+1)*B/P]`` for host k (a view).
    """
    process_count = _check_int("process_count", process_count, 1)
    process_index = _check_int("process_index", process_index, 0)
    if process_index >= process_count:
        raise DataError(f"process_index must lie in [0, {process_count}), got {process_index}")
    global_indices = np.asarray(global_indices)
    size = global_indices.shape[0]
    if size % process_count:
        raise DataError(f"global batch size {size} must be divisible by the number of hosts "
                        f"(process_count={process_count}); use a multiple of {process_count}")
    local = size // process_count
    return global_indices[process_index * local:(process_index + 1) * local]


def train_batch(source: Source, step: int, global_batch: int, seed: int,
                process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    """Reads this host's part of training step ``step``.

    Only the records in this host's slice are read.

    Returns:
      ``{feature: [global_batch / process_count, *shape]}``.
    """
    num_examples = len(source)
    if num_examples == 0:
        raise DataError("cannot train on an empty split (it has 0 records)")
    indices = global_batch_indices(step, global_batch, num_examples, seed)
    return source.read(host_slice(indices, process_index, process_count))


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """Pads ``array`` [n, ...] with zeros to [size, ...]."""
    if array.shape[0] == size:
        return array
    padding = np.zeros((size - array.shape[0],) + array.shape[1:], array.dtype)
    return np.concatenate([array, padding])


def eval_batches(source: Source, global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Walks a split once, in record order, as fixed-size batches.

    Global batch b covers records ``[b*B, (b+1)*B)``; the last one is padded
    past N with zero records. Every host yields the same number of batches,
    ``ceil(N / B)``, so collectives stay in step; a host whose slice is all
    padding still yields a (zero-weight) batch. Padding records are not read.

    Yields:
      ``{feature: [B/P, *shape], "weight": float32 [B/P]}`` with weight 1 for a
      real record and 0 for padding, so ``sum(weight * metric) / sum(weight)``
      is the exact mean over the split.

    Raises:
      DataError: (at call time) when B is not divisible by P.
    """
    global_batch = _check_int("global_batch", global_batch, 1)
    host_slice(np.empty(global_batch), process_index, process_count)  # Validate now, not at first next().
    if "weight" in source.features:
        raise DataError("dataset has a feature named 'weight', which eval_batches uses for padding masks")
    return _eval_batches(source, global_batch, process_index, process_count)


def _eval_batches(source: Source, global_batch: int, process_index: int,
                  process_count: int) -> Iterator[dict[str, np.ndarray]]:
    num_examples = len(source)
    local = global_batch // process_count
    for b in range(math.ceil(num_examples / global_batch)):
        positions = host_slice(np.arange(b * global_batch, (b + 1) * global_batch), process_index, process_count)
        real = positions[positions < num_examples]  # A prefix: positions are increasing.
        batch = {key: _pad(value, local) for key, value in source.read(real).items()}
        batch["weight"] = (positions < num_examples).astype(np.float32)
        yield batch
