"""Parameter counts and forward FLOPs of a config's model, without training it."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.config import Config
from jaxcompress.train.task import make_task


def model_info(config: Config) -> dict[str, Any]:
    """Counts parameters per top-level module and forward FLOPs for one example.

    FLOPs come from XLA's cost analysis of the compiled forward pass, so they
    count what actually runs (multiply and add are two FLOPs).

    Returns:
      ``{"preset", "total_params", "params_by_module", "flops_per_example"}``.
    """
    task = make_task(config, data_lib.dataset_info(config.data.name, config.data.data_dir or None))
    source = data_lib.load_split(config.data.name, config.data.train_split, config.data.data_dir or None)
    example = jax.tree.map(np.asarray, task.prepare_batch(source.read(np.arange(1))))
    params = nn.unbox(jax.eval_shape(task.init, jax.random.key(0), example))
    by_module = {name: int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(sub)))
                 for name, sub in params.items()}
    flops = float("nan")
    forward = task.forward_for_flops()
    if forward is not None:
        fn, inputs = forward
        cost = jax.jit(fn).lower(params, *inputs).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", float("nan")))
    return {"preset": config.name, "total_params": sum(by_module.values()),
            "params_by_module": by_module, "flops_per_example": flops}
