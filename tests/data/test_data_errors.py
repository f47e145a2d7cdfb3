"""User mistakes and broken data directories end in one clear DataError, never a TFDS traceback."""

import shutil

import numpy as np
import pytest

from jaxcompress import data
from jaxcompress.errors import DataError

TRAIN_SHARD = "jaxcompress_digits-train.array_record-00000-of-00001"


def version_dir(root):
    """The prepared digits folder inside a data dir."""
    return root / "jaxcompress_digits" / "1.0.0"


def one_line_error(call, *args):
    with pytest.raises(DataError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_unknown_dataset_name(tmp_path):
    message = one_line_error(data.load_split, "no_such_dataset_xyz", "train", tmp_path)
    assert "unknown dataset 'no_such_dataset_xyz'" in message and "digits" in message and str(tmp_path) in message
    # The builder's own TFDS name is not registered globally, so it is unknown until prepared.
    assert "unknown dataset" in one_line_error(data.load_split, "jaxcompress_digits", "train", tmp_path)


def test_unknown_split_lists_the_splits(prepared_digits_dir):
    message = one_line_error(data.load_split, "digits", "trian", prepared_digits_dir)
    assert "'trian'" in message and "train, validation, test" in message
    assert "available splits" in one_line_error(data.load_split, "digits", "train+dev", prepared_digits_dir)
    assert "'train[:x]'" in one_line_error(data.load_split, "digits", "train[:x]", prepared_digits_dir)


def test_unprepared_real_tfds_dataset_is_never_downloaded(tmp_path):
    message = one_line_error(data.load_split, "mnist", "train", tmp_path)
    assert "not prepared" in message and str(tmp_path / "mnist") in message
    assert "tfds build mnist --file_format=array_record" in message
    assert not any(tmp_path.iterdir())


def test_prepare_only_builds_embedded_datasets(tmp_path):
    message = one_line_error(data.prepare, "mnist", tmp_path)
    assert "digits" in message and "tfds build mnist" in message


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "not a directory" in one_line_error(data.load_split, "digits", "train", tmp_path / "file")


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _only_random_files(folder):
    shutil.rmtree(folder)
    folder.mkdir()
    for i in range(3):
        (folder / f"junk{i}").write_bytes(np.random.default_rng(i).bytes(1000))


GARBAGE = {
    "random shard": lambda v: _random_bytes(v / TRAIN_SHARD),
    "truncated shard": lambda v: _truncate(v / TRAIN_SHARD),
    "missing shard": lambda v: (v / TRAIN_SHARD).unlink(),
    "missing dataset_info.json": lambda v: (v / "dataset_info.json").unlink(),
    "garbage dataset_info.json": lambda v: _random_bytes(v / "dataset_info.json"),
    "wrong dataset_info.json": lambda v: (v / "dataset_info.json").write_text('{"name": 3}'),
    "random files only": _only_random_files,
}


@pytest.mark.parametrize("damage", GARBAGE, ids=list(GARBAGE))
def test_garbage_data_dir(digits_copy, damage):
    folder = version_dir(digits_copy)
    GARBAGE[damage](folder)
    message = one_line_error(data.load_split, "digits", "train", digits_copy)
    assert str(folder) in message and "jaxcompress data prepare digits --force" in message
    row = next(r for r in data.list_datasets(digits_copy) if r["name"] == "digits")  # Listed, without raising.
    assert row["prepared"] is False
    assert "--force" in one_line_error(data.prepare, "digits", digits_copy)  # No silent reuse.


def test_garbage_seen_through_the_tfds_name(digits_copy):
    _random_bytes(version_dir(digits_copy) / "dataset_info.json")
    message = one_line_error(data.load_split, "jaxcompress_digits", "train", digits_copy)
    assert str(digits_copy / "jaxcompress_digits") in message and "corrupt" in message


def test_corruption_inside_a_shard_fails_at_read(digits_copy):
    # Flipped bytes in the middle keep the file's index intact, so opening
    # succeeds; the checksum of the damaged chunk fails when it is read.
    shard = version_dir(digits_copy) / TRAIN_SHARD
    raw = bytearray(shard.read_bytes())
    raw[1000:1100] = bytes(b ^ 0xFF for b in raw[1000:1100])
    shard.write_bytes(bytes(raw))
    source = data.load_split("digits", "train", digits_copy)
    message = one_line_error(source.read, np.arange(len(source)))
    assert str(version_dir(digits_copy)) in message and "--force" in message


def test_force_rebuilds_garbage(digits_copy, prepared_digits_dir):
    folder = version_dir(digits_copy)
    _only_random_files(folder)
    data.prepare("digits", digits_copy, force=True)
    assert not (folder / "junk0").exists()
    rebuilt = data.load_split("digits", "test", digits_copy)
    original = data.load_split("digits", "test", prepared_digits_dir)
    np.testing.assert_array_equal(rebuilt.read(np.arange(269))["image"], original.read(np.arange(269))["image"])


def test_force_replaces_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "jaxcompress_digits").write_text("not a folder")
    assert "--force" in one_line_error(data.load_split, "digits", "train", tmp_path)
    data.prepare("digits", tmp_path, force=True)
    assert len(data.load_split("digits", "validation", tmp_path)) == 269


def test_tfds_dataset_in_another_file_format(digits_copy):
    # What `tfds build` writes by default (tfrecord) needs TensorFlow to read.
    info = version_dir(digits_copy) / "dataset_info.json"
    info.write_text(info.read_text().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
    message = one_line_error(data.load_split, "jaxcompress_digits", "train", digits_copy)
    assert "stored as tfrecord" in message and "--file_format=array_record" in message
