"""The mtal task: CenterNet targets decode back to the ground-truth boxes, the focal loss matches a NumPy port,
and the task trains in the one loop on a labelled row subset."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.configs import get_preset
from jaxcompress.data.builders import scenes as sc
from jaxcompress.nn.multitask import MultiTaskConfig, decode_detections
from jaxcompress.tasks.mtal import MultiTaskTask, centre_targets, focal_heatmap_loss
from jaxcompress.train import train

INFO = {"features": {"image": ((64, 64, 3), np.float32), "segmentation": ((64, 64), np.uint8),
                     "boxes": ((8, 4), np.int32), "classes": ((8,), np.int32)}}


def _records(count: int) -> dict[str, np.ndarray]:
    recs = [sc.render_scene(np.random.default_rng([3, i])) for i in range(count)]
    return {k: np.stack([r[k] for r in recs]) for k in recs[0]}


def test_targets_decode_back_to_the_ground_truth_boxes():
    config = get_preset("mtal-tiny")
    task = MultiTaskTask(config, INFO)
    assert task.grid == (16, 16) and task.stride == 4.0
    raw = _records(16)
    batch = task.prepare_batch(raw)
    assert batch["heat"].shape == (16, 16, 16, 3) and batch["seg_target"].shape == (16, 64, 64)
    # Perfect network outputs: heat logits from the target, exact size and offset maps.
    logits = jnp.log(jnp.clip(batch["heat"], 1e-6, 1 - 1e-6) / (1 - jnp.clip(batch["heat"], 1e-6, 1 - 1e-6)))
    dets = jax.device_get(decode_detections(logits, jnp.asarray(batch["size"]), jnp.asarray(batch["offset"]),
                                            task.stride, 20))
    checked = 0
    for i in range(16):
        n = int(raw["num_objects"][i])
        centres = [(int(raw["classes"][i, k]), tuple(((raw["boxes"][i, k, :2] + raw["boxes"][i, k, 2:]) / 8)
                                                      .astype(int))) for k in range(n)]
        if len(set(centres)) < n:
            continue  # two same-class objects in one cell: CenterNet keeps one
        found = dets["scores"][i] > 0.999
        got = sorted(map(tuple, np.round(dets["boxes"][i][found], 4).tolist()))
        want = sorted(map(tuple, raw["boxes"][i, :n].astype(float).tolist()))
        assert got == want
        assert sorted(dets["classes"][i][found].tolist()) == sorted(raw["classes"][i, :n].tolist())
        checked += 1
    assert checked >= 10


def test_centre_targets_peaks_and_focal_loss_against_numpy():
    boxes = np.asarray([[[4, 8, 12, 20], [0, 0, 0, 0]]], np.int32)
    t = centre_targets(boxes, np.asarray([[1, -1]]), (16, 16), 4.0, 3)
    assert t["heat"][0, 2, 3, 1] == 1.0 and t["heat"].max() == 1.0 and t["centre"].sum() == 1
    assert t["size"][0, 2, 3].tolist() == [2.0, 3.0] and t["offset"][0, 2, 3].tolist() == [0.0, 0.5]
    rng = np.random.default_rng(0)
    logits = rng.normal(size=t["heat"].shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    y = t["heat"].astype(np.float64)
    pos = y == 1
    ref = (-((1 - p) ** 2) * np.log(p))[pos].sum() + (-((1 - y) ** 4) * p ** 2 * np.log(1 - p))[~pos].sum()
    got = float(focal_heatmap_loss(jnp.asarray(logits), jnp.asarray(t["heat"]))[0])
    assert got == pytest.approx(ref / pos.sum(), rel=1e-5)


def test_mtal_loss_falls_with_a_few_optimizer_steps():
    """The task's loss and gradients on rendered scenes: 10 Adam steps on one batch cut the loss."""
    import optax

    config = get_preset("mtal-tiny")
    task = MultiTaskTask(config, INFO)
    batch = jax.tree.map(jnp.asarray, task.prepare_batch(_records(4)))
    params = jax.jit(lambda key: nn.unbox(task.init(key, batch)))(jax.random.key(0))  # eager init is slow
    tx = optax.adam(3e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        (loss, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, jax.random.key(1))
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, metrics

    first = None
    for _ in range(10):
        params, state, metrics = step(params, state)
        first = first or {k: float(v) for k, v in metrics.items()}
    assert float(metrics["loss"]) < 0.9 * first["loss"]
    assert set(first) == {"loss", "heat", "size", "offset", "seg"}
    per_image = jax.jit(task.evaluate)(params, {**batch, "weight": jnp.ones(4)})
    assert per_image["pixel_accuracy"].shape == (4,) and bool((per_image["pixel_accuracy"] <= 1).all())
    out = jax.jit(task.predict)(params, batch["input"][:2])
    assert out["boxes"].shape == (2, config.model.max_detections, 4) and out["seg"].shape == (2, 64, 64)
    assert isinstance(config.model, MultiTaskConfig)


def test_train_rows_restricts_the_loop_to_a_row_subset(tmp_path):
    """``data.train_rows`` reaches the loop: a listed subset trains, a row outside the split is refused."""
    config = get_preset("digits-mlp-tiny")
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"rows": [5, 6]}))
    config.data.train_rows = str(rows)
    config.data.batch_size, config.data.eval_split, config.steps = 8, "", 2
    summary = train(config, tmp_path / "run", quiet=True)
    assert summary["final_step"] == 2
    rows.write_text(json.dumps({"rows": [5000]}))
    with pytest.raises(Exception, match="outside"):
        train(config, tmp_path / "run2", quiet=True)


@pytest.mark.slow
def test_mtal_trains_in_the_loop_on_street_scenes(tmp_path):
    config = get_preset("mtal-tiny")
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"rows": [0, 3, 5, 8, 13, 21, 34, 55]}))
    config.data.train_rows = str(rows)
    config.steps, config.data.eval_split = 3, ""
    summary = train(config, tmp_path / "run", quiet=True)
    assert summary["final_step"] == 3
    for key in ("heat", "size", "offset", "seg"):
        assert np.isfinite(summary["train_metrics"][key])
