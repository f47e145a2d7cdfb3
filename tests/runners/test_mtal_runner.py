"""The mtal runner: plans, labels-to-95%, per-pixel prior baseline, summaries and the report; the quick run
(slow) and its resume after a SIGKILL (slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxcompress.active.strategies import STRATEGIES
from jaxcompress.runners import mtal


def test_plans_cover_the_strategies_and_three_seeds():
    plan = mtal.make_plan(quick=False)
    assert set(plan.strategies) <= set(STRATEGIES) and len(plan.seeds) == 3
    assert {"random", "entropy", "coreset", "flip_det", "inconsistency"} == set(plan.strategies)
    assert plan.initial + plan.budget * (plan.cycles - 1) <= plan.pool_size
    quick = mtal.make_plan(quick=True)
    assert {"random", "entropy", "inconsistency"} <= set(quick.strategies)
    assert len(quick.seeds) == 1


def test_labels_to_reach_interpolates_the_first_crossing():
    assert mtal.labels_to_reach([0.1, 0.2, 0.3], [0.5, 0.7, 0.9], 0.8) == pytest.approx(0.25)
    assert mtal.labels_to_reach([0.1, 0.2], [0.9, 0.95], 0.8) == pytest.approx(0.1)
    assert mtal.labels_to_reach([0.1, 0.2], [0.5, 0.6], 0.8) is None


def test_pixel_prior_baseline_hand_case():
    pool = {"segmentation": np.asarray([[[0, 1]], [[0, 2]], [[1, 2]]])}  # 3 images of 1x2 pixels
    test = {"segmentation": np.asarray([[[0, 2]]])}
    # prior: pixel 0 -> class 0 (2 of 3), pixel 1 -> class 2; the test image matches it exactly
    assert mtal.pixel_prior_miou(pool, test, 3) == pytest.approx(1.0)


def _record(cycle, fraction, value):
    return {"cycle": cycle, "labelled_count": int(fraction * 100), "labelled_fraction": fraction,
            "metrics": {m: value for m in mtal.METRICS}}


def test_summary_and_report():
    plan = mtal.make_plan(quick=True)
    curves = {"random": {0: [_record(0, 0.1, 0.2), _record(1, 0.2, 0.4)],
                         1: [_record(0, 0.1, 0.4), _record(1, 0.2, 0.6)]},
              "inconsistency": {}}
    full = {0: {m: 0.5 for m in mtal.METRICS}, 1: {m: 0.5 for m in mtal.METRICS}}
    summary = mtal.summarise(plan, curves, full)
    row = summary["rows"][0]
    assert len(summary["rows"]) == 1 and row["cycles"][1]["mdsq"]["mean"] == pytest.approx(0.5)
    assert row["cycles"][0]["mdsq"]["std"] == pytest.approx(0.1)
    # mean curve 0.3 -> 0.5; 95% of 0.5 = 0.475 is reached at 0.1 + 0.175/0.2 * 0.1
    assert row["fraction_to_95_mdsq"] == pytest.approx(0.1 + 0.875 * 0.1)
    results = {"plan": {**plan.__dict__, "seeds": [0, 1]}, "quick": True, "complete": True, "wall_time_s": 1.0,
               "baselines": {"pixel_prior_miou": 0.3}, "score_error_spearman": {"0": {"entropy": 0.1}}, **summary}
    text = mtal.report_markdown(results)
    assert "| random | 20 (20%) | 0.500 ± 0.100 |" in text and "full pool" in text and "18.8%" in text


@pytest.mark.slow
def test_quick_run_writes_the_report_and_resumes_after_sigkill(tmp_path):
    out = tmp_path / "mtal"
    command = [sys.executable, "-m", "jaxcompress", "run", "mtal", "--quick", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cycles = out / "loops" / "seed0" / "random" / "cycles.json"
    deadline = time.monotonic() + 600
    while not cycles.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = json.loads(cycles.read_text())["cycles"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    after = json.loads(cycles.read_text())["cycles"]
    assert after[:len(before)] == before  # finished cycles kept as they were, selections not lost
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and {r["strategy"] for r in results["rows"]} == set(mtal.make_plan(True).strategies)
    for name in ("report.md", "mtal_curves.png"):
        assert (out / name).is_file()
