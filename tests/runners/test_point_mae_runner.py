"""``jaxcompress run point-mae --quick`` end to end with 2-step trainings (slow), and its report pieces (fast).

References: Romanelis et al., "ExpPoint-MAE", IEEE Access 2024.
"""

from __future__ import annotations

import json

import pytest

from jaxcompress.runners import RunRequest, run_experiment


@pytest.mark.slow
def test_quick_run_writes_results_report_and_plots(tmp_path):
    results = run_experiment("point-mae", RunRequest(out=tmp_path, quick=True, quiet=True, overrides=("steps=2",)))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["baselines"]["d2_logistic"] > saved["baselines"]["majority"] + 0.2  # the hand features work
    assert {r["regime"] for r in saved["finetuning"]} >= {"scratch", "full", "probe", "unfreeze"}
    assert set(saved["attention_distance"]) >= {"mae100", "mae25", "moco100", "random"}
    assert "mae100 vs moco100" in saved["cka"]
    for name in ("report.md", "point_mae_accuracy.png", "point_mae_cka.png", "point_mae_attention.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "D2" in (tmp_path / "report.md").read_text() and results["quick"]
    assert not (tmp_path / "runs").exists()  # checkpoints cleaned up
