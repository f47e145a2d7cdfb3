"""HuggingFace BERT/ALBERT checkpoints: numerics against transformers' own Flax
(and, when installed, PyTorch) models on random weights they saved themselves,
export round trips, and clear errors."""

from __future__ import annotations

import json
import warnings

import jax
import numpy as np
import pytest

from jaxcompress.convert import (
    config_from_hf,
    export_hf_state,
    graft,
    import_hf_state,
    load_hf_checkpoint,
    read_state,
    save_hf_checkpoint,
)
from jaxcompress.errors import CheckpointError
from jaxcompress.nn.albert import AlbertConfig, AlbertEncoder, AlbertForPreTraining, AlbertForSequenceClassification

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", message=".*TensorFlow and JAX classes are deprecated.*")

TOL = 1e-5
RNG = np.random.default_rng(0)
IDS = RNG.integers(0, 99, (2, 12))
TYPES = RNG.integers(0, 2, (2, 12))
MASK = np.ones((2, 12), np.int32)
MASK[0, 8:] = 0  # a padded row


def _albert(**kw):
    base = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=40, max_position_embeddings=32)
    base.update(kw)
    return transformers.AlbertConfig(**base)


def _bert(**kw):
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                max_position_embeddings=32)
    base.update(kw)
    return transformers.BertConfig(**base)


