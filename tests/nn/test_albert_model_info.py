"""``model-info`` for the ALBERT/BERT presets: counts and FLOPs without a dataset
or the memory of the model."""

from __future__ import annotations

import json

import pytest

from jaxcompress.cli import main
from jaxcompress.configs import get_preset
from jaxcompress.model_info import model_info
from jaxcompress.train.task import registered_tasks


def test_model_info_of_the_largest_preset_needs_no_data_or_memory():
    info = model_info(get_preset("albert-xxlarge"))
    h, i, layers, e, v = 4096, 16384, 12, 128, 30000
    # Independent closed form: tables + LN + E->H map; one shared block; pooler.
    embedding = (v + 512 + 2) * e + 2 * e + e * h + h
    block = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h
    assert (info["embedding_params"], info["encoder_params"]) == (embedding, block)
    assert info["total_params"] == embedding + block + h * h + h == 222_595_584
    assert info["total_params_with_heads"] > info["total_params"]
    # Every one of the 12 layers runs, shared or not: FLOPs scale with depth.
    assert info["flops_per_token"] == 2 * (e * h + layers * (4 * h * h + 2 * h * i + 2 * 512 * h))
    assert info["flops_per_example"] == info["flops_per_token"] * 512


@pytest.mark.skipif("mlm_sop" not in registered_tasks(), reason="the presets' pretraining task is not registered")
def test_model_info_command_prints_counts_as_json(capsys):
    assert main(["model-info", "bert-base", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_params"] == 109_081_344 and info["encoder_params"] == 12 * 7_087_872
    assert info["flops_per_token"] > 0
