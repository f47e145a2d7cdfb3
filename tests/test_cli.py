"""The command line: help, version, errors as one line, model-info, data, demo."""

import json

import pytest

from jaxcompress import __version__
from jaxcompress.cli import main


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "train", "data", "model-info"):
        assert command in out


@pytest.mark.parametrize("argv, message", [
    (["train", "nope"], "unknown preset 'nope'; allowed presets: albert-base, albert-large"),
    (["train", "digits-mlp", "--set", "optim.lr=1"], "unknown config key 'optim.lr'"),
    (["train", "digits-mlp", "--set", "steps=many"], "config key 'steps' expects an integer, got 'many'"),
    (["train", "digits-mlp", "--set", "optim.name=adagrad"], "must be one of adamw, adam, sgd, lamb"),
    (["train", "digits-mlp", "--set", "mesh.fsdp=3"], "does not divide the 8 devices"),
    (["train"], "train needs CONFIG"),
    (["model-info", "bert-gigantic"], "unknown preset 'bert-gigantic'"),
    (["data", "prepare", "imagenet2012"], "only embedded datasets are generated offline"),
    (["train", "digits-mlp-tiny", "--set", "data.name=no_such_dataset", "--quiet"], "no_such_dataset"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, message, capsys, tmp_path):
    code = main(argv + (["--workdir", str(tmp_path / "w")] if argv[0] == "train" and len(argv) > 1 else []))
    err = capsys.readouterr().err
    assert code == 2
    assert len(_error_lines(err)) == 1 and message in _error_lines(err)[0], err
    assert not (tmp_path / "w" / "summary.json").exists()


def test_unwritable_workdir(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["train", "digits-mlp-tiny", "--workdir", str(tmp_path / "file" / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_garbage_data_dir_is_one_clear_error(tmp_path, capsys, monkeypatch):
    data_dir = tmp_path / "data"
    version_dir = data_dir / "jaxcompress_digits" / "1.0.0"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{not json")
    (version_dir / "jaxcompress_digits-train.array_record-00000-of-00001").write_bytes(b"\x00" * 64)
    monkeypatch.setenv("JAXCOMPRESS_DATA_DIR", str(data_dir))
    code = main(["train", "digits-mlp-tiny", "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(_error_lines(err)) == 1 and "digits" in err and "--force" in err, err


def test_model_info_counts_and_flops(capsys):
    assert main(["model-info", "digits-mlp", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    layers = [(64, 128), (128, 128), (128, 10)]
    assert info["total_params"] == sum(i * o + o for i, o in layers)
    assert info["params_by_module"] == {"hidden_0": 64 * 128 + 128, "hidden_1": 128 * 128 + 128,
                                        "logits": 128 * 10 + 10}
    # Independent count: 2 FLOPs per multiply-add, plus bias adds and ReLUs.
    analytic = sum(2 * i * o + o for i, o in layers) + 128 + 128
    assert info["flops_per_example"] == pytest.approx(analytic, rel=0.02)


def test_data_list_and_prepare(capsys, tmp_path):
    assert main(["data", "prepare", "digits", "--data-dir", str(tmp_path)]) == 0
    assert main(["data", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    digits = next(r for r in rows if r["name"] == "digits")
    assert digits["prepared"] and sum(digits["splits"].values()) == 1797


def test_train_end_to_end_through_the_command(tmp_path, capsys):
    workdir = tmp_path / "run"
    assert main(["train", "digits-mlp-tiny", "--workdir", str(workdir), "--quiet"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out.splitlines()[0])
    summary = json.loads((workdir / "summary.json").read_text())
    assert printed["params_sha256"] == summary["params_sha256"] and summary["final_step"] == 40


#: The demo's workflow at its smallest: two sizes, a few steps each, two compression levels.
TINY_DEMO = ["--set", "sizes=bert-2x64,albert-2x64", "--set", "budget_tflops=0.01", "--set", "min_steps=5",
             "--set", "finetune_steps=8", "--set", "batch_size=8", "--set", "seq_length=32",
             "--set", "prune_levels=0.5", "--set", "quant_bits=8"]


def test_demo_end_to_end_at_its_smallest(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--quiet", "--out", str(out_dir), *TINY_DEMO]) == 0
    printed = capsys.readouterr().out
    assert "Pretrained 2 encoder sizes" in printed and "Claim 1" in printed and "claim 2" in printed
    results = json.loads((out_dir / "results.json").read_text())
    # dense, int8, prune 50%, prune 50% + int8 for each size
    assert [(r["size"], r["level"]) for r in results["compression"]][:4] == [
        ("bert-2x64", "dense"), ("bert-2x64", "int8"), ("bert-2x64", "prune 50%"), ("bert-2x64", "prune 50% + int8")]
    by_level = {r["level"]: r for r in results["compression"] if r["size"] == "bert-2x64"}
    assert by_level["int8"]["bytes"]["after"] < 0.5 * by_level["dense"]["bytes"]["after"]
    assert by_level["prune 50%"]["nonzeros"]["after"] < 0.75 * by_level["dense"]["nonzeros"]["after"]
    for name in ("report.md", "loss_vs_compute.png", "accuracy_vs_size.png"):
        assert (out_dir / name).stat().st_size > 500, name
    # A second run finds every stage done and only rewrites the report.
    before = (out_dir / "pretrain" / "bert-2x64" / "summary.json").read_text()
    assert main(["demo", "--quiet", "--out", str(out_dir), *TINY_DEMO]) == 0
    assert (out_dir / "pretrain" / "bert-2x64" / "summary.json").read_text() == before


def test_demo_refuses_a_budget_too_small_before_any_work(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--set", "budget_tflops=1e-9"]) == 2
    assert "budget_tflops=1e-09 gives bert-2x64 only 0 steps" in capsys.readouterr().err
    assert not (tmp_path / "d" / "pretrain").exists()


def test_run_and_compress_help_list_experiments_and_method_families(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for name in ("survey", "albert", "span-gcl", "ofa-speech", "large-then-compress", "lio", "cap", "point-mae",
                 "mtal", "mixed-vocab", "tts-transfer"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    out = capsys.readouterr().out
    for family in ("magnitude", "N:M", "int8/int4", "low-rank", "k-means", "HashedNets", "distillation",
                   "attention heads", "conv channels", "separable"):
        assert family in out, family


def test_model_info_of_a_classification_preset_shows_its_classifier(capsys):
    assert main(["model-info", "albert-tiny-topic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    heads = [name for name in info["params_by_module"] if name not in ("embedding", "encoder", "pooler")]
    assert heads == ["classifier (12 classes)"]
    assert info["params_by_module"]["classifier (12 classes)"] == 64 * 12 + 12


def test_help_config_into_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    from tests.helpers import REPO

    # `true` exits at once, so every write of the command meets a closed pipe (as `| head` does
    # once it has its lines).
    shell = f"{sys.executable} -m jaxcompress train digits-mlp --help-config | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
