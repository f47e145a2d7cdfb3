"""Validation of the typed option dicts that compression steps receive.

``jaxcompress compress --method NAME --set NAME.key=value`` hands each step a
dict of already-parsed values; these helpers turn a wrong key, type or value
into one :class:`ConfigError` naming ``NAME.key`` and what is allowed.
"""

from __future__ import annotations

from typing import Any, Iterable

from jaxcompress.errors import ConfigError


def check_known(method: str, options: dict[str, Any], allowed: Iterable[str]) -> None:
    """Raises if ``options`` has a key outside ``allowed``."""
    allowed = sorted(allowed)
    for key in options:
        if key not in allowed:
            raise ConfigError(f"unknown {method} option {key!r}; allowed options: {', '.join(allowed)}")


def choice(method: str, options: dict[str, Any], key: str, default: Any, allowed: Iterable[Any]) -> Any:
    value = options.get(key, default)
    allowed = tuple(allowed)
    if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
        raise ConfigError(f"{method}.{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def boolean(method: str, options: dict[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{method}.{key} must be true or false; got {value!r}")
    return value


def integer(method: str, options: dict[str, Any], key: str, default: int | None,
            low: int | None = None, high: int | None = None) -> int | None:
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{method}.{key} must be an integer; got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]" if low is not None else f"<= {high}"
        raise ConfigError(f"{method}.{key} must be {bounds}; got {value}")
    return value


def number(method: str, options: dict[str, Any], key: str, default: float | None,
           low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> float | None:
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{method}.{key} must be a number; got {value!r}")
    value = float(value)
    bad_low = low is not None and (value < low or (low_open and value == low))
    bad_high = high is not None and (value > high or (high_open and value == high))
    if bad_low or bad_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ConfigError(f"{method}.{key} must be in {left}{low}, {high}{right}; got {value}")
    return value


def rules(method: str, options: dict[str, Any], key: str, default: str) -> tuple[str, ...]:
    """One regex (``a|b`` for alternatives) or a list of them; '' means none."""
    value = options.get(key, default)
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{method}.{key} must be a regular expression (or a list of them); got {value!r}")
