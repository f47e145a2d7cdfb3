"""The preset registry: named zero-argument factories of run configs."""

from __future__ import annotations

from typing import Callable

from jaxcompress.configlib import did_you_mean, load_python_config
from jaxcompress.errors import ConfigError
from jaxcompress.train.config import Config

PRESETS: dict[str, Callable[[], Config]] = {}


def register_preset(name: str) -> Callable[[Callable[[], Config]], Callable[[], Config]]:
    """Decorator adding a zero-argument config factory under ``name``."""

    def wrap(factory: Callable[[], Config]) -> Callable[[], Config]:
        if name in PRESETS:
            raise ValueError(f"preset {name!r} registered twice")
        PRESETS[name] = factory
        return factory

    return wrap


def get_preset(name: str) -> Config:
    """Returns a fresh copy of the named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed presets: {', '.join(sorted(PRESETS))}"
                          + did_you_mean(name, PRESETS))
    return PRESETS[name]()


def load_config(spec: str, expected: type = Config) -> Config:
    """A preset name, or a Python file defining ``get_config()`` returning ``expected``."""
    if spec.endswith(".py"):
        return load_python_config(spec, expected)
    if expected is not Config:
        raise ConfigError(f"config {spec!r} must be a .py file defining get_config() -> {expected.__name__}")
    return get_preset(spec)
