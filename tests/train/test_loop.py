"""The training loop in-process: outputs, real sharding, restore onto another mesh."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxcompress import data as data_lib
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.errors import CheckpointError, ConfigError, MeshError, WorkdirError
from jaxcompress.train import train
from jaxcompress.train.build import make_task
from jaxcompress.train.checkpoint import CheckpointStore
from jaxcompress.train.loop import Steps
from jaxcompress.train.optim import learning_rate_schedule, make_optimizer
from jaxcompress.train.sharding import build_mesh


def tiny(*overrides: str):
    return apply_overrides(get_preset("digits-mlp-tiny"), list(overrides))


def test_tiny_run_writes_everything_and_learns(tmp_path):
    summary = train(tiny(), tmp_path, quiet=True)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["final_step"] == 40 and summary["process_count"] == 1
    assert len(summary["params_sha256"]) == 64 and summary["num_devices"] == 8
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(5, 41, 5))
    assert train_losses[-1] < 0.7 * train_losses[0]
    assert summary["eval_metrics"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [20, 40]
    assert json.loads((tmp_path / "config.json").read_text())["name"] == "digits-mlp-tiny"


@pytest.mark.parametrize("variant", ["steps_per_call=4", "data.device_prefetch=4"])
def test_batched_calls_and_transfers_train_the_same_model(tmp_path, variant):
    """A scan over 4 batches per call, or blocks of 4 batches per transfer (a partial block at the end), give
    the one-batch-at-a-time run's losses, checkpoints and parameters; logs, evaluations and checkpoints
    still land on their steps (calls are cut short before them)."""
    from jaxcompress.train.checkpoint import restore_params

    common = ["steps=23", "log_every=3", "eval_every=10", "checkpoint_every=10"]
    train(tiny(*common, "data.device_prefetch=1"), tmp_path / "one", quiet=True)
    many = train(tiny(*common, variant), tmp_path / "many", quiet=True)
    assert many["final_step"] == 23
    by_step = {}
    for name in ("one", "many"):
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        by_step[name] = {(r["split"], r["step"]): r.get("loss") for r in records}
    assert by_step["one"].keys() == by_step["many"].keys()
    assert [s for split, s in by_step["many"] if split == "train"] == [3, 6, 9, 12, 15, 18, 21, 23]
    for key, loss in by_step["one"].items():
        if loss is not None:
            np.testing.assert_allclose(by_step["many"][key], loss, rtol=1e-5)
    for name in ("one", "many"):
        saved = sorted(int(p.name) for p in (tmp_path / name / "checkpoints").iterdir() if p.name.isdigit())
        assert saved == [10, 20, 23]
    final_one, final_many = restore_params(tmp_path / "one"), restore_params(tmp_path / "many")
    for a, b in zip(jax.tree.leaves(final_one), jax.tree.leaves(final_many)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_resume_inside_a_transfer_block_trains_the_same_model(tmp_path):
    """Resuming at step 5 with blocks of 8 (slots 5-7 of the first block, then whole blocks) ends where an
    uninterrupted one-batch-at-a-time run ends."""
    import shutil

    from jaxcompress.train.checkpoint import restore_params

    common = ["steps=23", "checkpoint_every=5", "keep_checkpoints=10", "model.dropout=0.1"]
    train(tiny(*common, "data.device_prefetch=1"), tmp_path / "reference", quiet=True)
    shutil.copytree(tmp_path / "reference" / "checkpoints" / "5", tmp_path / "resumed" / "checkpoints" / "5")
    summary = train(tiny(*common, "data.device_prefetch=8"), tmp_path / "resumed", quiet=True)
    assert summary["resumed_from_step"] == 5
    reference, resumed = restore_params(tmp_path / "reference"), restore_params(tmp_path / "resumed")
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def _steps_for(config):
    mesh = build_mesh(config.mesh)
    source = data_lib.load_split(config.data.name, "train")
    task = make_task(config, data_lib.dataset_info(config.data.name))
    tx = make_optimizer(config.optim, config.steps)
    example = task.prepare_batch(source.read(np.arange(1)))
    steps = Steps(task, tx, learning_rate_schedule(config.optim, config.steps), example, mesh,
                  config.logical_rules, config.seed)
    return steps, source, task


def test_params_and_optimizer_state_are_really_sharded():
    config = tiny("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2")
    steps, source, task = _steps_for(config)
    state = steps.init()
    local = task.prepare_batch(data_lib.train_batch(source, 0, 32, 0))
    state, _ = steps.train(state, steps.global_batch(local))
    kernel = state.params["hidden_0"]["kernel"]  # [64, 32], (embed, mlp) -> (fsdp, tensor)
    assert kernel.sharding.spec == P("fsdp", "tensor")
    assert {s.data.shape for s in kernel.addressable_shards} == {(32, 16)}
    assert state.params["hidden_1"]["kernel"].sharding.spec == P("tensor", "fsdp")
    adam_mu = state.opt_state[1][0].mu["hidden_0"]["kernel"]
    assert adam_mu.sharding.spec == P("fsdp", "tensor")
    batch = steps.global_batch(local)
    assert batch["input"].sharding.spec == P(("data", "fsdp"))
    assert {s.data.shape[0] for s in batch["input"].addressable_shards} == {8}


def test_metric_sums_add_up_each_steps_metrics():
    steps, source, task = _steps_for(tiny())
    batches = [steps.global_batch(task.prepare_batch(data_lib.train_batch(source, s, 32, 0))) for s in (0, 1)]
    state, first = steps.train(steps.init(), batches[0])
    _, second = steps.train(state, batches[1])
    state, sums = steps.train(steps.init(), batches[0])
    _, sums = steps.train(state, batches[1], sums)
    assert set(sums) == set(first) >= {"loss", "grad_norm", "learning_rate"}
    for name in sums:
        np.testing.assert_allclose(sums[name], first[name] + second[name], rtol=1e-6)


def test_restore_onto_a_different_mesh(tmp_path):
    saved_steps, _, _ = _steps_for(tiny())  # data=8
    state = saved_steps.init()
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    store.save(7, state)
    store.wait()
    new_steps, _, _ = _steps_for(tiny("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2"))
    step, restored = CheckpointStore(tmp_path / "ckpt", keep=2).restore_latest(new_steps.abstract_state)
    assert step == 7
    kernel = restored.params["hidden_0"]["kernel"]
    assert kernel.sharding.spec == P("fsdp", "tensor")
    np.testing.assert_array_equal(np.asarray(kernel), np.asarray(state.params["hidden_0"]["kernel"]))


def test_corrupt_checkpoints_fall_back_then_fail_clearly(tmp_path, capsys):
    steps, _, _ = _steps_for(tiny())
    store = CheckpointStore(tmp_path, keep=3)
    for step in (10, 20):
        store.save(step, steps.init())
    store.wait()
    for path in (tmp_path / "20").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    step, _ = CheckpointStore(tmp_path, keep=3).restore_latest(steps.abstract_state)
    assert step == 10
    err = capsys.readouterr().err
    assert "checkpoint" in err and "cannot be restored" in err and "falling back" in err
    assert list(tmp_path.glob("corrupt-20-*")) and not (tmp_path / "20").exists()
    for path in (tmp_path / "10").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="none of the checkpoints in .* can be restored"):
        CheckpointStore(tmp_path, keep=3).restore_latest(steps.abstract_state)


@pytest.mark.parametrize("overrides, error, message", [
    (("mesh.fsdp=3",), MeshError, "does not divide the 8 devices"),
    (("data.batch_size=12",), ConfigError, "'data.batch_size' = 12 must be a multiple of mesh data x fsdp = 8"),
    (("optim.learning_rate=-1",), ConfigError, "'optim.learning_rate' must be > 0"),
])
def test_bad_config_fails_before_any_output(tmp_path, overrides, error, message):
    workdir = tmp_path / "run"
    with pytest.raises(error, match=None) as info:
        train(tiny(*overrides), workdir, quiet=True)
    assert message in str(info.value)
    assert not workdir.exists()


def test_unusable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorkdirError, match="is not a directory"):
        train(tiny(), blocker, quiet=True)
    with pytest.raises(WorkdirError, match="is not writable"):
        train(tiny(), blocker / "sub", quiet=True)
    with pytest.raises(WorkdirError, match="mount the bucket"):
        train(tiny(), "gs://bucket/run", quiet=True)


def test_train_step_flops_count_the_whole_step_at_the_run_shapes():
    """XLA's count of the step against a hand count of its matrix products: forward, weight gradients, and
    input gradients of every layer but the first (elementwise work and Adam add a little on top)."""
    from jaxcompress.train.loop import train_step_flops

    config = tiny()  # MLP 64 -> 32 -> 32 -> 10, batch 32
    widths = [64, *config.model.hidden_sizes, 10]
    products = [a * b for a, b in zip(widths[:-1], widths[1:])]
    batch = config.data.batch_size
    by_hand = 2 * batch * (2 * sum(products) + sum(products[1:]))
    flops = train_step_flops(config)
    assert by_hand <= flops <= 1.25 * by_hand
    doubled = train_step_flops(apply_overrides(config, [f"data.batch_size={2 * batch}"]))
    assert 1.8 * flops <= doubled <= 2.0 * flops
