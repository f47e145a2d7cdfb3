"""Prunable unit groups: what a model declares so structured pruning can remove whole units.

A model config type registers a provider of its :class:`UnitGroup` list with
:func:`register_groups` (the built-in models in ``model_groups``); structured
pruning looks them up with :func:`unit_groups`.

References:
  Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxcompress.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class UnitGroup:
    """Units removed together, and every parameter slice that belongs to them.

    Attributes:
      name: e.g. ``hidden_0`` or ``layer_3/heads``.
      num_units: units in the group.
      members: ``(leaf path, axis, unit_width[, repeat])``: the leaf's ``axis``
        holds ``repeat * num_units * unit_width`` entries laid out as
        ``[repeat, num_units, unit_width]``; unit ``u`` owns entries
        ``r * num_units * unit_width + u * unit_width + j``. ``repeat`` > 1
        describes a flattened feature map, whose channel is the fastest axis.
      config_key: dotted config key of the unit count (``model.hidden_sizes.0``).
      fixed_changes: other config keys a smaller model must set (for attention
        heads: the head width, which is otherwise derived from the head count).
      kept_key: config key that records the kept unit indices, when inputs must be
        remapped (vocabulary rows: ``text.vocab_keep``).
      protected: units never removed (special tokens).
    """

    name: str
    num_units: int
    members: tuple[tuple[int | str, ...], ...]
    config_key: str
    fixed_changes: tuple[tuple[str, Any], ...] = ()
    kept_key: str = ""
    protected: tuple[int, ...] = ()


GroupProvider = Callable[[Any, Any], list[UnitGroup]]
_PROVIDERS: dict[type, GroupProvider] = {}


def register_groups(model_config_type: type) -> Callable[[GroupProvider], GroupProvider]:
    """Declares the prunable groups of models configured by ``model_config_type``."""

    def wrap(fn: GroupProvider) -> GroupProvider:
        _PROVIDERS[model_config_type] = fn
        return fn

    return wrap


def unit_groups(model_config: Any, params: Any) -> list[UnitGroup]:
    """The prunable groups of a model (``model_config`` is ``Config.model``)."""
    provider = _PROVIDERS.get(type(model_config))
    if provider is None:
        raise ConfigError(f"structured pruning does not know the units of {type(model_config).__name__} models; "
                          f"supported: {', '.join(sorted(t.__name__ for t in _PROVIDERS))}")
    return provider(model_config, params)
