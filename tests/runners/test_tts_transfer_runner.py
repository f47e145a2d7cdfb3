"""``jaxcompress run tts-transfer``: settings, summaries, correlations, report and plot (synthetic rows)."""

import numpy as np
import pytest
from scipy.stats import pearsonr

from jaxcompress.configlib import apply_overrides, validate
from jaxcompress.errors import UserError
from jaxcompress.runners import tts_transfer
from jaxcompress.runners.tts_transfer_report import plot, report


def test_settings_are_checked():
    validate(tts_transfer.TTSTransferSettings())
    validate(tts_transfer.quick_settings())
    with pytest.raises(UserError, match=r"setting 'targets' 'de' is not available; allowed: en \(English\)"):
        validate(apply_overrides(tts_transfer.TTSTransferSettings(), ["targets=bg,de"]))


def _rows():
    rows = []
    aspf = {"en": 0.3, "ru": 0.5, "ja": 0.2}
    for target in ("bg", "ka"):
        rows.append({"source": None, "target": target, "scheme": "scratch", "seed": 0, "mcd": 12.0, "cer": 0.9})
        for source, a in aspf.items():
            for scheme, offset in (("nomap", 1.0), ("map", 0.5), ("features", 0.0)):
                for seed in range(2):
                    rows.append({"source": source, "target": target, "scheme": scheme, "seed": seed,
                                 "mcd": 10.0 + offset - 4 * a + 0.1 * seed, "cer": 0.5 + 0.1 * offset - a / 2,
                                 "aspf": a, "aspf_text": a + 0.1, "family_distance": {"en": 9, "ru": 5, "ja": 9}[source]})
    return rows


def test_summary_means_over_seeds_and_wins():
    settings = tts_transfer.TTSTransferSettings(sources=("en", "ru", "ja"), targets=("bg", "ka"), seeds=2)
    summary = tts_transfer.summarise(_rows(), settings)
    pair = next(p for p in summary["pairs"] if (p["source"], p["target"], p["scheme"]) == ("en", "bg", "map"))
    assert pair["mcd"] == pytest.approx(10.0 + 0.5 - 1.2 + 0.05) and pair["mcd_std"] == pytest.approx(0.05)
    assert summary["schemes"]["features"]["mcd"] < summary["schemes"]["map"]["mcd"] < summary["schemes"]["nomap"]["mcd"]
    assert summary["wins"]["features<nomap (mcd)"] == "6/6"
    assert summary["schemes"]["scratch"]["pairs"] == 2


def test_correlations_match_scipy_over_pairs():
    corr = tts_transfer.correlations(_rows())
    x = np.array([0.3, 0.5, 0.2, 0.3, 0.5, 0.2])
    y = 10.0 + 1.0 - 4 * x + 0.05
    assert corr["nomap"]["aspf~mcd"]["pearson"] == pytest.approx(pearsonr(x, y)[0])
    assert corr["nomap"]["aspf~mcd"]["n"] == 6
    assert corr["nomap"]["aspf~mcd"]["pearson"] == pytest.approx(-1.0)


def test_report_and_plot(tmp_path):
    rows = _rows()
    settings = tts_transfer.TTSTransferSettings(sources=("en", "ru", "ja"), targets=("bg", "ka"), seeds=2)
    base = {"mean_mel": {"mcd": 14.0, "cer": 0.95}, "phone_mean_mel": {"mcd": 11.0, "cer": 0.8},
            "references": {"mcd": 0.0, "cer": 0.1}}
    results = {"settings": vars(settings), "rows": rows, "baselines": {"bg": base, "ka": base},
               "summary": tts_transfer.summarise(rows, settings), "correlations": tts_transfer.correlations(rows),
               "phonology": {"aspf_text": {"en": {"bg": 0.4, "ka": 0.3}}, "family_distance": {"en": {"bg": 9, "ka": 8}},
                             "pairs": {"en-bg": {"aspf": 0.3, "aspf_text": 0.4, "family_distance": 9,
                                                 "unseen_phones": 5, "target_phones": 30}}},
               "wall_time_s": 1.0}
    text = report(results)
    assert "| en | bg | map |" in text and "features < map < nomap" in text and "phone_mean_mel" in text
    plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    from jaxcompress.runners import RunRequest, run_experiment

    results = run_experiment("tts-transfer", RunRequest(out=tmp_path, quick=True, quiet=True,
                                                        overrides=("pretrain_steps=4", "finetune_steps=2",
                                                                   "recognizer_steps=2", "sources=ru")))
    assert {r["scheme"] for r in results["rows"]} == {"scratch", "nomap", "map", "features"}
    assert (tmp_path / "report.md").is_file() and (tmp_path / "samples" / "ru-bg-map-0.wav").is_file()
