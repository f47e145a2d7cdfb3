"""Mixed-vocabulary distillation: shared projection, transfer losses (against NumPy), and the stage tasks."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcompress.compress import mixed_vocab as M
from jaxcompress.nn.albert import AlbertConfig, AlbertForPreTraining
from jaxcompress.nn.albert_layers import hidden_states, mlm_logits, word_table


def test_layer_map_covers_each_student_layer_once_and_meets_at_the_top():
    for ls, lt in ((2, 4), (3, 4), (4, 4), (6, 4), (2, 12)):
        pairs = M.layer_map(ls, lt)
        assert [s for s, _ in pairs] == list(range(ls + 1))
        assert pairs[0] == (0, 0) and pairs[-1] == (ls, lt)
        assert all(1 <= t <= lt for _, t in pairs[1:]) and [t for _, t in pairs] == sorted(t for _, t in pairs)
    assert M.layer_map(4, 4) == [(i, i) for i in range(5)]


def test_word_pool_matches_a_python_loop():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 7, 3)).astype(np.float32)
    words = np.array([[-1, 0, 0, 1, 2, 2, -1], [-1, 0, 1, 1, 1, -1, -1]])
    pooled, counts = M.word_pool(jnp.asarray(hidden), jnp.asarray(words), 7)
    for b in range(2):
        for w in range(7):
            members = [hidden[b, s] for s in range(7) if words[b, s] == w]
            assert counts[b, w] == len(members)
            expected = np.mean(members, axis=0) if members else np.zeros(3)
            np.testing.assert_allclose(pooled[b, w], expected, rtol=1e-6, atol=1e-6)


def test_activation_and_weight_transfer_match_numpy():
    rng = np.random.default_rng(1)
    d_t, d_s, batch, length = 8, 4, 2, 6
    u = rng.normal(size=(d_t, d_s)).astype(np.float32)
    t_states = [rng.normal(size=(batch, length, d_t)).astype(np.float32) for _ in range(3)]
    s_states = [rng.normal(size=(batch, length, d_s)).astype(np.float32) for _ in range(2)]
    t_words = np.array([[-1, 0, 1, 1, 2, -1], [-1, 0, 0, 1, -1, -1]])
    s_words = np.array([[-1, 0, 0, 1, 2, -1], [-1, 0, 1, -1, -1, -1]])
    pairs = [(0, 0), (1, 2)]
    got = jax.jit(lambda t, s, u, tw, sw: M.activation_transfer(t, s, u, tw, sw, pairs))(
        t_states, s_states, u, t_words, s_words)
    expected = []
    for s, t in pairs:
        errors = []
        for b in range(batch):
            for w in range(length):
                tw, sw = t_words[b] == w, s_words[b] == w
                if tw.any() and sw.any():
                    a, c = t_states[t][b][tw].mean(0) @ u, s_states[s][b][sw].mean(0)
                    diff = (a - a.mean()) / np.sqrt(a.var() + 1e-6) - (c - c.mean()) / np.sqrt(c.var() + 1e-6)
                    errors.append(np.mean(diff ** 2))
        expected.append(np.mean(errors))
    np.testing.assert_allclose(got, np.mean(expected), rtol=1e-5)

    heads_t, heads_s = 2, 1
    teacher = {"attention": {n: {"kernel": rng.normal(size=(3, d_t, heads_t, d_t // heads_t)).astype(np.float32)}
                             for n in ("query", "key", "value")}}
    teacher["attention"]["output"] = {"kernel": rng.normal(size=(3, heads_t, d_t // heads_t, d_t)).astype(np.float32)}
    student = {"attention": {n: {"kernel": rng.normal(size=(2, d_s, heads_s, d_s)).astype(np.float32)}
                             for n in ("query", "key", "value")}}
    student["attention"]["output"] = {"kernel": rng.normal(size=(2, heads_s, d_s, d_s)).astype(np.float32)}
    pairs = [(0, 0), (1, 2), (2, 3)]
    got = jax.jit(lambda t, s, u: M.weight_transfer(t, s, u, pairs))(teacher, student, u)
    terms = []
    for s, t in pairs[1:]:
        for name in ("query", "key", "value", "output"):
            w_t = teacher["attention"][name]["kernel"][t - 1].reshape(d_t, d_t)
            w_s = student["attention"][name]["kernel"][s - 1].reshape(d_s, d_s)
            projected = u.T @ w_t @ u
            terms.append(np.mean((projected - w_s) ** 2) / np.mean(projected ** 2))
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-5)


@pytest.mark.parametrize("sharing, width", [("none", 32), ("all", 16), ("attention", 16), ("ffn", 32)])
def test_layerwise_forward_matches_the_scanned_encoder(sharing, width):
    # BERT (none) is what the method's models are; the shared (ALBERT) layouts and a factorised
    # embedding (width 16 < hidden 32) run through the same layer-by-layer path.
    cfg = AlbertConfig(vocab_size=50, embedding_size=width, hidden_size=32, num_layers=3, num_heads=2,
                       intermediate_size=64, sharing=sharing, max_position=16, dropout=0.0)
    ids = jax.random.randint(jax.random.key(1), (2, 10), 0, 50)
    mask = jnp.ones_like(ids).at[1, 7:].set(0)
    positions = jnp.array([[1, 2], [3, 4]])
    model = AlbertForPreTraining(cfg)
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), ids, None, mask, positions)["params"])
    out = jax.jit(model.apply)({"params": params}, ids, None, mask, positions)

    @jax.jit
    def layerwise(params):
        table = word_table(params["encoder"])
        states = hidden_states(cfg, params["encoder"], table[ids], None, mask)
        selected = jnp.take_along_axis(states[-1], positions[..., None], 1)
        return states, mlm_logits(cfg, params["mlm_head"], selected, table)

    states, logits = layerwise(params)
    assert len(states) == 4
    np.testing.assert_allclose(states[-1], out["sequence"], atol=2e-5)
    np.testing.assert_allclose(logits, out["mlm_logits"], atol=2e-5)


def test_size_breakdown_counts_the_word_table_and_int8_bytes():
    rng = np.random.default_rng(0)
    params = {"encoder": {"embeddings": {"word": {"embedding": rng.normal(size=(100, 8)).astype(np.float32)}},
                          "dense": {"kernel": rng.normal(size=(8, 8)).astype(np.float32),
                                    "bias": np.zeros(8, np.float32)}}}
    sizes = M.size_breakdown(params)
    assert sizes["params"] == 800 + 64 + 8 and sizes["word_embedding_params"] == 800
    assert sizes["float32_bytes"] == 4 * sizes["params"]
    assert sizes["embedding_share"] == pytest.approx(800 / 872)
    assert 872 < sizes["int8_bytes"] < 0.4 * sizes["float32_bytes"]  # one byte a weight plus scales


# ----------------------------------------------------------------------------
# the stage tasks on a tiny teacher


def _save(workdir, params):
    """A finished-run checkpoint of ``params`` (what ``restore_params`` reads), without training."""
    from jaxcompress.train.checkpoint import CheckpointStore

    store = CheckpointStore(workdir / "checkpoints", keep=1)
    store.save(1, {"params": params})
    store.wait()
    store.close()


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory):
    """A tiny BERT teacher checkpoint (random weights) and the stage-I config and task from it; the stage-I
    params it initialises are saved as a finished stage-I run."""
    from jaxcompress.configlib import apply_overrides
    from jaxcompress.configs import get_preset
    from jaxcompress.workflows.mixed_vocab import StudentPlan, _stage_config

    root = tmp_path_factory.mktemp("mixed-vocab")
    small = ["model.hidden_size=32", "model.embedding_size=32", "model.num_layers=2", "model.num_heads=1",
             "model.intermediate_size=64", "model.dropout=0.0", "text.max_seq_length=32", "data.batch_size=8"]
    pretrain = apply_overrides(get_preset("bert-tiny"), small)
    ids = jnp.zeros((1, 4), jnp.int32)
    _save(root / "teacher", nn.unbox(jax.jit(AlbertForPreTraining(pretrain.model).init)(jax.random.key(3), ids)["params"]))
    model = M.DualTrainingConfig(teacher=pretrain.model, teacher_workdir=str(root / "teacher"),
                                 student_vocab_size=1000, student_width=16, p_mix=0.5)
    config = _stage_config(pretrain, "dual", "mixed_vocab_dual", model, 1, 1e-2,
                           StudentPlan(layers=2, width=16, batch_size=8))
    task, batch = _task_and_batch(config)
    params = nn.unbox(jax.jit(task.init)(jax.random.key(0), batch))
    _save(root / "dual", params)
    return root, pretrain, config, task, batch


def _task_and_batch(config):
    from jaxcompress import data as data_lib
    from jaxcompress.train.build import make_task

    task = make_task(config, data_lib.dataset_info(config.data.name))
    source = data_lib.load_split(config.data.name, "train")
    return task, {k: jnp.asarray(v) for k, v in task.prepare_batch(source.read(np.arange(8))).items()}


def test_projection_is_one_parameter_shared_by_teacher_side_and_student_side_uses(stage_one):
    from jaxcompress.configlib import copy_config
    from jaxcompress.train.checkpoint import restore_params

    root, pretrain, dual_config, task, batch = stage_one
    dual = restore_params(root / "dual")
    assert set(dual) == {"student_embedding", "projection", "teacher"}
    assert dual["projection"].shape == (32, 16) and dual["student_embedding"].shape == (1000, 16)
    # The teacher inside stage I is the pretraining run's, unchanged.
    jax.tree.map(np.testing.assert_array_equal, dual["teacher"], restore_params(root / "teacher"))

    # Teacher-side use: a student piece enters the teacher as E_S[id] Uᵀ.
    params = jax.tree.map(jnp.asarray, dual)
    vectors = task.word_vectors(params, batch["input_ids"], batch["student_token"])
    b, s = np.argwhere(np.asarray(batch["student_token"]) == 1)[0]
    np.testing.assert_allclose(vectors[b, s], dual["student_embedding"][int(batch["input_ids"][b, s])]
                               @ dual["projection"].T, rtol=1e-5, atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: task.loss(p, batch, jax.random.key(0))[0]))(params)
    assert np.abs(grads["projection"]).sum() > 0 and np.abs(grads["student_embedding"]).sum() > 0
    tx = task.wrap_optimizer(optax.adam(1e-2))
    updates, _ = tx.update(grads, tx.init(params), params)
    assert np.abs(updates["projection"]).sum() > 0
    assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates["teacher"]))

    # Student-side uses (stage II) start from the same U and the learned table, and both transfers read it.
    student = AlbertConfig(**{**json.loads(json.dumps(pretrain.model.__dict__)), "vocab_size": 1000,
                              "hidden_size": 16, "embedding_size": 16, "intermediate_size": 64})
    config = copy_config(dual_config)
    config.task = "mixed_vocab_student"
    config.model = M.StudentTransferConfig(student=student, teacher=pretrain.model,
                                           teacher_workdir=str(root / "teacher"), dual_workdir=str(root / "dual"),
                                           transfer_activations=True, transfer_weights=True)
    task2, batch2 = _task_and_batch(config)
    params2 = nn.unbox(jax.jit(task2.init)(jax.random.key(0), batch2))
    leaves = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params2)[0]]
    assert [p for p in leaves if "projection" in p and "teacher" not in p] == ["['projection']"]
    np.testing.assert_array_equal(params2["projection"], dual["projection"])
    np.testing.assert_array_equal(params2["encoder"]["embeddings"]["word"]["embedding"], dual["student_embedding"])
    def term_grads(u):
        terms = ("activation_transfer", "weight_transfer")
        return [jax.grad(lambda v: task2.loss({**params2, "projection": v}, batch2, jax.random.key(0))[1][t])(u)
                for t in terms]

    for g in jax.jit(term_grads)(params2["projection"]):
        assert np.abs(g).sum() > 0


def test_student_stage_refuses_a_vocabulary_that_misses_corpus_characters(stage_one, tmp_path):
    from jaxcompress.configlib import copy_config
    from jaxcompress.data.text.tokenizer import train_tokenizer
    from jaxcompress.errors import DataError

    root, pretrain, dual_config, _, _ = stage_one
    narrow = train_tokenizer(["only a few plain words here", "and a second line of them"] * 50, 256,
                             tmp_path / "narrow.model")
    config = copy_config(dual_config)
    config.model.student_tokenizer = str(narrow.path)
    with pytest.raises(DataError, match="does not cover"):
        _task_and_batch(config)
