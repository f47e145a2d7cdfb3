"""The compression report's metrics, the compact form on disk, and `jaxcompress compress`."""

import json

import jax
import numpy as np
import pytest

from jaxcompress.cli import main
from jaxcompress.compress import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.report import compression_report, effective_flops, markdown_table
from jaxcompress.compress.storage import bitmask, csr, dense, entropy_bits, huffman_bits

RNG = np.random.default_rng(0)


def test_storage_formulas_by_hand():
    w = np.zeros((4, 300), np.float32)
    w[0, :10] = 1.0
    assert dense("w", w).total_bytes == 4 * 1200
    assert bitmask("w", w).total_bytes == 10 * 4 + 1200 // 8
    # 300 columns need 2-byte column indices; 5 row pointers up to nnz=10 fit in 1 byte.
    assert csr("w", w).total_bytes == 10 * 4 + 10 * 2 + 5 * 1
    assert huffman_bits([5, 1, 1, 1]) == 5 * 1 + 1 * 2 + 1 * 3 + 1 * 3  # codes 1, 01, 001, 000
    counts = [45, 13, 12, 16, 9, 5]
    assert huffman_bits(counts) == 224  # the textbook example: 224 bits
    assert huffman_bits(counts) >= entropy_bits(counts)


def test_alpha_beta_delta_by_hand():
    params = {"a": {"kernel": RNG.normal(size=(100, 50)).astype(np.float32)},
              "b": {"bias": np.ones(50, np.float32)}}
    base = Compressed.from_params(params)
    pruned = get_method("prune")(base, {"sparsity": 0.9})
    report = compression_report("p", base, pruned, metrics_before={"accuracy": 0.9},
                                metrics_after={"accuracy": 0.85}, flops_before=10_000.0, flops_after=10_000.0,
                                latency_before_s=2.0, latency_after_s=1.0)
    a = 5000 * 4 + 50 * 4
    a_star = 500 * 4 + 5000 // 8 + 50 * 4
    assert report["bytes"] == {"before": a, "after": a_star, "after_by_format": {"bitmask": 500 * 4 + 625,
                                                                                  "dense": 200}}
    assert report["alpha"] == pytest.approx(a / a_star)
    assert report["beta"] == pytest.approx((a - a_star) / a_star)
    assert report["delta_latency"] == pytest.approx(2.0)
    assert report["flops"]["after_effective"] == pytest.approx(10_000 * 500 / 5000)
    assert report["accuracy_change"] == pytest.approx(-0.05)
    assert "| p | 0.8500 | -0.0500 |" in markdown_table([report])
    assert effective_flops(1.0, base) == 1.0


def test_compact_form_round_trips(tmp_path):
    params = {"a": {"kernel": RNG.normal(size=(64, 32)).astype(np.float32),
                    "bias": RNG.normal(size=32).astype(np.float32)}}
    pruned = get_method("prune")(Compressed.from_params(params), {"sparsity": 0.75})
    pruned.save(tmp_path)
    assert (tmp_path / "encodings.npz").stat().st_size < 0.5 * params["a"]["kernel"].nbytes
    loaded = Compressed.load(tmp_path, params)
    for x, y in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(pruned.params)):
        np.testing.assert_array_equal(x, y)
    assert loaded.total_bytes == pruned.total_bytes and loaded.history == pruned.history


def test_prune_option_errors():
    base = Compressed.from_params({"a": {"kernel": np.ones((4, 4), np.float32)}})
    with pytest.raises(Exception, match=r"prune.sparsity must be in \[0, 1\)"):
        get_method("prune")(base, {"sparsity": 1.5})
    with pytest.raises(Exception, match="unknown prune option 'sparsityy'"):
        get_method("prune")(base, {"sparsityy": 0.5})
    with pytest.raises(Exception, match="include rule 'encoder' matches no parameter"):
        get_method("prune")(base, {"include": "encoder"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained")
    assert main(["train", "digits-mlp-tiny", "--workdir", str(workdir), "--quiet",
                 "--set", "steps=60", "--set", "model.hidden_sizes=64,64"]) == 0
    return workdir


def test_compress_command_prunes_shrinks_and_reports(trained, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compress", "--workdir", str(trained), "--method", "structured", "--set",
                 "structured.sparsity=0.5", "--method", "prune", "--set", "prune.sparsity=0.5",
                 "--out", str(out)]) == 0
    assert "| structured+prune |" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["model_changes"] == {"model.hidden_sizes.0": 32, "model.hidden_sizes.1": 32}
    assert report["params"]["after"] < 0.5 * report["params"]["before"]
    assert report["metrics_after"]["accuracy"] > 0.3 and report["alpha"] > 3
    assert [h["method"] for h in report["history"]] == ["structured", "prune"]
    assert (out / "accuracy_vs_size.png").stat().st_size > 1000
    assert (out / "model" / "compressed.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--method", "prunee"], "unknown compression method 'prunee'; allowed methods:"),
    (["--method", "prune", "--set", "sparsity=0.5"], "must look like METHOD.OPTION=VALUE"),
    (["--method", "prune", "--set", "quantize.bits=4"], "not among --method"),
    ([], "compress needs at least one --method"),
])
def test_compress_bad_input(trained, argv, message, capsys):
    assert main(["compress", "--workdir", str(trained), *argv]) == 2
    assert message in capsys.readouterr().err


def test_compress_needs_a_trained_workdir(tmp_path, capsys):
    assert main(["compress", "--workdir", str(tmp_path), "--method", "prune"]) == 2
    assert "is not a training work directory" in capsys.readouterr().err