def _leaves_equal(a, b) -> bool:
    return (jax.tree.structure(a) == jax.tree.structure(b)
            and all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


@pytest.mark.parametrize("family, kw", [
    ("albert", {}),
    ("albert", dict(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2, hidden_act="gelu")),
    # E == H: transformers' ALBERT still applies embedding_hidden_mapping_in (E -> H).
    ("albert", dict(embedding_size=32)),
    ("bert", {}),
], ids=["albert", "albert-groups-inner", "albert-embedding-equals-hidden", "bert"])
def test_flax_checkpoint_matches_transformers_flax_model(tmp_path, family, kw):
    cls = transformers.FlaxAlbertModel if family == "albert" else transformers.FlaxBertModel
    reference = cls(_albert(**kw) if family == "albert" else _bert(**kw), seed=3)
    reference.save_pretrained(tmp_path / "hf", safe_serialization=True)  # Flax names, [in, out] kernels
    config, params = load_hf_checkpoint(tmp_path / "hf")
    assert set(params) == {"encoder"}
    want = reference(IDS, attention_mask=MASK, token_type_ids=TYPES)
    seq, pooled = jax.jit(AlbertEncoder(config).apply)({"params": params["encoder"]}, IDS, TYPES, MASK)
    np.testing.assert_allclose(seq, want.last_hidden_state, atol=TOL)
    np.testing.assert_allclose(pooled, want.pooler_output, atol=TOL)

    # Export (PyTorch names) -> transformers reads it with its own converter -> same model.
    save_hf_checkpoint(params, config, tmp_path / "ours")
    reloaded = cls.from_pretrained(tmp_path / "ours", from_pt=True)
    again = reloaded(IDS, attention_mask=MASK, token_type_ids=TYPES)
    np.testing.assert_allclose(again.last_hidden_state, want.last_hidden_state, atol=TOL)
    # ... and re-import is exact.
    config2, params2 = load_hf_checkpoint(tmp_path / "ours")
    assert config2 == config and _leaves_equal(params, params2)


@pytest.mark.parametrize("family", ["albert", "bert"])
def test_pretraining_heads_match_transformers(tmp_path, family):
    if family == "albert":
        reference = transformers.FlaxAlbertForPreTraining(_albert(), seed=5)
    else:
        reference = transformers.FlaxBertForPreTraining(_bert(), seed=5)
    reference.save_pretrained(tmp_path, safe_serialization=True)
    config, params = load_hf_checkpoint(tmp_path)
    assert set(params) == {"encoder", "mlm_head", "sentence_head"}
    want = reference(IDS, attention_mask=MASK, token_type_ids=TYPES)
    got = jax.jit(AlbertForPreTraining(config).apply)({"params": params}, IDS, TYPES, MASK)
    np.testing.assert_allclose(got["mlm_logits"], want.prediction_logits, atol=TOL)
    sentence = want.sop_logits if family == "albert" else want.seq_relationship_logits
    np.testing.assert_allclose(got["sentence_logits"], sentence, atol=TOL)
    state = export_hf_state(params, config)
    prefix = f"{family}.embeddings.word_embeddings.weight"
    assert prefix in state and not any("decoder" in k for k in state)  # tied, as transformers saves it
    assert _leaves_equal(import_hf_state(state, config), params)


def test_pytorch_checkpoints_match_pytorch_models(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for family, model in (("albert", transformers.AlbertModel(_albert(num_hidden_groups=3))),
                          ("bert", transformers.BertModel(_bert()))):
        model.eval()
        with torch.no_grad():
            want = model(torch.tensor(IDS), attention_mask=torch.tensor(MASK), token_type_ids=torch.tensor(TYPES))
        for safe in (True, False):  # model.safetensors and pytorch_model.bin
            path = tmp_path / f"{family}-{safe}"
            model.save_pretrained(path, safe_serialization=safe)
            config, params = load_hf_checkpoint(path)
            seq, pooled = jax.jit(AlbertEncoder(config).apply)({"params": params["encoder"]}, IDS, TYPES, MASK)
            np.testing.assert_allclose(seq, want.last_hidden_state.numpy(), atol=TOL)
            np.testing.assert_allclose(pooled, want.pooler_output.numpy(), atol=TOL)


def test_config_json_round_trip_and_our_export_loads_in_transformers_config(tmp_path):
    ours = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_layers=4, num_heads=2,
                        intermediate_size=24, num_hidden_groups=2, hidden_act="gelu_tanh", max_position=20)
    shapes = jax.eval_shape(AlbertForPreTraining(ours).init, jax.random.key(0), np.zeros((1, 4), np.int32))
    params = jax.tree.map(lambda s: RNG.normal(size=s.shape).astype(np.float32),
                          jax.tree.map(lambda b: b.value if hasattr(b, "value") else b, shapes["params"],
                                       is_leaf=lambda b: hasattr(b, "names")))
    save_hf_checkpoint(params, ours, tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["architectures"] == ["AlbertForPreTraining"] and hf["hidden_act"] == "gelu_new"
    loaded = transformers.AlbertConfig.from_pretrained(tmp_path)
    assert (loaded.num_hidden_groups, loaded.embedding_size, loaded.max_position_embeddings) == (2, 8, 20)
    back = config_from_hf(hf)
    assert (back.num_hidden_groups, back.embedding_size, back.hidden_act, back.sharing) == (2, 8, "gelu_tanh", "all")
    config, reread = load_hf_checkpoint(tmp_path)
    assert _leaves_equal(reread, params)


def test_shape_mismatch_names_the_tensor_and_shapes(tmp_path):
    transformers.FlaxAlbertModel(_albert(), seed=0).save_pretrained(tmp_path, safe_serialization=True)
    wrong = config_from_hf(json.loads((tmp_path / "config.json").read_text()))
    wrong.intermediate_size = 48
    with pytest.raises(CheckpointError) as info:
        load_hf_checkpoint(tmp_path, wrong)
    message = str(info.value)
    assert "'encoder.albert_layer_groups.0.albert_layers.0.ffn.kernel' has shape (32, 40)" in message
    assert "expects (32, 48)" in message and "encoder/transformer/layers/ffn/intermediate/kernel" in message


def test_wrong_family_missing_tensor_and_bad_files(tmp_path):
    transformers.FlaxBertModel(_bert(), seed=0).save_pretrained(tmp_path / "bert", safe_serialization=True)
    state = read_state(tmp_path / "bert")
    albert = AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_layers=2, num_heads=4,
                          intermediate_size=40, max_position=32)
    with pytest.raises(CheckpointError, match="holds a BERT checkpoint but the model config"):
        import_hf_state(state, albert)
    bert = config_from_hf(json.loads((tmp_path / "bert" / "config.json").read_text()))
    del state["encoder.layer.1.output.dense.kernel"]
    with pytest.raises(CheckpointError, match="no tensor 'encoder.layer.1.output.dense.kernel'"):
        import_hf_state(state, bert)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(CheckpointError, match="cannot read safetensors file"):
        read_state(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state(tmp_path / "nowhere.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no model.safetensors"):
        load_hf_checkpoint(tmp_path / "empty", bert)
    with pytest.raises(CheckpointError, match="model_type 'gpt2'"):
        config_from_hf({"model_type": "gpt2"})
    mixed = AlbertConfig(sharing="attention")
    with pytest.raises(CheckpointError, match="sharing='attention' has no transformers equivalent"):
        export_hf_state({"encoder": {}}, mixed)


def test_graft_pretrained_encoder_into_a_classifier(tmp_path):
    transformers.FlaxAlbertModel(_albert(), seed=0).save_pretrained(tmp_path, safe_serialization=True)
    config, params = load_hf_checkpoint(tmp_path)
    model = AlbertForSequenceClassification(config, num_classes=3)
    fresh = jax.eval_shape(model.init, jax.random.key(0), IDS)["params"]
    fresh = jax.tree.map(lambda b: b.replace_boxed(np.zeros(b.value.shape, np.float32)), fresh,
                         is_leaf=lambda b: hasattr(b, "names"))
    grafted = graft(fresh, {"encoder": params["encoder"]})
    assert grafted["encoder"]["embeddings"]["word"]["embedding"].names == ("vocab", "embed")  # boxes kept
    np.testing.assert_array_equal(grafted["encoder"]["pooler"]["kernel"].value, params["encoder"]["pooler"]["kernel"])
    bad = {"encoder": {"pooler": {"kernel": np.zeros((3, 3), np.float32)}}}
    with pytest.raises(CheckpointError, match=r"encoder/pooler/kernel has shape \(3, 3\) in the checkpoint"):
        graft(fresh, bad)


def test_unmapped_encoder_tensor_is_an_error_naming_it(tmp_path):
    transformers.FlaxBertModel(_bert(), seed=0).save_pretrained(tmp_path, safe_serialization=True)
    state = read_state(tmp_path)
    config = config_from_hf(json.loads((tmp_path / "config.json").read_text()))
    # A third layer the 2-layer config has no place for, and a stray tensor in layer 0.
    state["encoder.layer.2.attention.self.query.kernel"] = np.zeros((32, 32), np.float32)
    state["encoder.layer.0.attention.self.extra.kernel"] = np.zeros((32, 32), np.float32)
    with pytest.raises(CheckpointError) as info:
        import_hf_state(state, config, source="ckpt")
    message = str(info.value)
    assert "'encoder.layer.0.attention.self.extra.kernel'" in message
    assert "'encoder.layer.2.attention.self.query.kernel'" in message
    assert "encoder.layer.[0-1].attention.self.query" in message  # what the config allows
    assert "strict=False" in message
    # The same through load_hf_checkpoint, which is strict by default.
    from safetensors.numpy import save_file
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="encoder.layer.2.attention.self.query.kernel"):
        load_hf_checkpoint(tmp_path)


def test_unmapped_encoder_tensor_with_strict_false_warns_and_skips(tmp_path):
    transformers.FlaxBertModel(_bert(), seed=0).save_pretrained(tmp_path, safe_serialization=True)
    state = read_state(tmp_path)
    state["encoder.layer.2.output.dense.kernel"] = np.zeros((40, 32), np.float32)
    from safetensors.numpy import save_file
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.warns(UserWarning, match="encoder.layer.2.output.dense.kernel") as record:
        config, params = load_hf_checkpoint(tmp_path, strict=False)
    assert len(record) == 1 and "skipp" in str(record[0].message)
    assert set(params) == {"encoder"}


def test_heads_not_asked_for_are_skipped_with_a_warning(tmp_path):
    transformers.FlaxAlbertForPreTraining(_albert(), seed=5).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.warns(UserWarning) as record:
        config, params = load_hf_checkpoint(tmp_path, heads=False)  # the encoder only
    assert set(params) == {"encoder"}
    message = " ".join(str(r.message) for r in record)
    assert "predictions.dense.kernel" in message and "sop_classifier.classifier.kernel" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for: loaded, no warning
        _, full = load_hf_checkpoint(tmp_path)
    assert set(full) == {"encoder", "mlm_head", "sentence_head"}
    assert _leaves_equal(full["encoder"], params["encoder"])
    # A fine-tuned classifier has no place in our tree: skipped with a warning, even when strict.
    state = read_state(tmp_path)
    state["classifier.kernel"] = np.zeros((32, 2), np.float32)
    with pytest.warns(UserWarning, match="'classifier.kernel'"):
        import_hf_state(state, config, strict=True)
