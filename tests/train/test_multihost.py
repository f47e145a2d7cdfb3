"""Two real processes on this machine (gloo CPU collectives), not mocked.

Two processes with two devices each must train like one process with four
devices on the same mesh, each host reading only its half of every batch. Gloo
sums gradients across processes in another order than the in-process
all-reduce, so the curves agree to float32 rounding rather than bit for bit.
"""

import socket
import subprocess

import numpy as np
import pytest

from tests.helpers import REPO, cli_command, cli_env, read_metrics, read_summary, run_cli

ARGS = ("--set", "steps=20", "--set", "mesh.data=2", "--set", "mesh.fsdp=2", "--set", "eval_every=10",
        "--set", "checkpoint_every=10", "--set", "model.dropout=0.1", "--set", "log_every=1", "--quiet")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    single = tmp_path / "single"
    result = run_cli("train", "digits-mlp-tiny", "--workdir", str(single), *ARGS, devices=4)
    assert result.returncode == 0, result.stderr

    shared = tmp_path / "multi"
    port = _free_port()
    processes = [
        subprocess.Popen(
            cli_command("train", "digits-mlp-tiny", "--workdir", str(shared), *ARGS,
                        "--coordinator-address", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(i)),
            env=cli_env(devices=2), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    multi = read_summary(shared)
    assert multi["process_count"] == 2 and multi["num_devices"] == 4
    losses = [np.array([r["loss"] for r in read_metrics(w)]) for w in (single, shared)]
    assert len(losses[0]) == len(losses[1]) == 20
    np.testing.assert_allclose(losses[1], losses[0], rtol=2e-5)
    for name, value in read_summary(single)["eval_metrics"].items():
        assert multi["eval_metrics"][name] == pytest.approx(value, rel=1e-4)
    assert sorted(p.name for p in (shared / "checkpoints").iterdir()) == ["10", "20"]
