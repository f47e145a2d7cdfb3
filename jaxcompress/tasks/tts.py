"""TTS transfer tasks: the acoustic model (``tts``) and the CTC recogniser of log-mels (``tts_ctc``).

``tts`` trains :class:`~jaxcompress.nn.tts.FastSpeech` on a ``tts_<lang>``
dataset: L1 between predicted and reference log-mels (teacher-forced durations
from the synthesiser) plus the MSE of predicted ``log(1 + frames)``. Phones
reach the model in one of the paper's input schemes:

* ids: each phone (after ``model.phone_map``, the phone mapping) is looked up in
  ``model.symbols`` (default: the dataset's own inventory); a phone missing from
  it is an error that lists every missing phone;
* features: each phone is its phonological feature vector (PanPhon, or PHOIBLE
  from ``model.phoible_path``), plus a silence bit.

``model.init_from`` names a finished ``tts`` run whose parameters initialise this
one: every parameter is copied, and an embedding table that grew (the Nomap
scheme: new target phones appended to the source's symbols) keeps the source's
rows and its fresh initialisation for the new ones.

Metrics: ``loss``, ``mel_l1``, ``duration_mse``, and per utterance in evaluation
``mcd`` (dB, teacher-forced durations; see :mod:`jaxcompress.speech.vocoder`).

References: Do et al., SSW 2023 (arXiv 2306.12040); Ren et al., FastSpeech 2, ICLR 2021.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.configlib import option
from jaxcompress.errors import CheckpointError, ConfigError, DataError
from jaxcompress.nn.tts import FastSpeech, FastSpeechConfig, MelRecognizer, RecognizerConfig
from jaxcompress.phonology.features import feature_table
from jaxcompress.speech.ctc import ctc_loss, edit_distance, greedy_decode
from jaxcompress.speech.vocoder import MCD_ORDER
from jaxcompress.train.checkpoint import restore_params
from jaxcompress.train.task import Batch, Metrics, Task, register_task

_TTS_FEATURES = ("mel", "num_frames", "phones", "durations", "num_phones", "chars", "num_chars")


@dataclasses.dataclass
class TTSModelConfig:
    """The acoustic model and how phones reach it."""

    net: FastSpeechConfig = option(default_factory=FastSpeechConfig)
    symbols: tuple[str, ...] = option((), help="phone symbol table of the ids input ('' = the dataset's inventory)")
    phone_map: tuple[tuple[str, str], ...] = option((), help="(phone, replacement) pairs applied before lookup")
    feature_table: str = option("panphon", help="feature table of the features input", choices=("panphon", "phoible"))
    phoible_path: str = option("", help="phoible-segments-features.tsv (user-supplied) for feature_table=phoible")
    init_from: str = option("", help="workdir of a finished tts run whose parameters initialise this one")
    duration_weight: float = option(1.0, help="weight of the duration loss", min=0.0)
    max_frames: int = option(0, help="crop utterances to this many frames (0: the records' length); most "
                             "utterances are far shorter than the record, and decoder cost grows with it", min=0)


def _check_dataset(data_info: dict[str, Any], task: str, needed: tuple[str, ...] = _TTS_FEATURES) -> None:
    missing = [f for f in needed if f not in data_info["features"]]
    if missing:
        raise DataError(f"dataset {data_info['name']!r} cannot be used for task {task!r}: it lacks "
                        f"{', '.join(missing)} (use a tts_<language> dataset such as tts_bg)")


def dataset_metadata(config: Any) -> dict[str, Any]:
    """The ``info.metadata`` of ``config.data.name`` (phones, chars, texts)."""
    return dict(data_lib.load_split(config.data.name, "train", config.data.data_dir or None).info.metadata)


def mcd_from_log_mel(predicted: jax.Array, reference: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-utterance MCD [B] (dB) of log-mel power [B, T, M] over the real frames ``mask [B, T]``."""
    bins = predicted.shape[-1]
    n = np.arange(bins)
    basis = np.cos(np.pi * (n[:, None] + 0.5) * np.arange(MCD_ORDER + 1)[None, :] / bins) / bins
    diff = 0.5 * (predicted - reference) @ jnp.asarray(basis[:, 1:], jnp.float32)
    per_frame = (10.0 / math.log(10.0)) * jnp.sqrt(2.0 * jnp.sum(diff**2, -1) + 1e-12)
    return jnp.sum(per_frame * mask, -1) / jnp.maximum(mask.sum(-1), 1)


