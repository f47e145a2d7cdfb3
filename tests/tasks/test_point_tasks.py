"""point_ssl / point_cls: configuration and data errors, and (slow) training through the loop on 8 devices.

References: Pang et al., Point-MAE, ECCV 2022; He et al., MoCo, CVPR 2020; Romanelis et al., ExpPoint-MAE.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.tasks.point import PointClassificationTask, PointSSLTask

INFO = {"name": "clouds", "features": {"points": ((64, 3), np.dtype("float32")), "label": ((), np.dtype("int64"))},
        "num_classes": 5}


def _config(*overrides: str):
    return apply_overrides(get_preset("point-mae-tiny"), list(overrides))


def test_missing_or_small_point_feature_is_refused():
    with pytest.raises(DataError, match="no feature 'xyz'"):
        PointSSLTask(_config("model.points_field=xyz"), INFO)
    small = {**INFO, "features": {**INFO["features"], "points": ((8, 3), np.dtype("float32"))}}
    with pytest.raises(DataError, match="at least 16"):
        PointSSLTask(_config(), small)


def test_queue_must_take_whole_batches_and_scratch_has_no_init():
    with pytest.raises(ConfigError, match="queue_size"):
        PointSSLTask(_config("model.method=moco", "model.queue_size=100"), INFO)
    with pytest.raises(ConfigError, match="init_from"):
        PointClassificationTask(_config("task=point_cls", "model.regime=scratch", "model.init_from=/x"), INFO)


def test_prepare_batch_refuses_nan_clouds_and_bad_labels():
    task = PointClassificationTask(_config("task=point_cls"), INFO)
    points = np.zeros((2, 64, 3), np.float32)
    assert task.prepare_batch({"points": points, "label": np.array([0, 4])})["label"].dtype == np.int32
    with pytest.raises(DataError, match="outside"):
        task.prepare_batch({"points": points, "label": np.array([0, 5])})
    points[0, 0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        task.prepare_batch({"points": points, "label": np.array([0, 1])})


@pytest.mark.slow
def test_hybrid_pretraining_then_unfreezing_on_eight_devices(tmp_path):
    import jax

    from jaxcompress.train import train
    from jaxcompress.train.checkpoint import restore_params

    assert jax.device_count() == 8
    config = _config("model.method=hybrid", "model.queue_size=32", "steps=3")
    summary = train(config, tmp_path / "pre", quiet=True)
    assert summary["mesh"]["data"] == 8 and np.isfinite(summary["train_metrics"]["loss"])
    params = restore_params(tmp_path / "pre")
    assert float(params["queue_ptr"]) == (3 * 16) % 32  # three batches of 16 entered the queue
    moved = np.abs(params["key"]["encoder"]["patch_embed"]["conv1"]["kernel"]
                   - params["encoder"]["patch_embed"]["conv1"]["kernel"]).max()
    assert moved > 0  # the key encoder trails the query encoder
    tuned = _config("task=point_cls", "model.regime=probe", f"model.init_from={tmp_path / 'pre'}",
                    "data.train_split=train", "data.eval_split=test", "steps=3")
    summary = train(tuned, tmp_path / "ft", quiet=True)
    after = restore_params(tmp_path / "ft")
    np.testing.assert_array_equal(after["encoder"]["blocks"]["block_0"]["fc1"]["kernel"],
                                  params["encoder"]["blocks"]["block_0"]["fc1"]["kernel"])  # frozen, no decay
    assert 0.0 <= summary["eval_metrics"]["accuracy"] <= 1.0
