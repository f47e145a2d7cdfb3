"""Downstream probing of a frozen OFA speech encoder at a fixed or learned rate (task ``speech_probe``).

The encoder of a finished ``ofa_speech`` run (``model.upstream``, its workdir)
is loaded and frozen; a light head (:class:`~jaxcompress.ssl.ofa_probe.ProbeHead`)
is trained for ``model.target``. The operating point is ``model.lam``, or,
with ``model.learn_lambda``, ``sigmoid(rho)`` with ``rho`` trained on the task
loss (its own Adam learning rate ``model.lambda_learning_rate``) plus
``model.compute_penalty * mean(alpha_mix)``.

Metrics: ``loss``, ``accuracy`` (utterance targets) or ``error_rate``,
``edits``, ``ref_length``, ``feasible`` (CTC targets), ``lambda``,
``frame_period_ms`` (20 ms divided by the mean mixed weight), ``compressed_frames``
and ``frames_50hz``.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332) (adaptive
compressing rate); Yang et al., SUPERB, Interspeech 2021.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcompress import data as data_lib
from jaxcompress.configlib import option
from jaxcompress.errors import CheckpointError, ConfigError, DataError
from jaxcompress.nn.speech import SpeechEncoder, SpeechEncoderConfig
from jaxcompress.speech.batching import check_features, model_inputs
from jaxcompress.ssl import ofa_probe
from jaxcompress.ssl.ofa import BASE_FRAME_MS
from jaxcompress.train.checkpoint import graft_params, restore_params
from jaxcompress.train.task import Batch, Metrics, Task, register_task


@dataclasses.dataclass
class SpeechProbeConfig:
    """A downstream head on a frozen OFA speech encoder."""

    upstream: str = option("", help="workdir of a finished ofa_speech run (its encoder is loaded and frozen)")
    target: str = option("keyword", help="downstream task", choices=tuple(ofa_probe.PROBE_TARGETS))
    lam: float = option(0.5, help="operating point lambda (the starting value when learned)", min=0.0, max=1.0)
    learn_lambda: bool = option(False, help="learn lambda = sigmoid(rho) on the task loss")
    lambda_learning_rate: float = option(0.05, help="Adam learning rate of rho", min=0.0, min_exclusive=True)
    compute_penalty: float = option(0.0, help="mu: adds mu * mean(alpha_mix) to the loss (0: task loss only)",
                                    min=0.0)
    head_hidden: int = option(0, help="hidden ReLU units of the head (0: linear)", min=0)

    def validate(self, prefix: str) -> None:
        if not self.upstream:
            raise ConfigError(f"config key '{prefix}upstream' must name the workdir of a finished ofa_speech run "
                              f"(e.g. runs/ofa-speech-tiny)")


def load_upstream(workdir: str, key: str = "model.upstream") -> tuple[SpeechEncoderConfig, dict[str, Any]]:
    """The encoder config and parameters (NumPy) of the newest checkpoint of an ``ofa_speech`` run.

    Raises:
        CheckpointError: no config or checkpoint, or not an ofa_speech run.
    """
    config_path = pathlib.Path(workdir).expanduser().absolute() / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"config key {key!r} = {workdir!r}: no config.json in {config_path.parent} "
                              f"(point it at the workdir of a finished ofa_speech run)")
    saved = json.loads(config_path.read_text())
    if saved.get("task") != "ofa_speech":
        raise CheckpointError(f"config key {key!r} = {workdir!r}: that run trained task {saved.get('task')!r}, "
                              f"not 'ofa_speech'")
    names = {f.name for f in dataclasses.fields(SpeechEncoderConfig)}
    encoder_config = SpeechEncoderConfig(**{k: v for k, v in saved["model"].items() if k in names})
    return encoder_config, restore_params(workdir, "encoder", field=f"config key {key!r}")


def label_count(dataset: str, target: ofa_probe.ProbeTarget, data_dir: str | None) -> int:
    """Number of classes (or CTC labels) of ``target`` in ``dataset``."""
    info = data_lib.load_split(dataset, "train", data_dir).info
    if target.field == "phones":
        return len(info.metadata["phones"])
    if target.field == "tokens":
        return len(info.metadata["tokens"])
    return int(info.features[target.field].num_classes)


def target_labels(raw: dict[str, np.ndarray], target: ofa_probe.ProbeTarget) -> np.ndarray:
    """Class ids [B] or padded label sequences [B, L] of ``target`` from records."""
    values = np.asarray(raw[target.field])
    return values.astype(np.int32)


@register_task("speech_probe")
class SpeechProbeTask(Task):
    """A probe on a frozen OFA speech encoder (see the module docstring)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = config.model
        if not isinstance(cfg, SpeechProbeConfig):
            raise ConfigError(f"task 'speech_probe' needs a SpeechProbeConfig model (start from the preset "
                              f"ofa-speech-probe); got {type(cfg).__name__}")
        self.target = ofa_probe.PROBE_TARGETS[cfg.target]
        check_features(data_info, "speech_probe", (self.target.field,))
        self.cfg = cfg
        self.encoder_config, self._upstream = load_upstream(cfg.upstream)
        if data_info["features"]["logmel"][0][-1] != self.encoder_config.num_mels:
            raise DataError(f"dataset {data_info['name']!r} has {data_info['features']['logmel'][0][-1]} mel bins "
                            f"but the upstream encoder expects {self.encoder_config.num_mels}")
        self.encoder = SpeechEncoder(self.encoder_config, deterministic=True)
        self.num_labels = label_count(config.data.name, self.target, config.data.data_dir or None)
        self.head = ofa_probe.ProbeHead(ofa_probe.num_outputs(self.target, self.num_labels), self.target.level,
                                        cfg.head_hidden)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = model_inputs(raw)
        batch["labels"] = target_labels(raw, self.target)
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        width = (batch["logmel"].shape[1] + 1) // 2
        spans = jnp.zeros((batch["logmel"].shape[0], width), bool)
        boxed = self.encoder.init(rng, batch["logmel"], batch["mask"], 0.5, spans)["params"]
        upstream = graft_params(boxed, self._upstream, f"config key 'model.upstream' = {self.cfg.upstream!r}")
        hidden = jnp.zeros((batch["logmel"].shape[0], width, self.encoder_config.hidden_size))
        head = self.head.init(rng, hidden, jnp.ones(hidden.shape[:2], bool))["params"]
        params = {"upstream": upstream, "head": head}
        if self.cfg.learn_lambda:
            params["lambda_logit"] = jnp.asarray(ofa_probe.logit_of(self.cfg.lam), jnp.float32)
        return params

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        transforms = {"head": tx, "frozen": optax.set_to_zero(),
                      "lambda": optax.adam(self.cfg.lambda_learning_rate)}

        def labels(params: Any) -> dict[str, Any]:
            return {key: {"upstream": "frozen", "head": "head", "lambda_logit": "lambda"}[key] for key in params}

        return optax.multi_transform(transforms, labels)

    def _lambda(self, params: Any) -> jax.Array:
        if self.cfg.learn_lambda:
            return ofa_probe.lambda_from_logit(params["lambda_logit"])
        return jnp.float32(self.cfg.lam)

    def _forward(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        lam = self._lambda(params)
        upstream = jax.lax.stop_gradient(params["upstream"])
        out = self.encoder.apply({"params": upstream}, batch["logmel"], batch["mask"], lam)
        logits = self.head.apply({"params": params["head"]}, out.hidden, out.mask)
        stats = ofa_probe.probe_losses(self.target, logits, out.mask, batch["labels"])
        mix = ofa_probe.mean_alpha_mix(out.alpha_mix, out.frame_mask)
        stats.update(lambda_=jnp.broadcast_to(lam, mix.shape), mean_alpha_mix=mix,
                     compressed_frames=out.lengths.astype(jnp.float32),
                     frames_50hz=out.frame_mask.sum(-1).astype(jnp.float32))
        return stats

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng  # the encoder is frozen and run deterministically; the heads have no dropout
        stats = self._forward(params, batch)
        if self.target.level == "sequence":
            task_loss = stats["loss"].sum() / jnp.maximum(stats["feasible"].sum(), 1.0)
        else:
            task_loss = stats["loss"].mean()
        total = task_loss + self.cfg.compute_penalty * stats["mean_alpha_mix"].mean()
        metrics = {"loss": total, "task_loss": task_loss, self.target.metric: stats[self.target.metric].mean(),
                   "lambda": stats["lambda_"].mean(),
                   "frame_period_ms": BASE_FRAME_MS / jnp.maximum(stats["mean_alpha_mix"].mean(), 1e-6)}
        return total, metrics

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        stats = self._forward(params, batch)
        stats["lambda"] = stats.pop("lambda_")
        return stats