def transfer_params(boxed: Any, values: dict[str, Any], source: str) -> Any:
    """``boxed`` (fresh init) with the values of ``values`` copied in; a grown embedding keeps its new rows.

    Raises:
        CheckpointError: a parameter missing from ``values`` or shaped incompatibly.
    """
    flat_values = dict(jax.tree_util.tree_flatten_with_path(values)[0])
    is_box = lambda x: isinstance(x, nn.Partitioned)  # noqa: E731
    flat, treedef = jax.tree_util.tree_flatten_with_path(boxed, is_leaf=is_box)
    leaves = []
    for path, leaf in flat:
        fresh = leaf.value if is_box(leaf) else leaf
        value = flat_values.get(path)
        where = jax.tree_util.keystr(path)
        if value is None:
            raise CheckpointError(f"{source}: parameter {where} is missing (was it trained with the other input "
                                  f"kind?)")
        value = jnp.asarray(value)
        if value.shape != fresh.shape:
            if "phone_embedding" in where and value.shape[1:] == fresh.shape[1:] and value.shape[0] < fresh.shape[0]:
                value = fresh.at[:value.shape[0]].set(value)  # Nomap: new symbols keep their fresh rows
            else:
                raise CheckpointError(f"{source}: parameter {where} has shape {value.shape}, expected {fresh.shape}")
        leaves.append(leaf.replace_boxed(value) if is_box(leaf) else value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def symbol_lookup(phones: list[str], phone_map: dict[str, str], symbols: tuple[str, ...], dataset: str
                  ) -> tuple[np.ndarray, int]:
    """Model symbol id [len(phones)] of each dataset phone (after ``phone_map``), and the table size.

    Raises:
        DataError: phones (after mapping) missing from ``symbols``, all listed.
    """
    table = list(symbols) or list(phones)
    index = {s: i for i, s in enumerate(table)}
    mapped = [phone_map.get(p, p) for p in phones]
    missing = sorted({p for p in mapped if p not in index})
    if missing:
        raise DataError(f"dataset {dataset!r} has phone(s) missing from config key 'model.symbols': "
                        f"{' '.join(missing)} (add them, or map them with model.phone_map)")
    return np.array([index[p] for p in mapped], np.int32), len(table)


@register_task("tts")
class TTSTask(Task):
    """FastSpeech-style acoustic model on a ``tts_<lang>`` dataset (see the module docstring)."""

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = config.model
        if not isinstance(cfg, TTSModelConfig):
            raise ConfigError(f"task 'tts' needs a TTSModelConfig model (start from the preset tts-fastspeech); "
                              f"got {type(cfg).__name__}")
        _check_dataset(data_info, "tts")
        self.cfg = cfg
        phones = list(dataset_metadata(config)["phones"])
        net = cfg.net
        if net.input_kind == "ids":
            self.lookup, symbols = symbol_lookup(phones, dict(cfg.phone_map), cfg.symbols, data_info["name"])
            if net.num_symbols < symbols:
                net = dataclasses.replace(net, num_symbols=symbols)
        else:
            mapping = dict(cfg.phone_map)
            self.lookup = feature_table(cfg.feature_table, cfg.phoible_path).matrix([mapping.get(p, p) for p in phones])
        self.net = net
        # Read eagerly: init runs traced (under eval_shape and jit), where a checkpoint cannot be restored.
        self._source = (restore_params(cfg.init_from, field="config key 'model.init_from'") if cfg.init_from
                        else None)
        self.model = FastSpeech(net, deterministic=False)
        self.eval_model = FastSpeech(net, deterministic=True)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        phones = np.asarray(raw["phones"])
        phone_mask = np.arange(phones.shape[1])[None, :] < np.asarray(raw["num_phones"])[:, None]
        mel = np.asarray(raw["mel"], np.float32)
        durations = np.where(phone_mask, raw["durations"], 0).astype(np.int32)
        frames = np.asarray(raw["num_frames"])
        if self.cfg.max_frames and mel.shape[1] > self.cfg.max_frames:
            # Crop: phones past the last kept frame get no frames (their duration target stays real).
            mel = mel[:, :self.cfg.max_frames]
            ends = np.minimum(np.cumsum(durations, axis=1), self.cfg.max_frames)
            durations = np.diff(ends, axis=1, prepend=0).astype(np.int32)
            frames = np.minimum(frames, self.cfg.max_frames)
        batch = {"inputs": self.lookup[np.maximum(phones, 0)], "phone_mask": phone_mask, "durations": durations,
                 "duration_targets": np.where(phone_mask, raw["durations"], 0).astype(np.int32), "mel": mel,
                 "frame_mask": np.arange(mel.shape[1])[None, :] < frames[:, None]}
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        boxed = self.eval_model.init(rng, batch["inputs"], batch["phone_mask"], batch["durations"],
                                     batch["mel"].shape[1])["params"]
        if self._source is None:
            return boxed
        return transfer_params(boxed, self._source, f"config key 'model.init_from' = {self.cfg.init_from!r}")

    def _stats(self, model: FastSpeech, params: Any, batch: Batch, rngs: dict | None) -> dict[str, jax.Array]:
        out = model.apply({"params": params}, batch["inputs"], batch["phone_mask"], batch["durations"],
                          batch["mel"].shape[1], rngs=rngs)
        mask = batch["frame_mask"].astype(jnp.float32)
        l1 = jnp.sum(jnp.abs(out.mel - batch["mel"]).mean(-1) * mask, -1) / jnp.maximum(mask.sum(-1), 1)
        pmask = batch["phone_mask"].astype(jnp.float32)
        target = jnp.log1p(batch["duration_targets"].astype(jnp.float32))
        dur = jnp.sum((out.log_duration - target) ** 2 * pmask, -1) / jnp.maximum(pmask.sum(-1), 1)
        return {"mel_l1": l1, "duration_mse": dur, "mel": out.mel}

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        stats = self._stats(self.model, params, batch, {"dropout": rng})
        total = stats["mel_l1"].mean() + self.cfg.duration_weight * stats["duration_mse"].mean()
        return total, {"loss": total, "mel_l1": stats["mel_l1"].mean(), "duration_mse": stats["duration_mse"].mean()}

    def predict(self, params: Any, batch: Batch) -> jax.Array:
        """Log-mel power [B, T, M] with teacher-forced durations (inference mode)."""
        return self._stats(self.eval_model, params, batch, None)["mel"]

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        stats = self._stats(self.eval_model, params, batch, None)
        mcd = mcd_from_log_mel(stats["mel"], batch["mel"], batch["frame_mask"].astype(jnp.float32))
        return {"mel_l1": stats["mel_l1"], "duration_mse": stats["duration_mse"], "mcd": mcd}


@register_task("tts_ctc")
class RecognizerTask(Task):
    """CTC character recogniser of log-mels on a ``tts_<lang>`` dataset (the CER judge of synthesised speech).

    Metrics: ``loss``; in evaluation ``edits`` and ``ref_length`` per utterance (CER = sum edits / sum lengths).

    References: Graves et al., ICML 2006 (CTC).
    """

    def __init__(self, config: Any, data_info: dict[str, Any]):
        cfg = config.model
        if not isinstance(cfg, RecognizerConfig):
            raise ConfigError(f"task 'tts_ctc' needs a RecognizerConfig model (start from the preset tts-recognizer); "
                              f"got {type(cfg).__name__}")
        _check_dataset(data_info, "tts_ctc", ("mel", "num_frames", "chars", "num_chars"))
        chars = dataset_metadata(config)["chars"]
        self.cfg = dataclasses.replace(cfg, num_labels=len(chars))
        self.model = MelRecognizer(self.cfg)

    def prepare_batch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mel = np.asarray(raw["mel"], np.float32)
        batch = {"mel": mel, "frame_mask": np.arange(mel.shape[1])[None, :] < np.asarray(raw["num_frames"])[:, None],
                 "labels": np.asarray(raw["chars"], np.int32)}
        if "weight" in raw:
            batch["weight"] = np.asarray(raw["weight"], np.float32)
        return batch

    def init(self, rng: jax.Array, batch: Batch) -> Any:
        return self.model.init(rng, batch["mel"], batch["frame_mask"])["params"]

    def loss(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng
        logits = self.model.apply({"params": params}, batch["mel"], batch["frame_mask"])
        loss, feasible = ctc_loss(logits, batch["frame_mask"], batch["labels"])
        total = loss.sum() / jnp.maximum(feasible.sum(), 1.0)
        return total, {"loss": total}

    def evaluate(self, params: Any, batch: Batch) -> Metrics:
        return recognizer_errors(self.model, params, batch["mel"], batch["frame_mask"], batch["labels"])


def recognizer_errors(model: MelRecognizer, params: Any, mel: jax.Array, frame_mask: jax.Array,
                      labels: jax.Array) -> dict[str, jax.Array]:
    """Greedy-decoded character edits and reference lengths [B] of ``mel`` [B, T, M]."""
    logits = model.apply({"params": params}, mel, frame_mask)
    hyp, hyp_len = greedy_decode(logits, frame_mask)
    ref_len = (labels >= 0).sum(-1).astype(jnp.int32)
    edits = edit_distance(hyp, hyp_len, labels, ref_len)
    return {"edits": edits.astype(jnp.float32), "ref_length": ref_len.astype(jnp.float32)}
