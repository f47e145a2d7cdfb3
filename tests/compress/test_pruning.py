"""Masks, scores, N:M, schedules and the optax wrapper against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcompress.compress import masks as M
from jaxcompress.compress.paths import select
from jaxcompress.compress.pruning import Pruner, prune_params, wrap
from jaxcompress.compress.schedules import Schedule
from jaxcompress.errors import ConfigError

RNG = np.random.default_rng(0)
PARAMS = {
    "dense_0": {"kernel": RNG.normal(size=(16, 8)).astype(np.float32), "bias": np.ones(8, np.float32)},
    "dense_1": {"kernel": RNG.normal(size=(8, 4)).astype(np.float32)},
    "embedding": RNG.normal(size=(10, 16)).astype(np.float32),
    "LayerNorm": {"scale": np.ones(16, np.float32)},
}


def test_selection_protects_embeddings_norms_and_biases_unless_named():
    chosen = select(PARAMS)
    assert chosen["dense_0"]["kernel"] and chosen["dense_1"]["kernel"]
    assert not chosen["dense_0"]["bias"] and not chosen["embedding"] and not chosen["LayerNorm"]["scale"]
    assert select(PARAMS, include="embedding")["embedding"]
    assert not select(PARAMS, exclude="dense_1")["dense_1"]["kernel"]
    with pytest.raises(ConfigError, match="rule 'dense_9' matches no parameter"):
        select(PARAMS, include="dense_9")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        select(PARAMS, include="(")


def _numpy_layerwise(w: np.ndarray, sparsity: float) -> np.ndarray:
    k = int(np.floor(sparsity * w.size))
    order = np.argsort(np.abs(w).ravel(), kind="stable")
    keep = np.ones(w.size, bool)
    keep[order[:k]] = False
    return keep.reshape(w.shape)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_layerwise_magnitude_matches_numpy(sparsity):
    masks, pruned = prune_params(PARAMS, Pruner("magnitude", sparsity, schedule="one_shot"))
    for name in ("dense_0", "dense_1"):
        expected = _numpy_layerwise(PARAMS[name]["kernel"], sparsity)
        np.testing.assert_array_equal(np.asarray(masks[name]["kernel"]), expected)
        np.testing.assert_array_equal(np.asarray(pruned[name]["kernel"]), PARAMS[name]["kernel"] * expected)
    assert masks["embedding"] is None and masks["dense_0"]["bias"] is None
    np.testing.assert_array_equal(np.asarray(pruned["embedding"]), PARAMS["embedding"])


def test_global_magnitude_uses_one_threshold():
    masks, _ = prune_params(PARAMS, Pruner("magnitude", 0.6, schedule="one_shot", scope="global"))
    weights = np.concatenate([PARAMS["dense_0"]["kernel"].ravel(), PARAMS["dense_1"]["kernel"].ravel()])
    threshold = np.sort(np.abs(weights))[int(0.6 * weights.size) - 1]
    for name in ("dense_0", "dense_1"):
        np.testing.assert_array_equal(np.asarray(masks[name]["kernel"]), np.abs(PARAMS[name]["kernel"]) > threshold)
    summary = M.sparsity_summary(M.apply_masks(PARAMS, masks), masks)
    assert summary["global"]["zeros"] == int(0.6 * weights.size)
    # Layers end at different sparsities under one threshold.
    assert summary["layers"]["dense_0/kernel"]["sparsity"] != summary["layers"]["dense_1/kernel"]["sparsity"]


def test_two_four_sparsity_keeps_two_largest_of_every_four_inputs():
    masks, _ = prune_params(PARAMS, Pruner("magnitude", n=2, m=4))
    w = np.abs(PARAMS["dense_0"]["kernel"])  # [in=16, out=8]
    expected = np.zeros_like(w, bool)
    for col in range(w.shape[1]):
        for start in range(0, w.shape[0], 4):
            top = np.argsort(w[start:start + 4, col])[-2:]
            expected[start + top, col] = True
    np.testing.assert_array_equal(np.asarray(masks["dense_0"]["kernel"]), expected)
    with pytest.raises(ConfigError, match="0 < n < m"):
        Pruner(n=4, m=4)


def test_two_four_sparsity_of_a_conv_groups_its_input_channels():
    kernel = RNG.normal(size=(3, 3, 8, 5)).astype(np.float32)  # [h, w, in, out]
    masks, _ = prune_params({"conv": {"kernel": kernel}}, Pruner("magnitude", n=2, m=4))
    got = np.asarray(masks["conv"]["kernel"])
    for i, j, start, o in np.ndindex(3, 3, 2, 5):
        group = np.abs(kernel[i, j, 4 * start:4 * start + 4, o])
        expected = np.zeros(4, bool)
        expected[np.argsort(group)[-2:]] = True
        np.testing.assert_array_equal(got[i, j, 4 * start:4 * start + 4, o], expected)


def test_bad_sparsity_is_rejected():
    with pytest.raises(ConfigError, match=r"prune.sparsity must be in \[0, 1\)"):
        Schedule("one_shot", 1.0)
    with pytest.raises(ConfigError, match="must be after"):
        Schedule("gradual", 0.5, start_step=10, end_step=5)


def test_gradual_schedule_is_zhu_and_gupta_cubic():
    schedule = Schedule("gradual", 0.8, start_step=100, end_step=300, frequency=50)
    for step in (0, 100, 150, 200, 250, 300, 400):
        t = min(max((step - 100) / 200, 0), 1)
        expected = 0.0 if step < 100 else 0.8 * (1 - (1 - t) ** 3)
        assert float(schedule.target(step)) == pytest.approx(expected, abs=1e-6)
    updates = [s for s in range(0, 500) if bool(schedule.is_update(s))]
    assert updates == [100, 150, 200, 250, 300]


def test_iterative_schedule_removes_the_same_fraction_each_round():
    schedule = Schedule("iterative", 0.875, start_step=0, end_step=300, rounds=3)
    assert [s for s in range(400) if bool(schedule.is_update(s))] == [100, 200, 300]
    assert [round(float(schedule.target(s)), 6) for s in (100, 200, 300)] == [0.5, 0.75, 0.875]


def _quadratic_problem():
    target = {"w": jnp.asarray(RNG.normal(size=(12, 6)).astype(np.float32))}

    def loss(params):
        return jnp.sum((params["w"] - target["w"]) ** 2)

    return target, loss


@pytest.mark.parametrize("score", ["magnitude", "saliency", "random"])
def test_wrapper_reaches_target_and_keeps_pruned_weights_zero(score):
    target, loss = _quadratic_problem()
    pruner = Pruner(score, 0.75, schedule="gradual", start_step=0, end_step=40, frequency=5)
    tx = wrap(optax.sgd(0.05), pruner)
    params = {"w": jnp.zeros((12, 6)) + 0.1}
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(60):
        params, state = step(params, state)
        mask = np.asarray(state.masks["w"])
        assert np.all(np.asarray(params["w"])[~mask] == 0.0)
    assert int((~np.asarray(state.masks["w"])).sum()) == int(0.75 * 72)
    if score == "magnitude":  # after the last update, the kept weights are the largest targets' weights
        kept = np.asarray(state.masks["w"])
        assert np.abs(np.asarray(target["w"]))[kept].min() >= np.abs(np.asarray(target["w"]))[~kept].max() - 0.3


def test_one_pruner_is_both_the_run_options_and_the_library_object():
    from jaxcompress.compress import Pruner as Exported
    from jaxcompress.train.config import Config

    assert Exported is Pruner and isinstance(Config().prune, Pruner)
    with pytest.raises(ConfigError, match="prune.method is 'none'"):
        wrap(optax.sgd(0.1), Pruner())
    with pytest.raises(ConfigError, match="end_step=-1"):
        wrap(optax.sgd(0.1), Pruner("magnitude", 0.5))
    with pytest.raises(ConfigError, match="prune.method must be one of"):
        Pruner("largest")
    pruner = Pruner("magnitude", 0.5, frequency=10)
    tx = wrap(optax.sgd(0.1), pruner, total_steps=40)  # end_step -> 30
    pruner.sparsity = 0.9  # the wrapper holds its own copy
    params = {"w": jnp.asarray(RNG.normal(size=(8, 8)).astype(np.float32))}
    state = tx.init(params)
    for _ in range(31):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        params = optax.apply_updates(params, updates)
    assert int((~np.asarray(state.masks["w"])).sum()) == 32


def test_movement_scores_accumulate_minus_grad_times_weight():
    pruner = Pruner("movement", 0.5, schedule="one_shot", start_step=3)
    tx = wrap(optax.sgd(0.1), pruner)
    params = {"w": jnp.asarray(RNG.normal(size=(4, 4)).astype(np.float32))}
    state = tx.init(params)
    expected = np.zeros((4, 4), np.float32)
    for _ in range(3):
        grads = {"w": 2 * params["w"] - 1.0}
        expected -= np.asarray(grads["w"]) * np.asarray(params["w"])
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(state.scores["w"]), expected, rtol=1e-5)


def test_soft_movement_scores_a_masked_weight_by_its_dense_value_and_can_give_it_back():
    # lr 0: only the pruner moves the weights. Step 1 masks w0 (score -1); step 2's gradient lifts
    # its score, computed with w0's dense value 1.0 (not the stored 0), back over the threshold.
    tx = wrap(optax.sgd(0.0), Pruner("soft_movement", schedule="one_shot", threshold=0.0))
    params = {"w": jnp.asarray([[1.0, 2.0]])}  # kernels (2-D leaves) are what the pruner selects
    state = tx.init(params)
    for grads, kept, weights, scores in (([[1.0, -1.0]], [[False, True]], [[0.0, 2.0]], [[-1.0, 2.0]]),
                                         ([[-3.0, 0.0]], [[True, True]], [[1.0, 2.0]], [[2.0, 2.0]])):
        updates, state = tx.update({"w": jnp.asarray(grads)}, state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_array_equal(np.asarray(state.masks["w"]), kept)
        np.testing.assert_allclose(np.asarray(params["w"]), weights)
        np.testing.assert_allclose(np.asarray(state.scores["w"]), scores)


def test_soft_movement_l1_pull_prunes_more():
    def sparsity(l1: float) -> float:
        tx = wrap(optax.sgd(0.05), Pruner("soft_movement", schedule="one_shot", threshold=0.0, soft_l1=l1))
        params = {"w": jnp.asarray(RNG.normal(size=(16, 16)).astype(np.float32))}
        target = jnp.asarray(np.random.default_rng(5).normal(size=(16, 16)).astype(np.float32))
        state = tx.init(params)
        for _ in range(30):
            updates, state = tx.update({"w": params["w"] - target}, state, params)
            params = optax.apply_updates(params, updates)
        return float(1 - np.asarray(state.masks["w"]).mean())

    low, high = sparsity(0.0), sparsity(0.5)
    assert 0.0 < low < high < 1.0, (low, high)


def test_pruning_inside_the_loop_on_a_sharded_mesh(tmp_path):
    from jaxcompress.configlib import apply_overrides
    from jaxcompress.configs import get_preset
    from jaxcompress.train import train

    config = apply_overrides(get_preset("digits-mlp-tiny"), [
        "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "prune.method=magnitude", "prune.sparsity=0.8",
        "prune.schedule=gradual", "prune.end_step=20", "prune.frequency=5"])
    summary = train(config, tmp_path, quiet=True)
    kernels = 64 * 32 + 32 * 32 + 32 * 10
    assert summary["sparsity"]["size"] == kernels
    assert summary["sparsity"]["zeros"] == sum(int(0.8 * n) for n in (64 * 32, 32 * 32, 32 * 10))


def test_masks_in_optimizer_state_shard_like_their_weights():
    from jax.sharding import PartitionSpec as P

    from jaxcompress import data as data_lib
    from jaxcompress.configlib import apply_overrides
    from jaxcompress.configs import get_preset
    from jaxcompress.train.build import make_task
    from jaxcompress.train.loop import Steps
    from jaxcompress.train.optim import learning_rate_schedule, make_optimizer
    from jaxcompress.train.sharding import build_mesh

    config = apply_overrides(get_preset("digits-mlp-tiny"), ["mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2",
                                                             "prune.method=movement"])
    task = make_task(config, data_lib.dataset_info("digits"))
    source = data_lib.load_split("digits", "train")
    tx = wrap(make_optimizer(config.optim, 40), config.prune, 40)
    steps = Steps(task, tx, learning_rate_schedule(config.optim, 40), task.prepare_batch(source.read(np.arange(1))),
                  build_mesh(config.mesh), config.logical_rules, 0)
    state = steps.init()
    prune_state = state.opt_state
    assert prune_state.masks["hidden_0"]["kernel"].sharding.spec == P("fsdp", "tensor")
    assert prune_state.scores["hidden_1"]["kernel"].sharding.spec == P("tensor", "fsdp")
    assert prune_state.masks["hidden_0"]["bias"] is None


def test_exact_counts_with_ties_and_signed_scores():
    scores = {"w": jnp.asarray(np.array([[-3e38, 0.0, 0.0, 0.0], [0.0, 2.0, 3e38, -1.0]], np.float32))}
    for sparsity, expected_pruned in [(0.25, [(0, 0), (1, 3)]), (0.5, [(0, 0), (1, 3), (0, 1), (0, 2)])]:
        mask = np.asarray(M.layerwise_masks(scores, sparsity)["w"])
        assert (~mask).sum() == len(expected_pruned)
        for index in expected_pruned:
            assert not mask[index]
