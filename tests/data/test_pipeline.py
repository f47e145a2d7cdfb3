"""Deterministic batches: stream order, host slices, per-host reads and exact evaluation."""

import numpy as np
import pytest

from jaxcompress import data
from jaxcompress.errors import DataError


def reference_indices(step, global_batch, num_examples, seed):
    """Slow reference: walk the stream position by position."""
    out = []
    for position in range(step * global_batch, (step + 1) * global_batch):
        epoch, offset = divmod(position, num_examples)
        order = np.random.default_rng([seed, epoch]).permutation(num_examples)
        out.append(int(order[offset]))
    return out


class SpySource:
    """A Source whose record i is {"x": 10 * i, "pair": [i, -i]}; it logs every read."""

    def __init__(self, num_examples):
        self.num_examples = num_examples
        self.reads = []
        self.features = {"x": ((), np.dtype(np.int64)), "pair": ((2,), np.dtype(np.float32))}

    def __len__(self):
        return self.num_examples

    def read(self, indices):
        indices = np.asarray(indices, np.int64)
        assert indices.ndim == 1 and np.all((indices >= 0) & (indices < self.num_examples))
        self.reads.append(indices.copy())
        return {"x": 10 * indices, "pair": np.stack([indices, -indices], -1).astype(np.float32).reshape(-1, 2)}


@pytest.mark.parametrize("global_batch,num_examples,seed", [(3, 10, 0), (7, 10, 5), (10, 10, 1), (25, 10, 2),
                                                            (4, 1, 0)])
def test_matches_slow_reference(global_batch, num_examples, seed):
    for step in range(12):
        got = data.global_batch_indices(step, global_batch, num_examples, seed)
        assert got.dtype == np.int64 and got.shape == (global_batch,)
        assert got.tolist() == reference_indices(step, global_batch, num_examples, seed)


def test_deterministic_and_seed_dependent():
    a = data.global_batch_indices(123, 16, 1000, seed=7)
    b = data.global_batch_indices(123, 16, 1000, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, data.global_batch_indices(123, 16, 1000, seed=8))
    assert not np.array_equal(a, data.global_batch_indices(124, 16, 1000, seed=7))
    a.fill(0)  # Callers may scribble on the result without corrupting later steps.
    np.testing.assert_array_equal(data.global_batch_indices(123, 16, 1000, seed=7), b)


@pytest.mark.parametrize("global_batch,num_examples", [(10, 40), (7, 21), (37, 37)])
def test_each_example_once_per_epoch(global_batch, num_examples):
    steps_per_epoch = num_examples // global_batch
    epochs = [np.concatenate([data.global_batch_indices(s, global_batch, num_examples, 3)
                              for s in range(e * steps_per_epoch, (e + 1) * steps_per_epoch)])
              for e in range(3)]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(num_examples))
    assert not np.array_equal(epochs[0], epochs[1])  # A fresh order every epoch.


def test_huge_step_does_not_overflow():
    got = data.global_batch_indices(10**15, 8, 1000, 0)
    assert got.tolist() == reference_indices(10**15, 8, 1000, 0)


@pytest.mark.parametrize("process_count", [2, 4])
def test_host_slices_concatenate_to_global_batch(process_count):
    indices = data.global_batch_indices(5, 16, 100, 0)
    parts = [data.host_slice(indices, k, process_count) for k in range(process_count)]
    assert all(len(p) == 16 // process_count for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), indices)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_train_batch_reads_only_this_hosts_records(process_count):
    global_indices = data.global_batch_indices(9, 8, 13, 4)  # Straddles an epoch boundary.
    seen = []
    for k in range(process_count):
        spy = SpySource(13)
        batch = data.train_batch(spy, 9, 8, 4, process_index=k, process_count=process_count)
        expected = data.host_slice(global_indices, k, process_count)
        assert len(spy.reads) == 1
        np.testing.assert_array_equal(spy.reads[0], expected)
        np.testing.assert_array_equal(batch["x"], 10 * expected)
        seen.append(batch["x"] // 10)
    np.testing.assert_array_equal(np.concatenate(seen), global_indices)


@pytest.mark.parametrize("num_examples,global_batch,process_count", [(23, 8, 2), (9, 8, 4), (16, 8, 1), (3, 12, 4)])
def test_eval_batches_cover_each_example_once(num_examples, global_batch, process_count):
    local = global_batch // process_count
    per_host = []
    for k in range(process_count):
        spy = SpySource(num_examples)
        batches = list(data.eval_batches(spy, global_batch, k, process_count))
        assert all(b["x"].shape == (local,) and b["pair"].shape == (local, 2) for b in batches)
        assert all(b["weight"].dtype == np.float32 and b["weight"].shape == (local,) for b in batches)
        assert max((len(r) for r in spy.reads), default=0) <= local
        per_host.append(batches)
    assert len({len(b) for b in per_host}) == 1  # Same number of batches on every host.
    assert len(per_host[0]) == -(-num_examples // global_batch)
    real, padding = [], 0
    for step_batches in zip(*per_host):
        weights = np.concatenate([b["weight"] for b in step_batches])
        xs = np.concatenate([b["x"] for b in step_batches])
        assert set(weights.tolist()) <= {0.0, 1.0}
        real.extend((xs[weights == 1] // 10).tolist())
        padding += int((weights == 0).sum())
        assert np.all(xs[weights == 0] == 0)
    assert real == list(range(num_examples))  # In order, each exactly once.
    assert padding == len(per_host[0]) * global_batch - num_examples


def test_eval_batches_on_digits(prepared_digits_dir):
    source = data.load_split("digits", "validation", prepared_digits_dir)
    batches = list(data.eval_batches(source, 100))
    assert len(batches) == 3 and sum(b["weight"].sum() for b in batches) == 269
    assert batches[-1]["image"].shape == (100, 8, 8, 1)
    np.testing.assert_array_equal(batches[0]["label"], source.read(np.arange(100))["label"])
    np.testing.assert_array_equal(batches[-1]["image"][69:], 0)


def test_bad_arguments_raise_data_error():
    with pytest.raises(DataError, match="divisible"):
        data.host_slice(np.arange(10), 0, 4)
    with pytest.raises(DataError, match="process_index"):
        data.host_slice(np.arange(8), 4, 4)
    with pytest.raises(DataError, match="divisible"):
        data.eval_batches(SpySource(10), 6, 0, 4)  # At call time, not at the first next().
    with pytest.raises(DataError, match="divisible"):
        data.train_batch(SpySource(10), 0, 6, 0, 1, 4)
    for args, field in [((-1, 4, 10, 0), "step"), ((0, 0, 10, 0), "global_batch"),
                        ((0, 4, 0, 0), "num_examples"), ((0, 4, 10, -3), "seed"), ((0.5, 4, 10, 0), "step")]:
        with pytest.raises(DataError, match=field):
            data.global_batch_indices(*args)
