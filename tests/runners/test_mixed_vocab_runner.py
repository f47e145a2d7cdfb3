"""``jaxcompress run mixed-vocab``: compression ratios, the largest ratio at 90% of the teacher, bad settings."""

import pytest

from jaxcompress.errors import ConfigError
from jaxcompress.runners.mixed_vocab import QUICK, largest_ratio, run_mixed_vocab_experiment, settings_for, with_ratios


def _row(size, variant, accuracy, f32, int8, task="topic"):
    return {"task": task, "size": size, "variant": variant, "accuracy": accuracy, "float32_bytes": f32,
            "int8_bytes": int8}


def test_ratios_and_the_largest_ratio_keeping_ninety_percent():
    teacher = _row("teacher", "teacher", 0.80, 8000, 2000)
    rows = with_ratios([teacher, _row("2x48", "mixed", 0.70, 400, 100), _row("4x96", "mixed", 0.75, 1000, 250),
                        _row("2x48", "kd", 0.71, 1600, 400), _row("2x48", "scratch", 0.50, 400, 100)],
                       {"topic": teacher})
    by = {(r["size"], r["variant"]): r for r in rows}
    assert by[("2x48", "mixed")]["ratio"] == 20 and by[("2x48", "mixed")]["ratio_int8"] == 80
    assert by[("2x48", "mixed")]["kept"] == pytest.approx(0.875)
    best = largest_ratio(rows)
    # 2x48 keeps only 87.5% of the teacher; 4x96 (93.75%) is the largest ratio that keeps 90%.
    assert best["topic"]["mixed"] == {"ratio": 8.0, "size": "4x96", "ratio_int8": 32.0, "size_int8": "4x96"}
    assert best["topic"]["kd"]["size"] is None and best["topic"]["scratch"]["ratio"] is None
    assert "teacher" not in best["topic"]
    # The int8 ratio is judged on the int8 model's own accuracy: 2x48 keeps 90% once stored as int8 here.
    rows = with_ratios([teacher, {**_row("2x48", "mixed", 0.70, 400, 100), "int8_accuracy": 0.73}], {"topic": teacher})
    assert largest_ratio(rows)["topic"]["mixed"] == {"ratio": None, "size": None, "ratio_int8": 80.0,
                                                     "size_int8": "2x48"}


def test_quick_settings_and_bad_settings(tmp_path):
    cfg = settings_for(quick=True)
    assert cfg.students == QUICK["students"] and cfg.tasks == ("topic",)
    with pytest.raises(ConfigError, match="tasks"):
        run_mixed_vocab_experiment(settings_for(overrides=["tasks=[sst2]"]), tmp_path / "a", quiet=True)
    with pytest.raises(ConfigError, match="LAYERSxWIDTH"):
        run_mixed_vocab_experiment(settings_for(overrides=["students=[big]"]), tmp_path / "b", quiet=True)
    with pytest.raises(ConfigError, match="variants must be among scratch, logit-kd, kd, mixed; got 'fancy'"):
        run_mixed_vocab_experiment(settings_for(overrides=["variants=[kd,fancy]"]), tmp_path / "c", quiet=True)
    assert not any((tmp_path / name).exists() for name in "abc")


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    results = run_mixed_vocab_experiment(settings_for(quick=True), tmp_path, quiet=True, quick=True)
    variants = {r["variant"] for r in results["rows"]}
    assert variants == {"teacher", "scratch", "kd", "mixed"}
    for name in ("results.json", "report.md", "accuracy_vs_compression.png"):
        assert (tmp_path / name).is_file()
    mixed = next(r for r in results["rows"] if r["variant"] == "mixed")
    kd = next(r for r in results["rows"] if r["variant"] == "kd")
    assert mixed["word_embedding_params"] < kd["word_embedding_params"]
