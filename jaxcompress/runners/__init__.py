"""Experiment runners behind ``jaxcompress run NAME``.

A runner reproduces one paper's experiment end to end and writes
``results.json``, ``report.md`` and plots into its output directory. Each
module here registers itself with :func:`register_experiment`; add the import
of a new module to ``_RUNNER_MODULES``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from typing import Any, Callable

from jaxcompress.errors import UserError

_RUNNER_MODULES: tuple[str, ...] = ("survey", "span_gcl", "large_then_compress", "albert", "ofa_speech", "lio",
                                   "cap", "point_mae", "mtal", "mixed_vocab", "tts_transfer")


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What the command line passes to a runner."""

    out: pathlib.Path
    quick: bool = False
    quiet: bool = False
    overrides: tuple[str, ...] = ()
    config: str | None = None  # a .py file with get_config() for the experiment's own config


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable[[RunRequest], dict[str, Any]]


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, help: str) -> Callable[[Callable[[RunRequest], dict]], Callable]:
    """Decorator registering ``run(request) -> results dict`` under ``name``."""

    def wrap(run: Callable[[RunRequest], dict]) -> Callable[[RunRequest], dict]:
        _EXPERIMENTS[name] = Experiment(name, help, run)
        return run

    return wrap


def experiments() -> dict[str, Experiment]:
    """All registered experiments (imports the runner modules on first use)."""
    for module in _RUNNER_MODULES:
        importlib.import_module(f"jaxcompress.runners.{module}")
    return dict(sorted(_EXPERIMENTS.items()))


def run_experiment(name: str, request: RunRequest) -> dict[str, Any]:
    known = experiments()
    if name not in known:
        allowed = ", ".join(known) or "(none yet)"
        raise UserError(f"unknown experiment {name!r}; allowed experiments: {allowed}")
    return known[name].run(request)
