"""The text tasks through the real loop: pretraining, resume, fine-tuning from a checkpoint, bad input.

Models are shrunk far below ``albert-tiny`` (H = 32, two shared layers,
64 tokens) so every run takes seconds; the pretraining run goes through the
``jaxcompress`` command on 8 virtual devices.
"""

import json
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import jaxcompress.configs.albert  # noqa: F401  (registers albert-tiny)
import jaxcompress.configs.text  # noqa: F401  (registers albert-tiny-topic / -pair)
from jaxcompress import data
from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.data.text.tokenizer import corpus_tokenizer
from jaxcompress.errors import CheckpointError, ConfigError, DataError
from jaxcompress.train import train
from jaxcompress.train.build import make_task
from tests.helpers import read_metrics, read_summary, run_cli

SMALL = ["model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64", "model.num_layers=2",
         "model.embedding_size=16", "model.max_position=64", "text.max_seq_length=64"]
FAST = ["data.batch_size=16", "data.eval_batch_size=32", "data.eval_split=validation[:32]", "eval_every=0",
        "log_every=2"]


def _config(preset: str, *overrides: str):
    return apply_overrides(get_preset(preset), SMALL + FAST + list(overrides))


PRETRAIN = ["steps=10", "checkpoint_every=5", "optim.learning_rate=1e-2", "optim.warmup_steps=0"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A pretraining workdir of the albert-tiny preset (shrunk), 10 steps on 8 devices."""
    workdir = tmp_path_factory.mktemp("pretrain")
    train(_config("albert-tiny", *PRETRAIN), workdir, quiet=True)
    return workdir


def test_pretraining_runs_through_the_loop_and_mlm_loss_falls(pretrained):
    summary = read_summary(pretrained)
    assert summary["final_step"] == 10 and summary["num_devices"] == 8
    records = read_metrics(pretrained)
    assert {"mlm_loss", "mlm_accuracy", "sop_accuracy", "sentence_loss", "loss"} <= set(records[0])
    # From ln(V) ~ 8.9 the masked LM quickly learns the token frequencies.
    assert records[0]["mlm_loss"] > 8.0 and records[-1]["mlm_loss"] < records[0]["mlm_loss"] - 0.3
    evaluation = summary["eval_metrics"]
    assert {"mlm_loss", "mlm_accuracy", "sop_accuracy"} <= set(evaluation)
    assert 0.0 <= evaluation["sop_accuracy"] <= 1.0
    assert json.loads((pretrained / "config.json").read_text())["task"] == "mlm_sop"


def test_resume_is_exact(pretrained, tmp_path):
    # Drop the last checkpoint: the rerun resumes at step 5 and must reproduce step 10 bit for bit.
    workdir = tmp_path / "resumed"
    shutil.copytree(pretrained, workdir)
    shutil.rmtree(workdir / "checkpoints" / "10")
    summary = train(_config("albert-tiny", *PRETRAIN), workdir, quiet=True)
    assert summary["resumed_from_step"] == 5
    assert summary["params_sha256"] == read_summary(pretrained)["params_sha256"]


def test_the_command_line_knows_the_presets_and_reports_bad_lengths(tmp_path):
    result = run_cli("train", "albert-tiny", "--workdir", str(tmp_path), "--set", "text.max_seq_length=1000")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config key 'text.max_seq_length' = 1000 is longer than the position table, model.max_position = "
        "128; lower text.max_seq_length or raise model.max_position")


def test_batches_depend_only_on_seed_and_step():
    config = _config("albert-tiny")
    task = make_task(config, data.dataset_info("pydocs_pretrain"))
    source = data.load_split("pydocs_pretrain", "train")
    first = task.prepare_batch(data.train_batch(source, 3, 16, seed=0))
    again = make_task(config, data.dataset_info("pydocs_pretrain")).prepare_batch(
        data.train_batch(source, 3, 16, seed=0))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    reseeded = make_task(apply_overrides(config, ["data.seed=1"]), data.dataset_info("pydocs_pretrain"))
    other = reseeded.prepare_batch(data.train_batch(source, 3, 16, seed=1))
    assert not np.array_equal(first["input_ids"], other["input_ids"])
    assert first["input_ids"].shape == (16, 64) and first["masked_positions"].shape == (16, 20)


def test_finetuning_starts_from_the_pretrained_encoder(pretrained, tmp_path):
    config = _config("albert-tiny-pair", f"text.init_from={pretrained}", "steps=2")
    task = make_task(config, data.dataset_info("pydocs_pair"))
    batch = task.prepare_batch(data.train_batch(data.load_split("pydocs_pair", "train"), 0, 16, 0))
    assert batch["token_type_ids"].max() == 1  # two segments
    params = jax.tree.map(np.asarray, __import__("flax").linen.unbox(task.init(jax.random.key(0), batch)))
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(pretrained / "checkpoints") as manager:
        saved = manager.restore(10, args=ocp.args.StandardRestore())["params"]
    for got, want in zip(jax.tree.leaves(params["encoder"]), jax.tree.leaves(saved["encoder"])):
        np.testing.assert_array_equal(got, np.asarray(want))
    assert "classifier" in params and "mlm_head" not in params
    summary = train(config, tmp_path / "pair", quiet=True)
    assert summary["final_step"] == 2 and 0.0 <= summary["eval_metrics"]["accuracy"] <= 1.0


def test_init_from_a_model_of_another_size_names_the_mismatch(pretrained):
    config = _config("albert-tiny-topic", f"text.init_from={pretrained}", "model.intermediate_size=48")
    with pytest.raises(CheckpointError, match=r"encoder\['transformer'\].* has shape \(64,\) in the checkpoint "
                                              r"but \(48,\) in this model"):
        # Shapes only (eval_shape): the check happens while tracing, before any weight is computed.
        jax.eval_shape(make_task(config, data.dataset_info("pydocs_topic")).init, jax.random.key(0),
                       _topic_batch(config))
    with pytest.raises(CheckpointError, match="no checkpoints"):
        make_task(_config("albert-tiny-topic", "text.init_from=/no/such/run"), data.dataset_info("pydocs_topic"))


def _topic_batch(config):
    task = make_task(apply_overrides(config, ["text.init_from="]), data.dataset_info("pydocs_topic"))
    return task.prepare_batch(data.train_batch(data.load_split("pydocs_topic", "train"), 0, 4, 0))


@pytest.mark.parametrize("overrides, error, message", [
    (["text.text_field=body"], DataError, "no feature 'body' (config key 'text.text_field'); its features are: "
                                          "document, label, module, text"),
    (["text.label_field=module"], DataError, "must be a ClassLabel"),
    (["text.max_seq_length=100"], ConfigError, "'text.max_seq_length' = 100 is longer than the position table, "
                                                "model.max_position = 64"),
])
def test_bad_input_is_one_clear_error(overrides, error, message, tmp_path):
    with pytest.raises(error) as info:
        train(_config("albert-tiny-topic", *overrides), tmp_path, quiet=True)
    assert message in str(info.value)
    assert not (tmp_path / "summary.json").exists()


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    big = corpus_tokenizer(vocab_size=8000)
    with pytest.raises(ConfigError, match=f"has {big.vocab_size} pieces but model.vocab_size = 1000"):
        train(_config("albert-tiny-topic", "model.vocab_size=1000", f"text.tokenizer_file={big.path}"), tmp_path,
              quiet=True)


def test_pretraining_needs_a_pretraining_dataset(tmp_path):
    with pytest.raises(DataError, match="lacks the feature\\(s\\) other, seed"):
        train(_config("albert-tiny", "data.name=pydocs_topic"), tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="needs an ALBERT/BERT model config"):
        train(apply_overrides(get_preset("digits-mlp-tiny"), ["task=mlm_sop"]), tmp_path, quiet=True)


class _TinySentiment(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GLUE-SST-2-shaped dataset written from text here (nothing downloaded): sentence, label, idx."""

    VERSION = tfds.core.Version("2.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="sst2")]
    url_infos = None
    name = "tiny_glue"

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "sentence": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["negative", "positive"]),
            "idx": np.int32}))

    def _split_generators(self, dl_manager):
        good = ["fast", "reliable", "clear", "simple", "robust", "documented"]
        bad = ["slow", "broken", "confusing", "deprecated", "fragile", "undocumented"]
        rows = [(f"this module is {a} and {b}.", label) for label, words in enumerate((bad, good))
                for a in words for b in words if a != b]
        return {"train": self._generate_examples(rows), "validation": self._generate_examples(rows[::3])}

    def _generate_examples(self, rows):
        for i, (sentence, label) in enumerate(rows):
            yield i, {"sentence": sentence, "label": label, "idx": i}


