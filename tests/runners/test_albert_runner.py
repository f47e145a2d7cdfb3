"""``jaxcompress run albert``: its statistics and report against hand computations, and (slow) the quick run."""

import collections
import json
import math

import numpy as np
import pytest

from jaxcompress.runners import albert
from jaxcompress.train.metrics import read_metrics


def test_unigram_cross_entropy_matches_a_counting_loop():
    rng = np.random.default_rng(0)
    vocab = 12
    train = rng.integers(0, 8, size=500)  # ids 8..11 never seen: add-one smoothing keeps them finite
    evaluation = rng.integers(0, vocab, size=200)
    counts = collections.Counter(train.tolist())
    total = len(train) + vocab
    expected = -sum(math.log((counts[i] + 1) / total) for i in evaluation.tolist()) / len(evaluation)
    assert albert.unigram_cross_entropy(train, evaluation, vocab) == pytest.approx(expected, rel=1e-12)
    # A uniform train distribution gives log(vocab) whatever is evaluated.
    assert albert.unigram_cross_entropy(np.arange(vocab), evaluation, vocab) == pytest.approx(math.log(vocab))


def test_binomial_z_against_the_normal_approximation():
    se, z = albert._binomial_z(0.6, 400, 0.5)
    assert se == pytest.approx(0.025)  # sqrt(0.25 / 400)
    assert z == pytest.approx(4.0)
    se, z = albert._binomial_z(0.25, 100, 0.25)
    assert se == pytest.approx(math.sqrt(0.25 * 0.75 / 100)) and z == 0.0


def test_records_are_filtered_by_split(tmp_path):
    rows = [{"step": 10, "split": "train", "mlm_loss": 9.0}, {"step": 10, "split": "eval", "mlm_loss": 8.5},
            {"step": 20, "split": "train", "mlm_loss": 7.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    assert [r["mlm_loss"] for r in read_metrics(tmp_path, "train")] == [9.0, 7.0]
    assert [r["step"] for r in read_metrics(tmp_path, "eval")] == [10]


def _results():
    pre = {"steps": 300, "train_mlm_loss_first": 8.987, "train_mlm_loss_last": 5.4321, "wall_time_s": 250.2,
           "num_params": 326754, "unigram_baseline": 6.6049, "eval_examples": 541, "sop_accuracy_se": 0.0216,
           "sop_z_vs_chance": 3.5, "eval": {"mlm_loss": 5.5012, "mlm_accuracy": 0.2123, "sop_accuracy": 0.5753}}
    fine = [{"task": "topic", "init": init, "accuracy": acc, "accuracy_se": 0.022, "chance": 0.191,
             "eval_examples": 325} for init, acc in (("pretrained", 0.4501), ("scratch", 0.3012))]
    return {"pretraining": pre, "finetuning": fine, "quick": False}


def test_report_carries_the_numbers():
    results = _results()
    report = albert._report(results)
    assert "300 steps" in report and "326,754 parameters" in report
    assert "8.987 -> 5.432" in report and "baseline 6.605" in report
    assert "SOP accuracy 0.575 +- 0.022 over 541 pairs (z = 3.5" in report
    rows = [line for line in report.splitlines() if line.startswith("| topic")]
    assert rows == ["| topic | pretrained | 0.450 | 0.022 | 0.191 | 325 |",
                    "| topic | scratch | 0.301 | 0.022 | 0.191 | 325 |"]
    results["finetuning"].append({"task": "topic", "init": "bag-of-words baseline", "accuracy": 0.7631,
                                  "accuracy_se": 0.022, "chance": 0.191, "eval_examples": 325, "recipe": "TF-IDF"})
    report = albert._report(results)
    assert "| topic | bag-of-words baseline | 0.763 | 0.022 | 0.191 | 325 |" in report
    assert "Bag-of-words baseline: TF-IDF." in report


def test_the_experiment_is_registered():
    from jaxcompress.runners import _EXPERIMENTS

    assert _EXPERIMENTS["albert"].run is albert.run


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    """About three minutes on two CPU cores: pretraining, four fine-tuning runs, report and plot."""
    from jaxcompress.runners import RunRequest

    results = albert.run(RunRequest(out=tmp_path, quick=True, overrides=(), quiet=True))
    pre = results["pretraining"]
    assert pre["train_mlm_loss_last"] < pre["train_mlm_loss_first"] - 0.5
    assert 0.0 <= pre["eval"]["sop_accuracy"] <= 1.0
    assert math.log(8000) > pre["unigram_baseline"] > 3.0
    assert [(row["task"], row["init"]) for row in results["finetuning"]] == [
        ("topic", "pretrained"), ("topic", "scratch"), ("pair", "pretrained"), ("pair", "scratch"),
        ("topic", "bag-of-words baseline")]
    assert results["finetuning"][-1]["accuracy"] > 0.7
    assert json.loads((tmp_path / "results.json").read_text())["quick"] is True
    assert (tmp_path / "report.md").read_text().startswith("# ALBERT-tiny")
    assert (tmp_path / "albert.png").stat().st_size > 10_000
