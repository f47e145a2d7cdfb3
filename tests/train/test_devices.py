"""The same config on 1 device and on 8 gives the same loss curve."""

import numpy as np

from tests.helpers import read_metrics, read_summary, run_cli

ARGS = ("--set", "steps=30", "--set", "log_every=1", "--set", "model.dropout=0.1",
        "--set", "eval_every=0", "--set", "checkpoint_every=0", "--quiet")


def test_one_vs_eight_devices_same_loss_curve(tmp_path):
    one, eight = tmp_path / "one", tmp_path / "eight"
    first = run_cli("train", "digits-mlp-tiny", "--workdir", str(one), *ARGS, devices=1)
    assert first.returncode == 0, first.stderr
    second = run_cli("train", "digits-mlp-tiny", "--workdir", str(eight), *ARGS,
                     "--set", "mesh.data=2", "--set", "mesh.fsdp=2", "--set", "mesh.tensor=2", devices=8)
    assert second.returncode == 0, second.stderr
    assert read_summary(one)["num_devices"] == 1 and read_summary(eight)["num_devices"] == 8
    assert read_summary(eight)["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    loss_one = np.array([r["loss"] for r in read_metrics(one)])
    loss_eight = np.array([r["loss"] for r in read_metrics(eight)])
    assert len(loss_one) == len(loss_eight) == 30
    # Sharded reductions add in a different order: equal up to float32 rounding.
    np.testing.assert_allclose(loss_eight, loss_one, rtol=2e-5, atol=1e-6)
    assert loss_one[-1] < loss_one[0]