def test_a_real_tfds_text_dataset_by_name_with_configured_fields(tmp_path):
    # Prepared like `tfds build ... --file_format=array_record`, then opened by name only: the
    # builder class is not registered, so TFDS reads it from its files as it would glue/sst2.
    _TinySentiment(data_dir=str(tmp_path), file_format="array_record").download_and_prepare(
        download_dir=str(tmp_path / "dl"))
    tokenizer = corpus_tokenizer(vocab_size=8000)
    base = ["data.name=tiny_glue/sst2", f"data.data_dir={tmp_path}", "data.eval_split=validation",
            f"text.tokenizer_file={tokenizer.path}"]
    with pytest.raises(DataError, match="no feature 'text' .* its features are: idx, label, sentence"):
        train(_config("albert-tiny-topic", *base), tmp_path / "w0", quiet=True)
    config = _config("albert-tiny-topic", *base, "text.text_field=sentence")
    info = data.dataset_info("tiny_glue/sst2", tmp_path)
    task = make_task(config, info)
    assert task.num_classes == 2
    raw = data.train_batch(data.load_split("tiny_glue/sst2", "train", tmp_path), 0, 8, 0)
    batch = task.prepare_batch(raw)
    np.testing.assert_array_equal(batch["label"], raw["label"])
    for row, sentence in zip(batch["input_ids"], raw["sentence"]):
        assert row[0] == tokenizer.cls_id and tokenizer.decode(row) == sentence.decode()
    loss, metrics = task.loss(task.init(jax.random.key(0), batch), batch, jax.random.key(1))
    assert abs(float(loss) - np.log(2)) < 0.3 and 0.0 <= float(metrics["accuracy"]) <= 1.0
