"""The runners' shared helpers: grid runs fanned out to processes come back whole and indexed."""

import os

import pytest

from jaxcompress.runners.workspace import finished, map_in_processes


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_one_worker_runs_in_order_in_this_process():
    out = list(map_in_processes(_square_and_pid, [3, 1, 2], workers=1))
    assert [i for i, _ in out] == [0, 1, 2]
    assert [v for _, (v, _) in out] == [9, 1, 4]
    assert {pid for _, (_, pid) in out} == {os.getpid()}


def test_two_workers_return_every_item_at_its_index_from_other_processes():
    items = list(range(6))
    out = dict(map_in_processes(_square_and_pid, items, workers=2))
    assert sorted(out) == items
    assert [out[i][0] for i in items] == [i * i for i in items]
    assert os.getpid() not in {pid for _, pid in out.values()}


def _fail(x: int) -> int:
    raise ValueError(f"bad item {x}")


def test_a_failing_item_raises_in_the_caller():
    with pytest.raises(ValueError, match="bad item"):
        list(map_in_processes(_fail, [1, 2], workers=2))


def test_finished_reads_a_summary_only_once_written(tmp_path):
    assert finished(tmp_path / "summary.json") is None
    (tmp_path / "summary.json").write_text('{"final_step": 3}')
    assert finished(tmp_path / "summary.json") == {"final_step": 3}
