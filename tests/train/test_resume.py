"""Kill, interrupt, corrupt: the real command resumes and loses no finished work.

All runs use the same command, so they must all end with the parameters of
the uninterrupted reference run (same ``params_sha256``).
"""

import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from tests.helpers import REPO, cli_command, cli_env, read_summary, run_cli

ARGS = ("--set", "steps=60", "--set", "checkpoint_every=20", "--set", "eval_every=0",
        "--set", "model.dropout=0.1", "--quiet")


def _train(workdir: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("train", "digits-mlp-tiny", "--workdir", str(workdir), *ARGS, *extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
    workdir = tmp_path_factory.mktemp("reference")
    result = _train(workdir)
    assert result.returncode == 0, result.stderr
    return workdir


def _wait_for(path: pathlib.Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigkill_then_rerun_gives_the_same_params(reference, tmp_path):
    command = cli_command("train", "digits-mlp-tiny", "--workdir", str(tmp_path), *ARGS)
    process = subprocess.Popen(command, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "checkpoints" / "20", process)
    process.kill()
    process.wait()
    assert not (tmp_path / "summary.json").exists()
    result = _train(tmp_path)
    assert result.returncode == 0, result.stderr
    summary = read_summary(tmp_path)
    assert summary["resumed_from_step"] is not None and summary["resumed_from_step"] >= 20
    assert summary["params_sha256"] == read_summary(reference)["params_sha256"]


def test_sigterm_saves_and_exits_cleanly(reference, tmp_path):
    # Many steps, so the signal surely arrives mid-run.
    command = cli_command("train", "digits-mlp-tiny", "--workdir", str(tmp_path), *ARGS,
                          "--set", "steps=100000")
    process = subprocess.Popen(command, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "checkpoints" / "20", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted by SIGTERM at step" in stderr and "rerun the same command to resume" in stderr
    step = int(stderr.split("at step ")[1].split(";")[0])
    assert (tmp_path / "checkpoints" / str(step)).is_dir()
    assert not (tmp_path / "summary.json").exists()


def test_corrupt_newest_checkpoint_is_reported_and_skipped(reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    (workdir / "summary.json").unlink()
    for path in (workdir / "checkpoints" / "60").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00not a checkpoint")
    # A partial save (what a kill mid-write leaves) must be ignored too.
    (workdir / "checkpoints" / "80.orbax-checkpoint-tmp-1").mkdir()
    result = _train(workdir)
    assert result.returncode == 0, result.stderr
    assert "checkpoints/60 cannot be restored" in result.stderr
    summary = read_summary(workdir)
    assert summary["resumed_from_step"] == 40
    assert summary["params_sha256"] == read_summary(reference)["params_sha256"]
    assert list((workdir / "checkpoints").glob("corrupt-60-*"))


def test_all_checkpoints_corrupt_is_one_clear_error(reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    for path in (workdir / "checkpoints").rglob("*"):
        if path.is_file():
            path.write_bytes(b"junk")
    result = _train(workdir)
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "none of the checkpoints in" in lines[0], result.stderr
    assert not (workdir / "summary.json").exists()
