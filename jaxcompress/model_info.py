"""Parameter counts and forward FLOPs of a config's model, without training it."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.train.build import make_task
from jaxcompress.train.config import Config


def model_info(config: Config) -> dict[str, Any]:
    """Counts parameters per top-level module and forward FLOPs for one example.

    FLOPs come from XLA's cost analysis of the compiled forward pass, so they
    count what actually runs (multiply and add are two FLOPs).

    A model config that provides ``param_breakdown()`` and
    ``flops_per_token(seq_len)`` (the ALBERT/BERT encoders) is counted from
    those instead: shapes via ``jax.eval_shape``, FLOPs analytically, so the
    largest presets need neither a dataset nor memory.

    Returns:
      ``{"preset", "total_params", "params_by_module", "flops_per_example"}``,
      plus the model's own keys when it counts itself.
    """
    if callable(getattr(config.model, "param_breakdown", None)):
        return _self_counting_model_info(config)
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


def _self_counting_model_info(config: Config) -> dict[str, Any]:
    """model-info of a model config that counts itself (see :func:`model_info`).

    ``total_params`` is what the encoder allocates (embedding, layers,
    pooler); the heads the task really has (masked-LM and sentence heads for
    pretraining, a classifier for fine-tuning) are listed in
    ``params_by_module`` and added in ``total_params_with_heads``. FLOPs are per token of a sequence of
    ``max_position`` tokens (forward, heads excluded).
    """
    model = config.model
    by_module = model.param_breakdown()
    if config.task != "mlm_sop":
        # A fine-tuning preset has a classifier, not the pretraining heads.
        num_classes = int(data_lib.dataset_info(config.data.name, config.data.data_dir or None)["num_classes"])
        del by_module["mlm_head"], by_module["sentence_head"]
        by_module[f"classifier ({num_classes} classes)"] = model.hidden_size * num_classes + num_classes
    total = by_module["embedding"] + by_module["encoder"] + by_module["pooler"]
    seq_len = int(model.max_position)
    per_token = float(model.flops_per_token(seq_len))
    return {"preset": config.name, "total_params": total, "embedding_params": by_module["embedding"],
            "encoder_params": by_module["encoder"], "total_params_with_heads": sum(by_module.values()),
            "params_by_module": by_module, "flops_per_token": per_token, "flops_seq_len": seq_len,
            "flops_per_example": per_token * seq_len}
