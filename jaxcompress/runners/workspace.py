"""What every experiment runner does with its output folder: check it, cache compiles in it, fan runs out.

References:
  JAX documentation, "Persistent compilation cache"; Python documentation, ``concurrent.futures``.
"""

from __future__ import annotations

import json
import multiprocessing
import pathlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

from jaxcompress.errors import WorkdirError


def check_output(out: pathlib.Path) -> None:
    """Creates ``out`` or refuses, before any work, with one error when it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise WorkdirError(f"output directory {out} is not writable: {exc.strerror or exc}") from None


def finished(summary: pathlib.Path) -> dict[str, Any] | None:
    """The summary of a finished training (its ``summary.json``), or None when it has not finished."""
    return json.loads(summary.read_text()) if summary.exists() else None


def enable_compilation_cache(out: pathlib.Path) -> None:
    """A persistent XLA cache under ``out``: runs whose steps lower to the same program (seeds of one
    setting, retrainings of one cycle) compile once, also across processes and invocations."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(out / "xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def map_in_processes(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[tuple[int, Any]]:
    """``(index, fn(item))`` for every item, in the order they finish.

    With ``workers > 1`` the items run in that many fresh (spawned) processes: on a CPU host the
    small train steps of our experiments use about one core each, so two processes on two cores
    finish a grid of independent runs sooner than one. ``fn`` must be a module-level function.
    """
    if workers <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield index, fn(item)
        return
    context = multiprocessing.get_context("spawn")  # a forked JAX runtime is not safe to reuse
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()
