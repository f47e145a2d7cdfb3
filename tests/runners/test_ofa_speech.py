"""``jaxcompress run ofa-speech``: settings, per-row measurements, adaptive summary, report and plot."""

import json

import numpy as np
import pytest

from jaxcompress.configlib import apply_overrides, validate
from jaxcompress.errors import ConfigError
from jaxcompress.nn.speech import SpeechEncoderConfig
from jaxcompress.runners import ofa_speech
from jaxcompress.ssl import ofa_eval


def test_settings_are_checked():
    validate(ofa_speech.OFASpeechSettings())
    validate(ofa_speech.quick_settings())
    with pytest.raises(ConfigError, match="unknown target"):
        validate(apply_overrides(ofa_speech.OFASpeechSettings(), ["targets=keyword,emotion"]))
    with pytest.raises(ConfigError, match=r"lambdas in \[0, 1\]"):
        validate(apply_overrides(ofa_speech.OFASpeechSettings(), ["grid=0.0,1.5"]))
    with pytest.raises(ConfigError, match="penalties"):
        validate(apply_overrides(ofa_speech.OFASpeechSettings(), ["penalties=-1.0"]))


def test_grid_row_measures_frame_period_and_cost():
    cfg = SpeechEncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    frames50 = np.array([40, 60])
    halved = ofa_eval.Encoded(np.zeros((2, 1, 32)), np.ones((2, 1), bool), np.zeros(2, np.int32),
                              frames50 // 2, frames50, np.array([5.0, 7.0]))
    fit = {"test": 0.5, "validation": 0.6, "best_step": 10}
    row = ofa_speech._grid_row("ofa", "speaker", 0.5, fit, halved, cfg, 1.0)
    assert row["frame_period_ms"] == pytest.approx(40.0)
    assert row["mean_frames"] == 25.0 and row["mean_frames_50hz"] == 50.0
    assert row["mean_alpha"] == pytest.approx(12.0 / 100.0)
    # half the frames: linear terms halve, the attention term quarters
    assert 0.25 < row["relative_flops"] < 0.5
    same = ofa_eval.Encoded(halved.hidden, halved.mask, halved.labels, frames50, frames50, halved.alpha_sum)
    assert ofa_speech._grid_row("ofa", "speaker", 0.0, fit, same, cfg, 1.0)["relative_flops"] == 1.0


def _adaptive_runs():
    runs = []
    for target, lams in (("keyword", [0.9, 0.7]), ("digits", [0.2, 0.4])):
        for seed, lam in enumerate(lams):
            runs.append({"target": target, "penalty": 0.0, "seed": seed, "lambda": lam,
                         "metric": "accuracy" if target == "keyword" else "error_rate",
                         "frame_period_ms": 20.0 / (1 - 0.7 * lam), "test": 0.5 + 0.1 * seed})
    return runs


def test_adaptive_summary_is_mean_and_std_over_seeds():
    summary = {s["target"]: s for s in ofa_speech._summarise_adaptive(_adaptive_runs())}
    assert summary["keyword"]["seeds"] == 2
    assert summary["keyword"]["lambda"] == pytest.approx(0.8)
    assert summary["keyword"]["lambda_std"] == pytest.approx(0.1)
    fps = [20.0 / (1 - 0.7 * 0.2), 20.0 / (1 - 0.7 * 0.4)]
    assert summary["digits"]["frame_period_ms"] == pytest.approx(np.mean(fps))
    assert summary["digits"]["frame_period_ms_std"] == pytest.approx(np.std(fps))
    assert summary["digits"]["test"] == pytest.approx(0.55)


def test_report_and_plot_from_results(tmp_path):
    settings = ofa_speech.OFASpeechSettings(targets=("keyword", "digits"), grid=(0.0, 1.0), fixed_lambdas=(1.0,))
    grid = []
    for target, metric in (("keyword", "accuracy"), ("digits", "error_rate")):
        for encoder, lam, fp in (("ofa", 0.0, 20.0), ("ofa", 1.0, 60.0), ("fixed-1", 1.0, 58.0)):
            grid.append({"encoder": encoder, "target": target, "metric": metric, "lambda": lam, "test": 0.9,
                         "validation": 0.8, "frame_period_ms": fp, "mean_frames": 100 / fp,
                         "relative_flops": 20 / fp})
    runs = _adaptive_runs()
    results = {"grid": grid, "adaptive": runs, "adaptive_summary": ofa_speech._summarise_adaptive(runs),
               "wall_time_s": 12.0}
    report = ofa_speech._report(settings, results)
    assert "## keyword (accuracy)" in report and "## digits (error_rate)" in report
    assert "| fixed-1 | 1.00 | 58.0 | 1.7 | 0.34 | 90.0% | 80.0% |" in report
    assert "| keyword | 0 | 2 | 0.800 +- 0.100 |" in report
    path = tmp_path / "plot.png"
    ofa_speech._plot(settings, results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    from jaxcompress.runners import RunRequest

    out = tmp_path / "out"
    results = ofa_speech.run(RunRequest(out=out, quick=True, overrides=(), quiet=True))
    saved = json.loads((out / "results.json").read_text())
    assert saved["grid"] == json.loads(json.dumps(results["grid"]))
    settings = ofa_speech.quick_settings()
    keys = {(r["encoder"], r["target"], r["lambda"]) for r in results["grid"]}
    assert keys == {(e, t, lam) for t in settings.targets
                    for e, lams in [("ofa", settings.grid)] + [(f"fixed-{v:g}", (v,)) for v in settings.fixed_lambdas]
                    for lam in lams}
    for target in settings.targets:
        ofa = sorted((r for r in results["grid"] if r["encoder"] == "ofa" and r["target"] == target),
                     key=lambda r: r["lambda"])
        assert ofa[0]["frame_period_ms"] == 20.0 and ofa[0]["relative_flops"] == 1.0
        assert ofa[-1]["frame_period_ms"] > 20.0 and ofa[-1]["relative_flops"] < 1.0
    assert len(results["adaptive"]) == len(settings.adaptive_targets) * settings.adaptive_seeds
    assert all(0.0 < a["lambda"] < 1.0 for a in results["adaptive"])
    assert "| ofa | 0.00 | 20.0 |" in (out / "report.md").read_text()
    assert (out / "score_vs_frame_period.png").stat().st_size > 1000
