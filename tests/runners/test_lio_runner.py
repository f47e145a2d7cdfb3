"""The lio runner: plans, baselines, same-class test groups, summaries and the report; the quick run (slow)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxcompress.runners import lio


def test_plans_cover_the_ablation_and_three_seeds():
    plan = lio.make_plan(quick=False)
    assert set(plan.variants) == set(lio.VARIANTS) and len(plan.seeds) == 3
    assert set(plan.datasets) == {"part_shapes", "cluttered_digits"}
    quick = lio.make_plan(quick=True)
    assert {"plain", "lio"} <= set(quick.variants) and len(quick.seeds) == 1
    assert lio.variant_model("scl").oel_weight == 0 and not lio.variant_model("scl").scl_use_mask
    assert lio.variant_model("lio_reference").grouping == "reference"


def test_same_class_groups_and_baselines():
    labels = np.repeat(np.arange(3), 4)
    groups = lio.same_class_groups(labels, 3)
    assert groups.shape == (12, 3)
    np.testing.assert_array_equal(groups[:, 0], np.arange(12))
    assert np.all(labels[groups] == labels[:, None])
    assert all(len(set(g.tolist())) == 3 for g in groups)
    rng = np.random.default_rng(0)
    train = {"image": rng.normal(size=(40, 4, 4, 1)), "label": np.r_[np.zeros(25, int), np.ones(15, int)]}
    train["image"][train["label"] == 1] += 2.0  # separable: the pixel probe must beat the majority class
    test = {"image": train["image"][::2], "label": train["label"][::2]}
    base = lio.baselines(train, test)
    assert base["majority"] == pytest.approx(np.mean(test["label"] == 0))
    assert base["logistic_pixels"] == 1.0


def _score(seed, acc):
    loc = {"iou": 0.4 + seed / 100, "pointing": 0.8}
    return {"seed": seed, "accuracy": acc, "loc_mask": loc, "loc_target": loc, "loc_energy": loc,
            "loc_chance_iou": 0.12, "grid": 6, "train_seconds": 3.0,
            "inference": {"same_tree": True, "flops_inference": 10.0, "flops_plain": 10.0, "deployed_params": 5,
                          "training_params": 7}}


def test_summary_and_report():
    row = lio.summarise("part_shapes", "lio", "cnn", 100, [_score(0, 0.5), _score(1, 0.7)])
    assert row["accuracy"]["mean"] == pytest.approx(0.6) and row["accuracy"]["std"] == pytest.approx(0.1)
    assert row["loc_mask"]["iou"]["mean"] == pytest.approx(0.405)
    results = {"seeds": [0, 1], "steps": 100, "batch_anchors": 16, "positives": 2, "devices": 1,
               "wall_time_s": 1.0, "quick": False, "rows": [row],
               "baselines": {"part_shapes": {"majority": 0.083, "logistic_pixels": 0.1}}}
    text = lio.report_markdown(results)
    assert "| part_shapes | cnn | lio | 100 | 0.600 ± 0.100 |" in text
    assert "majority class" in text and "logistic regression" in text and "same tree True" in text


@pytest.mark.slow
def test_quick_run_writes_the_report(tmp_path):
    out = tmp_path / "lio"
    proc = subprocess.run([sys.executable, "-m", "jaxcompress", "run", "lio", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert all(r["inference"]["same_tree"] for r in results["rows"])
    assert all(r["inference"]["flops_inference"] == r["inference"]["flops_plain"] for r in results["rows"])
    for name in ("report.md", "lio_accuracy.png", "lio_masks.png"):
        assert (out / name).is_file()


def test_a_finished_run_is_reused_only_with_the_same_config(tmp_path):
    from jaxcompress.configlib import to_dict
    from jaxcompress.configs.lio import lio_config

    config = lio_config("x", "part_shapes", lio.variant_model("lio"), steps=10)
    (tmp_path / "score.json").write_text(json.dumps({"config": to_dict(config), "score": {"accuracy": 0.5}}))
    np.savez(tmp_path / "maps.npz", mask=np.ones((2, 4)))
    again = lio._load_finished(tmp_path, lio_config("x", "part_shapes", lio.variant_model("lio"), steps=10))
    assert again["accuracy"] == 0.5 and again["_maps"]["mask"].shape == (2, 4)
    assert lio._load_finished(tmp_path, lio_config("x", "part_shapes", lio.variant_model("lio"), steps=11)) is None
    assert lio._load_finished(tmp_path / "missing", config) is None
