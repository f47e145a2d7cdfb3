"""Train-large-then-compress: size grammar, budget checks, claim verdicts, and a tiny end-to-end run."""

import json

import numpy as np
import pytest

from jaxcompress.configs import load_config
from jaxcompress.errors import ConfigError, WorkdirError
from jaxcompress.runners import large_then_compress as ltc


def test_sizes_turn_into_model_overrides():
    assert ltc.model_overrides("bert-4x128") == [
        "model.num_layers=4", "model.hidden_size=128", "model.num_heads=4", "model.intermediate_size=512",
        "model.embedding_size=128", "model.sharing=none", "model.dropout=0.0"]
    assert "model.embedding_size=64" in ltc.model_overrides("albert-4x128")
    assert "model.sharing=all" in ltc.model_overrides("albert-4x128")
    with pytest.raises(ConfigError, match="must look like bert-LAYERSxWIDTH"):
        ltc.model_overrides("gpt-4x128")
    with pytest.raises(ConfigError, match="multiple of 32"):
        ltc.model_overrides("bert-2x50")


def test_budget_too_small_is_refused_before_any_training():
    cfg = ltc.LargeThenCompressConfig(sizes=("bert-2x64",), budget_tflops=1e-6)
    with pytest.raises(ConfigError, match="budget_tflops=1e-06 gives bert-2x64 only 0 steps"):
        ltc.plan(cfg)


def test_a_grid_that_does_not_fit_is_refused_before_any_training(monkeypatch):
    monkeypatch.setattr(ltc, "_memory_bytes", lambda: 2**30)
    with pytest.raises(ConfigError, match="the largest size needs about 7.0 GiB but one device has 1.0 GiB"):
        ltc.plan(ltc.LargeThenCompressConfig(sizes=("bert-2x64", "bert-24x1024"), budget_tflops=1e5))


def test_the_scale_config_loads_and_plans():
    cfg = load_config("experiments/large_then_compress/scale_config.py", expected=ltc.LargeThenCompressConfig)
    rows = {r["size"]: r for r in ltc.plan(cfg)}
    assert 300e6 < rows["bert-24x1024"]["params"] < 340e6  # BERT-large's shape with an 8k vocabulary
    assert rows["bert-6x384"]["steps"] > rows["bert-12x768"]["steps"] > rows["bert-24x1024"]["steps"] >= 200


def test_unwritable_output_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(WorkdirError, match="is not writable"):
        ltc.run_large_then_compress(ltc.LargeThenCompressConfig(), tmp_path / "file" / "out")


def _write_curve(path, losses, per_step_s):
    path.mkdir(parents=True)
    lines = [json.dumps({"step": 10 * (i + 1), "split": "train", "mlm_loss": loss,
                         "elapsed_s": per_step_s * 10 * (i + 1)}) for i, loss in enumerate(losses)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_claim_one_finds_when_each_size_reaches_the_small_models_loss(tmp_path):
    rows = [{"size": "small", "params": 10, "flops_per_step": 1.0},
            {"size": "large", "params": 100, "flops_per_step": 5.0}]
    _write_curve(tmp_path / "pretrain" / "small", [5, 4, 3, 2.5, 2.2, 2.0, 2.0, 2.0], per_step_s=1.0)
    _write_curve(tmp_path / "pretrain" / "large", [4, 2, 1.5, 1.2], per_step_s=6.0)
    one = ltc.claim_one(rows, tmp_path)
    assert one["target_loss"] == pytest.approx(2.0)
    assert one["reach"]["small"]["step"] == 70 and one["reach"]["large"]["step"] == 30
    assert one["supported_steps"] and not one["supported_flops"]  # 30 x 5 > 70 x 1
    assert one["larger_in_less_wall_clock"] == []  # 180 s vs 70 s


def test_claim_two_and_pareto():
    rows = [{"size": "small", "params": 10}, {"size": "large", "params": 100}]

    def report(size, level, nbytes, accuracy):
        return {"size": size, "level": level, "bytes": {"after": nbytes}, "metrics_after": {"accuracy": accuracy}}

    reports = [report("small", "dense", 400, 0.70), report("small", "int8", 100, 0.69),
               report("large", "dense", 4000, 0.80), report("large", "prune 90% + int4", 90, 0.75),
               report("large", "int4", 500, 0.79)]
    two = ltc.claim_two(rows, reports, n_eval=1000)  # SE of each difference ~0.02
    assert two["verdict"] == "supported" and two["supported"]
    assert [c["best_larger_at_most_as_big"]["level"] for c in two["comparisons"]] == ["prune 90% + int4"] * 2
    assert two["comparisons"][0]["difference"] == pytest.approx(0.05)
    assert two["comparisons"][0]["difference_se"] == pytest.approx(
        np.hypot(np.sqrt(0.75 * 0.25 / 1000), np.sqrt(0.7 * 0.3 / 1000)))
    frontier = [(p["size"], p["level"]) for p in two["frontier"]]
    assert frontier == [("large", "prune 90% + int4"), ("large", "int4"), ("large", "dense")]
    # the same gap on 100 examples is noise
    assert ltc.claim_two(rows, reports, n_eval=100)["verdict"] == "not shown"
    reports[3]["metrics_after"]["accuracy"] = 0.5
    assert ltc.claim_two(rows, reports, n_eval=1000)["verdict"] == "contradicted"


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    from jaxcompress.demo import run_demo

    results = run_demo(str(tmp_path), quick=True, quiet=True)
    assert (tmp_path / "report.md").exists() and (tmp_path / "accuracy_vs_size.png").exists()
    assert len(results["compression"]) == len(results["sizes"]) * len(ltc.recipes(ltc.LargeThenCompressConfig(**ltc.QUICK)))
    # The fine-tuned encoders learn the topic: the best one scores well above the majority class (0.19).
    assert results["baseline"]["accuracy"] > 0.7
    assert max(f["eval_metrics"]["accuracy"] for f in results["finetune"].values()) > 0.5


def test_pretraining_learning_rate_shrinks_with_width():
    cfg = ltc.LargeThenCompressConfig()
    assert ltc.pretrain_learning_rate(cfg, "bert-2x64") == cfg.pretrain_learning_rate
    assert ltc.pretrain_learning_rate(cfg, "albert-4x128") == pytest.approx(cfg.pretrain_learning_rate / 2)
    assert ltc.pretrain_learning_rate(cfg, "bert-6x192") == pytest.approx(cfg.pretrain_learning_rate / 3)


def test_the_budget_counts_the_real_train_step_at_the_run_sequence_length():
    short, long = (ltc.plan(ltc.LargeThenCompressConfig(sizes=("bert-2x64",), seq_length=n))[0] for n in (32, 64))
    # The encoder and attention grow with the sequence (the masked-LM head, with its fixed number of
    # predictions, does not); a count at max_position would not change at all.
    assert 1.1 * short["flops_per_step"] < long["flops_per_step"] < 2.1 * short["flops_per_step"]
    assert short["steps"] > long["steps"]
