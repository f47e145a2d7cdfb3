"""The prunable unit groups of the built-in models (see ``structured.UnitGroup``)."""

from __future__ import annotations

from typing import Any

from jaxcompress.compress.structured import UnitGroup, register_groups
from jaxcompress.config import MLPConfig


@register_groups(MLPConfig)
def mlp_groups(model: MLPConfig, params: Any) -> list[UnitGroup]:
    """Hidden neuron ``j`` of layer ``i``: column ``j`` of ``hidden_i`` (kernel and bias)
    and row ``j`` of the next layer's kernel."""
    groups = []
    layers = [f"hidden_{i}" for i in range(len(model.hidden_sizes))] + ["logits"]
    for i, width in enumerate(model.hidden_sizes):
        members = ((f"{layers[i]}/kernel", 1, 1), (f"{layers[i]}/bias", 0, 1), (f"{layers[i + 1]}/kernel", 0, 1))
        groups.append(UnitGroup(f"hidden_{i}", width, members, f"model.hidden_sizes.{i}"))
    return groups
