"""The ``cap`` task through the real loop on 8 devices, its refusals, and ``compress --method cap``.

Slow: they prepare the embedded text datasets and tokenizer in the test data directory and
train a tiny BERT (H = 32, two layers) for a few steps.
"""

import json

import numpy as np
import pytest

import jaxcompress.configs.albert  # noqa: F401  (registers bert-tiny)
import jaxcompress.configs.text  # noqa: F401  (registers bert-tiny-topic / -pair)
from jaxcompress import data
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.train import train
from jaxcompress.train.build import make_task
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.config import config_from_dict
from jaxcompress.workflows.cap import cap_config, structured_cap
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

SMALL = ["model.hidden_size=32", "model.embedding_size=32", "model.num_heads=2", "model.intermediate_size=64",
         "model.num_layers=2", "model.max_position=64", "text.max_seq_length=64", "model.dropout=0.0"]
FAST = ["data.batch_size=16", "data.eval_batch_size=32", "data.eval_split=validation[:32]", "eval_every=0",
        "log_every=5"]


def _config(preset, *overrides):
    return apply_overrides(get_preset(preset), SMALL + FAST + list(overrides))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pretraining run and a teacher fine-tuned from it on pydocs_topic."""
    root = tmp_path_factory.mktemp("cap")
    train(_config("bert-tiny", "steps=10", "checkpoint_every=10", "optim.warmup_steps=0"), root / "pre", quiet=True)
    train(_config("bert-tiny-topic", "steps=20", "checkpoint_every=20", f"text.init_from={root / 'pre'}"),
          root / "teacher", quiet=True)
    return root


def _teacher_config(runs):
    return config_from_dict(json.loads((runs / "teacher" / "config.json").read_text()))


def test_cap_prunes_through_the_loop_and_fills_its_snapshot_slots(runs, tmp_path):
    config = cap_config(_teacher_config(runs), str(runs / "teacher"), pruner="movement", sparsity=0.5, steps=30,
                        extra_examples=64, refresh_every=10, snapshot_slots=3)
    summary = train(config, tmp_path / "cap", quiet=True)
    assert summary["num_devices"] == 8
    assert abs(summary["sparsity"]["sparsity"] - 0.5) < 1e-3  # counted from the weights
    metrics = summary["train_metrics"]
    for name in ("pre_unsup", "pre_sup", "fine_unsup", "fine_sup", "snap_unsup", "snap_sup", "kd", "ce"):
        assert np.isfinite(metrics[name]), name
    assert metrics["snap_unsup"] > 0  # the snapshots (steps 10, 20) joined the candidates
    banks = restore_params(tmp_path / "cap", "banks")
    np.testing.assert_array_equal(banks["snap_filled"], [1.0, 1.0, 0.0])
    n = len(data.load_split("pydocs_topic", "train"))
    assert banks["snap"].shape == (n, 3, 32) and not np.any(banks["snap"][:, 2])
    np.testing.assert_allclose(np.linalg.norm(banks["snap"][:, :2], axis=-1), 1.0, rtol=1e-4)


def test_teacher_with_another_label_map_is_refused(runs):
    student = _teacher_config(runs)
    student.data.name, student.task = "pydocs_pair", "sentence_pair"
    config = cap_config(student, str(runs / "teacher"), sparsity=0.5, steps=30)
    with pytest.raises(ConfigError, match="same label map"):
        make_task(config, data.dataset_info("pydocs_pair"))


def test_banks_that_do_not_fit_are_refused_before_any_training(runs, tmp_path):
    config = cap_config(_teacher_config(runs), str(runs / "teacher"), sparsity=0.5, steps=30, max_bank_mb=0.01)
    with pytest.raises(ConfigError, match=r"cap banks need .* MiB"):
        train(config, tmp_path / "big", quiet=True)
    assert not (tmp_path / "big" / "checkpoints").exists()


def test_structured_cap_removes_whole_units_and_chains_the_banks(runs, tmp_path):
    student, keep, summaries = structured_cap(_teacher_config(runs), str(runs / "teacher"), tmp_path / "s",
                                              sparsity=0.5, prune_steps=2, retrain_steps=20, extra_examples=32)
    assert [s["fraction"] for s in summaries] == [0.25, 0.5]
    ffn = student["encoder"]["transformer"]["layers"]["ffn"]["intermediate"]["kernel"]  # [layers, H, F]
    dead = np.all(ffn == 0, axis=(0, 1))
    assert dead.sum() == 32 and set(np.nonzero(~dead)[0]) == set(keep["layers/ffn"])
    banks = restore_params(tmp_path / "s" / "step2", "banks")
    np.testing.assert_array_equal(banks["snap_filled"], [1.0, 1.0])


def test_compress_command_reports_measured_sparsity(runs, tmp_path):
    result = run_cli("compress", "--workdir", str(runs / "teacher"), "--method", "cap", "--set", "cap.pruner=movement",
                     "--set", "cap.sparsity=0.9", "--set", "cap.steps=30", "--set", "cap.extra_examples=32",
                     "--out", str(tmp_path / "out"), devices=1, timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("cap: measured sparsity"))
    assert abs(float(line.split()[3]) - 0.9) < 1e-3  # floor(0.9 * size) zeros per leaf
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert abs(report["history"][0]["measured_sparsity"] - 0.9) < 1e-3
