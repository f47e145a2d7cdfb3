"""Train batches read and placed on the devices ahead of the steps that use them.

A background thread reads each transfer's batches, stacks them and puts them on
the devices while the devices run earlier steps. A transfer is either

* a **block** of ``block`` consecutive steps' batches (one step per host call,
  the step picks its slot on the device), aligned so step ``s`` sits in slot
  ``s % block``; or
* one host call's batches: a single batch, or several stacked for a scanned
  multi-step call.

Blocks cut the per-step host work of small, fast steps to a dispatch: one
transfer every ``block`` steps instead of every step.

References:
  Murray et al., "tf.data: A Machine Learning Data Processing Framework",
  VLDB 2021 (prefetching input ahead of the accelerator).
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Any, Callable

import jax
import numpy as np

from jaxcompress.train.config import Config

# Largest block of train batches one transfer puts on the devices (this process's rows).
DEVICE_PREFETCH_BYTES = 64 << 20
# Transfers read and placed ahead of the one in use.
PREFETCH_DEPTH = 2

Batch = dict[str, np.ndarray]


def prefetch_block(config: Config, example: Batch) -> int:
    """How many steps' batches go to the devices in one transfer when each call runs one step.

    ``data.device_prefetch``, fewer where that many would pass
    :data:`DEVICE_PREFETCH_BYTES`; ``example`` is one prepared row. 1 when
    ``steps_per_call`` > 1: those calls take their own stacked batches.
    """
    if config.steps_per_call > 1:
        return 1
    row_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(example))
    batch_bytes = max(1, row_bytes * config.data.batch_size // jax.process_count())
    return max(1, min(config.data.device_prefetch, DEVICE_PREFETCH_BYTES // batch_bytes))


class BatchFeed:
    """The transfers that feed steps ``start`` to ``total`` - 1, in order, prepared ahead by a thread.

    Args:
      local_batch: step -> this process's rows of that step's batch.
      place: one batch -> arrays on the devices.
      place_stacked: list of batches -> arrays stacked on a leading step axis, on the devices.
      call_end: step -> the step after the last one of the host call starting there (block == 1).
      start, total: the first step to feed and the number of steps of the run.
      block: steps per block transfer; 1 feeds one host call per transfer.

    Use as a context manager; :meth:`take` returns the transfers in order.
    """

    def __init__(self, local_batch: Callable[[int], Batch], place: Callable[[Batch], Any],
                 place_stacked: Callable[[list[Batch]], Any], call_end: Callable[[int], int], start: int,
                 total: int, block: int):
        self._local_batch, self._place, self._place_stacked = local_batch, place, place_stacked
        self._call_end, self._next_start, self._total, self.block = call_end, start, total, block
        self._queued: collections.deque[tuple[int, concurrent.futures.Future]] = collections.deque()
        self._pool = concurrent.futures.ThreadPoolExecutor(1)

    def __enter__(self) -> "BatchFeed":
        self._queue_transfers()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def take(self) -> tuple[int, Any]:
        """The next transfer, as (the step after the last one it feeds, its arrays on the devices)."""
        end, future = self._queued.popleft()
        arrays = future.result()
        self._queue_transfers()
        return end, arrays

    def _queue_transfers(self) -> None:
        # Several queued, so a thread that waited for the interpreter lock catches up.
        while len(self._queued) < PREFETCH_DEPTH and self._next_start < self._total:
            start = self._next_start
            end = (min(start - start % self.block + self.block, self._total) if self.block > 1
                   else self._call_end(start))
            self._queued.append((end, self._pool.submit(self._load, start, end)))
            self._next_start = end

    def _load(self, start: int, end: int) -> Any:
        if self.block > 1:
            first = start - start % self.block
            batches = {s: self._local_batch(s) for s in range(start, end)}
            # Slots no step reads (before a resume point, after the last step) repeat a neighbour.
            return self._place_stacked([batches[min(max(s, start), end - 1)]
                                        for s in range(first, first + self.block)])
        if end == start + 1:
            return self._place(self._local_batch(start))
        return self._place_stacked([self._local_batch(s) for s in range(start, end)])
