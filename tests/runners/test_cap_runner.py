"""``jaxcompress run cap``: the grid, the seed statistics and the trend verdict (fast), bad settings."""

import math

import numpy as np
import pytest

from jaxcompress.errors import ConfigError
from jaxcompress.runners.cap import QUICK, aggregate, learned_nothing, run_cap_experiment, runs, settings_for, trend


def test_grid_holds_every_cell_and_the_ablation():
    cfg = settings_for()
    grid = runs(cfg)
    # 2 tasks x 2 pruners x 4 sparsities x (KD, CAP) x 3 seeds, plus 3 ablations x 3 seeds per task.
    assert len(grid) == 2 * 2 * 4 * 2 * 3 + 2 * 3 * 3
    assert {r["variant"] for r in grid} == {"kd", "cap", "cap-no-PrC", "cap-no-SnC", "cap-no-FiC"}
    assert {r["sparsity"] for r in grid if r["variant"].startswith("cap-no")} == {0.9}
    quick = runs(settings_for(quick=True))
    assert len(quick) == len(QUICK["sparsities"]) * 2 and all(r["variant"] in ("kd", "cap") for r in quick)


def _rows(gains_by_sparsity, seeds=3):
    rng = np.random.default_rng(0)
    rows = []
    for sparsity, gain in gains_by_sparsity.items():
        for seed in range(seeds):
            base = 0.6 - sparsity / 4 + rng.normal(0, 0.01)
            rows.append(dict(task="topic", pruner="movement", variant="kd", sparsity=sparsity, seed=seed,
                             accuracy=base, measured_sparsity=sparsity))
            rows.append(dict(task="topic", pruner="movement", variant="cap", sparsity=sparsity, seed=seed,
                             accuracy=base + gain + 0.001 * seed, measured_sparsity=sparsity))
    return rows


def test_gain_is_paired_by_seed_and_its_growth_judged_against_noise():
    rows = _rows({0.5: 0.0, 0.9: 0.2})
    agg = aggregate(rows)
    cap90 = [c for c in agg["table"] if c["variant"] == "cap" and c["sparsity"] == 0.9][0]
    accs = [r["accuracy"] for r in rows if r["variant"] == "cap" and r["sparsity"] == 0.9]
    assert cap90["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert cap90["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    gain90 = [g for g in agg["gains"] if g["sparsity"] == 0.9][0]["gain"]
    assert gain90["mean"] == pytest.approx(0.201) and gain90["std"] == pytest.approx(0.001)
    (verdict,) = trend(agg["gains"], {"topic": 300})
    assert verdict["growth"] == pytest.approx(0.2) and verdict["verdict"] == "grows"
    # A growth of 0.02 on 300 examples is inside the binomial noise of the differences.
    (flat,) = trend(aggregate(_rows({0.5: 0.0, 0.9: 0.02}))["gains"], {"topic": 300})
    assert flat["verdict"] == "within noise" and flat["growth_se"] > 0.02 / 2
    assert math.isclose(flat["growth_se"], math.hypot(*[math.sqrt(0.5 / 300) / math.sqrt(3)] * 2))


def test_unknown_task_is_refused_before_any_work(tmp_path):
    cfg = settings_for(overrides=["tasks=topic,sst2"])
    with pytest.raises(ConfigError, match="tasks must be among topic, pair"):
        run_cap_experiment(cfg, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_a_teacher_within_one_standard_error_of_the_majority_rate_learned_nothing():
    # Majority 0.593 on 290 examples: one binomial standard error is 0.0288.
    assert learned_nothing(0.414, 0.593, 290) and learned_nothing(0.62, 0.593, 290)
    assert not learned_nothing(0.63, 0.593, 290) and not learned_nothing(0.714, 0.191, 325)
