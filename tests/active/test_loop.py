"""The active-learning loop: selections, resuming, and surviving a SIGKILL in the middle of a cycle."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxcompress.active.loop import ActiveLoop, LoopSettings
from jaxcompress.errors import ConfigError, UserError

CHILD = pathlib.Path(__file__).with_name("_loop_child.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _child(directory: pathlib.Path, stall: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MTAL_STALL_AT", None)
    if stall is not None:
        env["MTAL_STALL_AT"] = str(stall)
    return subprocess.Popen([sys.executable, str(CHILD), str(directory)], env=env)


def _records(directory: pathlib.Path) -> list[dict]:
    return json.loads((directory / "cycles.json").read_text())["cycles"]


def test_sigkill_mid_cycle_neither_repeats_finished_cycles_nor_loses_selections(tmp_path):
    reference = tmp_path / "reference"
    assert _child(reference).wait(timeout=120) == 0
    killed = tmp_path / "killed"
    proc = _child(killed, stall=2)
    deadline = time.monotonic() + 120
    while not (killed / "stalled").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "child ended before reaching cycle 2"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [r["cycle"] for r in _records(killed)] == [0, 1]  # finished cycles are on disk, whole
    assert _child(killed).wait(timeout=120) == 0
    # cycles 0 and 1 trained once; the interrupted cycle 2 trained again after the restart, then 3 and 4
    assert (killed / "log.txt").read_text().split("\n")[:-1] == [f"train {c}" for c in (0, 1, 2, 2, 3, 4)]
    got, want = _records(killed), _records(reference)
    assert [(r["labelled"], r["selected"]) for r in got] == [(r["labelled"], r["selected"]) for r in want]
    assert [r["metrics"] for r in got] == [r["metrics"] for r in want]
    chosen = [i for r in got for i in r["selected"]]
    assert len(chosen) == len(set(chosen)) == 4 * 5
    assert not set(chosen) & set(got[0]["labelled"])


def test_loop_settings_and_bad_selection(tmp_path):
    with pytest.raises(ConfigError, match="budget"):
        LoopSettings(pool_size=10, initial_size=5, budget=3, cycles=3)
    settings = LoopSettings(pool_size=10, initial_size=2, budget=2, cycles=3, seed=1)
    np.testing.assert_array_equal(settings.initial(), LoopSettings(10, 2, 2, 3, seed=1).initial())
    loop = ActiveLoop(tmp_path, settings)
    with pytest.raises(UserError, match="distinct unlabelled"):
        loop.run(lambda c, rows: rows, lambda m: {}, lambda m, lab, b, rng: np.flatnonzero(lab)[:b])
    records = loop.run(lambda c, rows: rows, lambda m: {"n": len(m)},
                       lambda m, lab, b, rng: np.flatnonzero(~lab)[:b])
    assert [r["labelled_count"] for r in records] == [2, 4, 6] and records[-1]["selected"] == []
    with pytest.raises(UserError, match="other settings|settings"):
        ActiveLoop(tmp_path, LoopSettings(pool_size=10, initial_size=2, budget=2, cycles=4)).finished()
