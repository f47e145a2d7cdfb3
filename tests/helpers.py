"""Running the real ``jaxcompress`` command in a subprocess, as users do."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def cli_env(devices: int = 8, **extra: str) -> dict[str, str]:
    """The test environment with ``devices`` virtual CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxcompress", *args]


def run_cli(*args: str, devices: int = 8, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(devices, **extra), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def read_metrics(workdir: pathlib.Path, split: str = "train") -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def read_summary(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "summary.json").read_text())
