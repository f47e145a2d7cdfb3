"""The embedded ``digits`` dataset: preparation, listing, splits and record contents."""

import json
import os
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from jaxcompress import data

SPLITS = ("train", "validation", "test")


def read_all(source):
    return source.read(np.arange(len(source)))


def test_embedded_names_and_default_data_dir(monkeypatch, tmp_path):
    names = data.embedded_names()
    assert names == sorted(names) and {"digits", "pydocs", "pydocs_topic"} <= set(names)
    monkeypatch.setenv("JAXCOMPRESS_DATA_DIR", str(tmp_path / "mine"))
    assert data.default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("JAXCOMPRESS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_data_dir() == tmp_path / "xdg" / "jaxcompress" / "tensorflow_datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_data_dir() == tmp_path / "home" / ".cache" / "jaxcompress" / "tensorflow_datasets"


def _digits_row(data_dir=None):
    return next(row for row in data.list_datasets(data_dir) if row["name"] == "digits")


def test_list_before_and_after_prepare(prepared_digits_dir, tmp_path):
    row = _digits_row(tmp_path)
    assert row["name"] == "digits" and row["prepared"] is False and row["splits"] == {}
    assert row["description"] and row["path"] == str(tmp_path / "jaxcompress_digits" / "1.0.0")
    assert not any(tmp_path.iterdir())  # Listing generates nothing.

    row = _digits_row(prepared_digits_dir)
    assert row["prepared"] is True
    assert row["splits"] == {"train": 1259, "validation": 269, "test": 269}
    info = json.loads((prepared_digits_dir / "jaxcompress_digits" / "1.0.0" / "dataset_info.json").read_text())
    assert info["fileFormat"] == "array_record" and info["version"] == "1.0.0"
    assert "Alpaydin" in info["citation"]
    assert not (prepared_digits_dir / "downloads").exists()


def test_default_data_dir_is_used(prepared_digits_dir, monkeypatch):
    monkeypatch.setenv("JAXCOMPRESS_DATA_DIR", str(prepared_digits_dir))
    assert _digits_row()["prepared"] is True
    assert len(data.load_split("digits", "test")) == 269


def test_prepare_reuses_an_intact_folder(prepared_digits_dir):
    info_file = prepared_digits_dir / "jaxcompress_digits" / "1.0.0" / "dataset_info.json"
    before = info_file.stat().st_mtime_ns
    builder = data.prepare("digits", prepared_digits_dir)
    assert info_file.stat().st_mtime_ns == before
    assert str(builder.data_dir) == str(info_file.parent)


def test_features_and_dataset_info(prepared_digits_dir):
    source = data.load_split("digits", "train", prepared_digits_dir)
    assert source.features == {"image": ((8, 8, 1), np.dtype(np.float32)), "label": ((), np.dtype(np.int64))}
    batch = source.read(np.array([5, 0, 5]))
    assert batch["image"].shape == (3, 8, 8, 1) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (3,) and batch["label"].dtype == np.int64
    np.testing.assert_array_equal(batch["image"][0], batch["image"][2])
    empty = source.read(np.array([], np.int64))
    assert empty["image"].shape == (0, 8, 8, 1) and empty["label"].shape == (0,)
    info = data.dataset_info("digits", prepared_digits_dir)
    assert info["num_classes"] == 10 and info["input_key"] == "image" and info["label_key"] == "label"
    assert info["input_shape"] == (8, 8, 1) and info["splits"]["validation"] == 269


def test_splits_partition_sklearn_digits_exactly(prepared_digits_dir):
    # Independent reference: sklearn's own arrays. Every record must be one
    # sklearn row (same pixels / 16, same label), each row in exactly one split.
    reference = load_digits()
    row_of = {(reference.images[i] / 16.0).astype(np.float32).tobytes(): i for i in range(len(reference.target))}
    assert len(row_of) == 1797  # The 1797 images are distinct, so pixels identify rows.
    seen: dict[int, str] = {}
    class_counts = {}
    for split in SPLITS:
        batch = read_all(data.load_split("digits", split, prepared_digits_dir))
        assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
        for image, label in zip(batch["image"], batch["label"]):
            row = row_of[image[..., 0].tobytes()]
            assert label == reference.target[row]
            assert row not in seen, f"row {row} is in both {seen.get(row)} and {split}"
            seen[row] = split
        class_counts[split] = np.bincount(batch["label"], minlength=10)
    assert len(seen) == 1797
    assert [int(class_counts[s].sum()) for s in SPLITS] == [1259, 269, 269]
    # Stratified: every class is split about 70/15/15.
    totals = sum(class_counts.values())
    for split, fraction in zip(SPLITS, (0.70, 0.15, 0.15)):
        assert np.all(np.abs(class_counts[split] - fraction * totals) <= 1.0), (split, class_counts[split])


def test_force_rebuild_is_deterministic(digits_copy):
    before = {s: read_all(data.load_split("digits", s, digits_copy)) for s in SPLITS}
    builder = data.prepare("digits", digits_copy, force=True)
    assert builder.info.splits["train"].num_examples == 1259
    for split in SPLITS:
        after = read_all(data.load_split("digits", split, digits_copy))
        for key in ("image", "label"):
            np.testing.assert_array_equal(after[key], before[split][key])


def test_same_folder_loads_by_its_tfds_name(prepared_digits_dir):
    # Any non-embedded name goes through tfds.builder(); a prepared folder is
    # found by name in data_dir, like a real TFDS dataset.
    by_tfds = data.load_split("jaxcompress_digits", "validation[:10]", prepared_digits_dir)
    embedded = data.load_split("digits", "validation", prepared_digits_dir)
    assert len(by_tfds) == 10
    np.testing.assert_array_equal(by_tfds.read(np.arange(10))["image"], embedded.read(np.arange(10))["image"])
    assert data.dataset_info("jaxcompress_digits", prepared_digits_dir)["num_classes"] == 10


def test_no_tensorflow_and_no_registry_side_effect(prepared_digits_dir, tmp_path):
    script = (
        "import sys, numpy as np\n"
        "import jaxcompress.data.builders.digits\n"
        "import tensorflow_datasets as tfds\n"
        "assert 'jaxcompress_digits' not in tfds.list_builders(with_community_datasets=False)\n"
        "from jaxcompress import data\n"
        f"src = data.load_split('digits', 'train', {str(prepared_digits_dir)!r})\n"
        "data.train_batch(src, 3, 32, 0)\n"
        f"data.prepare('digits', {str(tmp_path)!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
