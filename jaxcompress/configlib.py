"""The option machinery of typed configs: declared options, ``--set key=value`` overrides, validation.

A config is a tree of dataclasses. Each field declares its type and, through
:func:`option`, what values are allowed (``choices``, ``min``/``max``).
Overrides from the command line are parsed against the declared type, and the
whole tree is validated before any work starts, so a typo or an out-of-range
value fails with one message naming the key and what is allowed.

This module knows no particular config: the run schema is
``jaxcompress.train.config``, model configs sit beside their models, and the
named presets are in ``jaxcompress.configs``.

Example::

    cfg = apply_overrides(cfg, ["optim.learning_rate=3e-3", "mesh.data=2"])
    validate(cfg)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import pathlib
import types
import typing
from typing import Any, Literal

from jaxcompress.errors import ConfigError


def option(default: Any = dataclasses.MISSING, *, help: str = "",
           choices: tuple[Any, ...] | None = None,
           min: float | None = None, max: float | None = None,
           min_exclusive: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with the metadata :func:`validate` checks.

    Args:
      default: the default value.
      help: one line shown by ``jaxcompress train --help-config``.
      choices: the allowed values, if the field is an enumeration.
      min, max: inclusive bounds for numbers (``min_exclusive`` makes the
        lower bound strict, e.g. a learning rate must be > 0).
    """
    metadata = {"help": help, "choices": choices, "min": min, "max": max,
                "min_exclusive": min_exclusive}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------
# Overrides


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Returns a copy of ``config`` with each ``key=value`` applied, types checked."""
    config = copy_config(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.learning_rate=3e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        parent, leaf = _resolve_parent(config, key)
        field = _fields(parent)[leaf]
        hint = _type_hints(type(parent))[leaf]
        setattr(parent, leaf, _parse_value(key, raw.strip(), hint, field))
    return config


def copy_config(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        changes = {f.name: copy_config(getattr(config, f.name)) for f in dataclasses.fields(config)}
        return dataclasses.replace(config, **changes)
    return config


def _fields(obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def did_you_mean(name: str, allowed: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve_parent(config: Any, key: str) -> tuple[Any, str]:
    parts = key.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        fields = _fields(node)
        here = ".".join(parts[:depth])
        if part not in fields:
            where = f"under '{here}'" if here else "at the top level"
            raise ConfigError(f"unknown config key {key!r}; allowed keys {where}: "
                              f"{', '.join(fields)}" + did_you_mean(part, fields))
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(node, part)):
                raise ConfigError(f"config key {key!r} is a group; set one of its keys, e.g. "
                                  f"{key}.{dataclasses.fields(getattr(node, part))[0].name}=...")
            return node, part
        child = getattr(node, part)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"config key {'.'.join(parts[:depth + 1])!r} is a value, not a group; "
                              f"cannot set {key!r}")
        node = child
    raise AssertionError("unreachable")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_value(key: str, raw: str, hint: Any, field: dataclasses.Field) -> Any:
    """Parses ``raw`` as the declared type ``hint``; errors name the key."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"config key {key!r} expects a boolean (true/false), got {raw!r}")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects an integer, got {raw!r}") from None
    if hint is float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} expects a finite number, got {raw!r}")
        return value
    if hint is str:
        return raw
    if origin is Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(str, allowed))}; got {raw!r}")
        return raw
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str):
            text = raw.strip().strip("[]()")
            items = [t.strip() for t in text.split(",") if t.strip()]
            return tuple(_parse_value(key, t, args[0], field) for t in items)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                if raw.lower() in ("none", "null"):
                    return None
                continue
            try:
                return _parse_value(key, raw, arg, field)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config key {key!r} cannot be parsed from {raw!r}")
    raise ConfigError(f"config key {key!r} cannot be set from the command line; set it in a Python config")


# ----------------------------------------------------------------------------
# Validation


def validate(config: Any, prefix: str = "") -> None:
    """Checks every field against its declared type, choices and bounds.

    Raises:
      ConfigError: naming the first offending key and what is allowed.
    """
    hints = _type_hints(type(config))
    for field in dataclasses.fields(config):
        key = prefix + field.name
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            validate(value, prefix=key + ".")
            continue
        _check_type(key, value, hints[field.name])
        meta = field.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(str, meta['choices']))}; "
                              f"got {value!r}" + did_you_mean(str(value), map(str, meta["choices"])))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = meta.get("min"), meta.get("max")
            if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):
                op = ">" if meta.get("min_exclusive") else ">="
                raise ConfigError(f"config key {key!r} must be {op} {low}, got {value!r}")
            if high is not None and value > high:
                raise ConfigError(f"config key {key!r} must be <= {high}, got {value!r}")
    own_check = getattr(config, "validate", None)
    if callable(own_check):
        own_check(prefix)


def _check_type(key: str, value: Any, hint: Any) -> None:
    if hint is Any:
        return
    expected = {int: int, float: (int, float), str: str, bool: bool}.get(hint)
    if expected is not None:
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"config key {key!r} expects {hint.__name__}, got a boolean {value!r}")
        if not isinstance(value, expected):
            raise ConfigError(f"config key {key!r} expects {hint.__name__}, got {type(value).__name__} {value!r}")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly nested dict of the config (recorded in the workdir).

    The model config's class is recorded as ``model_class`` so the dict can be
    turned back into the same typed config (see ``train.config.config_from_dict``).
    """
    values = dataclasses.asdict(config)
    model = getattr(config, "model", None)
    if dataclasses.is_dataclass(model):
        values["model_class"] = f"{type(model).__module__}:{type(model).__qualname__}"
    return values


def describe(config: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Flat ``(key, value, help)`` rows, for ``--help-config``."""
    rows = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            rows.extend(describe(value, prefix + field.name + "."))
        else:
            help_text = field.metadata.get("help", "")
            if field.metadata.get("choices"):
                help_text += f" [{'|'.join(map(str, field.metadata['choices']))}]"
            rows.append((prefix + field.name, value, help_text))
    return rows


def load_python_config(path: str | pathlib.Path, expected: type) -> Any:
    """Runs a config file and returns what its ``get_config()`` returns, checked to be ``expected``.

    Raises:
      ConfigError: a missing file, a syntax error or an exception while running it
        (one line naming the file and line), no ``get_config``, or a wrong type.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        module_spec = importlib.util.spec_from_file_location("jaxcompress_user_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        if not hasattr(module, "get_config"):
            raise ConfigError(f"config file {str(path)!r} must define get_config() returning a {expected.__name__}")
        config = module.get_config()
    except ConfigError:
        raise
    except SyntaxError as exc:
        raise ConfigError(f"config file {str(path)!r} line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # the user's code may raise anything; report where, not a traceback
        raise ConfigError(f"config file {str(path)!r} line {_user_line(exc, path)}: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(config, expected):
        raise ConfigError(f"get_config() in {str(path)!r} returned {type(config).__name__}, "
                          f"expected {expected.__name__}")
    return config


def _user_line(exc: BaseException, path: pathlib.Path) -> str:
    """The innermost line of ``path`` in the exception's traceback ('?' if none)."""
    line = "?"
    frame = exc.__traceback__
    while frame is not None:
        if pathlib.Path(frame.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = str(frame.tb_lineno)
        frame = frame.tb_next
    return line
