"""The survey's recipes: every row's methods and options are accepted, on an untrained CNN."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxcompress.compress.artifact import Compressed
from jaxcompress.compress.methods import get_method
from jaxcompress.compress.structured import apply_model_changes
from jaxcompress.configs import get_preset
from jaxcompress.nn import CNNClassifier
from jaxcompress.runners import survey
from jaxcompress.workflows.compress_workdir import parse_method_options


@pytest.fixture(scope="module")
def cnn():
    config = get_preset("digits-cnn-tiny")
    model = CNNClassifier(channels=config.model.channels, num_classes=10, hidden_size=config.model.hidden_size)
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32)))["params"]
    return config, jax.tree.map(np.asarray, params)


@pytest.mark.parametrize("family, label, methods, settings", survey.RECIPES, ids=[r[1] for r in survey.RECIPES])
def test_every_recipe_runs_and_compresses(cnn, family, label, methods, settings):
    config, params = cnn
    options = parse_method_options(list(methods), list(settings))
    artifact = Compressed.from_params(params)
    for method in methods:
        extra = {"model_config": apply_model_changes(config, artifact.model_changes).model} \
            if method == "structured" else {}
        artifact = get_method(method)(artifact, {**options[method], **extra})
    assert [h["method"] for h in artifact.history] == list(methods)
    # Random weights spread their energy over every rank, so "SVD 95% energy" may keep
    # layers whole; every other recipe must shrink even an untrained model.
    before = Compressed.from_params(params).total_bytes
    assert artifact.total_bytes <= before if "energy" in label else artifact.total_bytes < before, label


@pytest.fixture(scope="module")
def albert():
    from jaxcompress import data
    from jaxcompress.configlib import apply_overrides
    from jaxcompress.train.build import make_task

    config = apply_overrides(get_preset(survey.TEXT_PRESET), ["model.num_layers=1", "text.max_seq_length=16"])
    task = make_task(config, data.dataset_info(config.data.name))
    batch = task.prepare_batch(data.load_split(config.data.name, "validation").read(np.arange(2)))
    params = nn.unbox(jax.jit(task.init)(jax.random.key(0), jax.tree.map(jax.numpy.asarray, batch)))
    return config, jax.tree.map(np.asarray, params)


@pytest.mark.parametrize("family, label, methods, settings", survey.TEXT_RECIPES,
                         ids=[r[1] for r in survey.TEXT_RECIPES])
def test_every_text_recipe_runs_and_compresses(albert, family, label, methods, settings):
    test_every_recipe_runs_and_compresses(albert, family, label, methods, settings)


def test_quick_rows_name_real_recipes():
    labels = {r[1] for r in survey.RECIPES} | {s[0] for s in survey.STUDENTS}
    assert survey.QUICK <= labels
