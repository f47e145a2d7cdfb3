"""Fixtures for the data tests: one prepared copy of ``digits`` shared by the session."""

import pathlib
import shutil

import pytest

from jaxcompress import data


@pytest.fixture(scope="session")
def prepared_digits_dir(tmp_path_factory) -> pathlib.Path:
    """A data dir where ``digits`` was prepared on first use. Treat it as read-only."""
    root = tmp_path_factory.mktemp("digits-data")
    data.load_split("digits", "train", root)  # Prepares on first use.
    return root


@pytest.fixture
def digits_copy(prepared_digits_dir, tmp_path) -> pathlib.Path:
    """A private, writable copy of the prepared data dir (for corrupting or rebuilding)."""
    root = tmp_path / "data"
    shutil.copytree(prepared_digits_dir, root)
    return root

