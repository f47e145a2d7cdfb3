"""Workflows over work directories: compress a trained run (``jaxcompress compress --workdir``)."""

from jaxcompress.workflows.compress_workdir import compress_workdir, evaluate_params, load_trained

__all__ = ["compress_workdir", "evaluate_params", "load_trained"]
