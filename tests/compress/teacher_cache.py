"""A small trained CNN teacher, trained once per test process and shared by the distillation tests."""

from __future__ import annotations

import functools
import pathlib
import tempfile

from jaxcompress.configlib import apply_overrides
from jaxcompress.configs import get_preset
from jaxcompress.train import train


@functools.cache
def trained_cnn_teacher() -> tuple[pathlib.Path, dict]:
    """``(workdir, summary)`` of ``digits-cnn`` trained for 150 steps (about 90% accuracy)."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="jaxcompress-teacher-"))
    config = apply_overrides(get_preset("digits-cnn"), ["steps=150", "eval_every=0", "checkpoint_every=0",
                                                        "log_every=50"])
    return workdir, train(config, workdir, quiet=True)
