"""Multi-host start-up: ``jax.distributed.initialize`` when the environment says so.

Settings come from command-line flags first, then the environment:
``JAXCOMPRESS_COORDINATOR_ADDRESS`` / ``JAXCOMPRESS_NUM_PROCESSES`` /
``JAXCOMPRESS_PROCESS_ID``, then JAX's own ``JAX_COORDINATOR_ADDRESS`` /
``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``. In ``auto`` mode a cluster that JAX
detects by itself (Cloud TPU pod workers, SLURM with several tasks, Open MPI)
also turns it on. This must run before anything touches a JAX backend.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

import jax

from jaxcompress.errors import ConfigError

MODES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class DistributedSettings:
    """What to pass to ``jax.distributed.initialize`` (None: let JAX detect it)."""

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(f"JAXCOMPRESS_{name}") or environ.get(f"JAX_{name}")


def _as_int(value: str | int | None, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{field} must be an integer, got {value!r}") from None


def _cluster_detected(environ: Mapping[str, str]) -> bool:
    """A multi-process launch that JAX's cluster detection understands."""
    if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in environ:
        return True
    if int(environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return True
    return "," in environ.get("TPU_WORKER_HOSTNAMES", "")


def resolve(mode: str = "auto", coordinator_address: str | None = None,
            num_processes: int | None = None, process_id: int | None = None,
            environ: Mapping[str, str] | None = None) -> DistributedSettings | None:
    """Decides whether this process is one of several, and with which settings.

    Returns:
      The settings, or None for a single-process run.

    Raises:
      ConfigError: for an unknown mode, non-integer counts, or an
        inconsistent combination (process id out of range, missing coordinator).
    """
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise ConfigError(f"--distributed must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return None
    address = coordinator_address or _env(environ, "COORDINATOR_ADDRESS")
    count = _as_int(num_processes if num_processes is not None else _env(environ, "NUM_PROCESSES"),
                    "--num-processes / JAXCOMPRESS_NUM_PROCESSES")
    index = _as_int(process_id if process_id is not None else _env(environ, "PROCESS_ID"),
                    "--process-id / JAXCOMPRESS_PROCESS_ID")
    explicit = address is not None or (count is not None and count > 1)
    if mode == "auto" and not explicit and not _cluster_detected(environ):
        return None
    if count is not None and count < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {count}")
    if index is not None and count is not None and not 0 <= index < count:
        raise ConfigError(f"--process-id must be in [0, {count}), got {index}")
    if explicit and not _cluster_detected(environ) and (address is None or count is None or index is None):
        raise ConfigError("a multi-process run outside a detected cluster needs all of "
                          "--coordinator-address HOST:PORT, --num-processes and --process-id")
    return DistributedSettings(address, count, index)


def initialize(settings: DistributedSettings | None) -> None:
    """Connects this process to the others (no-op for None or when already done)."""
    if settings is None or jax.distributed.is_initialized():
        return
    # CPU devices (the test meshes, and the host client beside accelerators)
    # need a collectives backend to talk across processes.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=settings.coordinator_address,
                               num_processes=settings.num_processes,
                               process_id=settings.process_id)
