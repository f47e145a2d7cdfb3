"""The batch feed: which steps' batches each transfer carries, and how big a block may be."""

import numpy as np
import pytest

from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.train.feed import DEVICE_PREFETCH_BYTES, BatchFeed, prefetch_block


def _transfers(start: int, total: int, block: int, call_end=lambda s: s + 1) -> list[tuple[int, np.ndarray]]:
    """Every transfer of a feed over steps start..total-1; each batch is just its step number."""
    def local_batch(step):
        return {"step": np.array([step])}

    out = []
    with BatchFeed(local_batch, lambda b: b["step"], lambda bs: np.concatenate([b["step"] for b in bs]),
                   call_end, start, total, block) as feed:
        end = start
        while end < total:
            end, arrays = feed.take()
            out.append((end, arrays))
    return out


def test_blocks_put_each_step_in_its_slot_from_a_resume_point_to_a_partial_end():
    transfers = _transfers(start=5, total=21, block=8)
    assert [end for end, _ in transfers] == [8, 16, 21]
    fed = {}
    begin = 5
    for end, slots in transfers:
        assert len(slots) == 8
        for step in range(begin, end):
            fed[step] = slots[step % 8]
        begin = end
    assert fed == {s: s for s in range(5, 21)}


def test_without_blocks_each_transfer_is_one_host_call():
    assert [(end, list(a)) for end, a in _transfers(0, 3, block=1)] == [(1, [0]), (2, [1]), (3, [2])]
    stacked = _transfers(0, 7, block=1, call_end=lambda s: min(s + 3, 7))
    assert [(end, list(a)) for end, a in stacked] == [(3, [0, 1, 2]), (6, [3, 4, 5]), (7, [6])]


def test_a_read_error_reaches_the_loop():
    def broken(step):
        raise OSError(f"cannot read step {step}")

    with pytest.raises(OSError, match="cannot read step 0"):
        with BatchFeed(broken, None, None, lambda s: s + 1, 0, 4, 1) as feed:
            feed.take()


def _config(*overrides):
    return apply_overrides(get_preset("digits-mlp-tiny"), list(overrides))


def test_blocks_are_capped_in_bytes():
    row = {"input": np.zeros((1, DEVICE_PREFETCH_BYTES // 32), np.uint8)}  # 32 rows fill a block
    assert prefetch_block(_config("data.batch_size=8", "data.device_prefetch=8"), row) == 4
    assert prefetch_block(_config("data.batch_size=8", "data.device_prefetch=2"), row) == 2
    assert prefetch_block(_config("data.batch_size=64", "data.device_prefetch=8"), row) == 1
    assert prefetch_block(_config("data.batch_size=8", "steps_per_call=4"), row) == 1
