"""Datasets: embedded TFDS builders, loading splits, and deterministic per-host batches.

Everything is stored and read in TFDS's array_record format, which needs no
TensorFlow. Embedded datasets (``digits``) are generated offline on first use;
any other name is a TFDS dataset that must already be prepared in the data
directory (nothing is downloaded at run time).

Typical use::

    src = load_split("digits", "train")                 # len(src) == 1259
    batch = train_batch(src, step, global_batch=64, seed=0,
                        process_index=jax.process_index(),
                        process_count=jax.process_count())
    for batch in eval_batches(load_split("digits", "validation"), 256):
        ...  # batch["weight"] masks the padding of the last batch
"""

from __future__ import annotations

from jaxcompress.data._paths import default_data_dir
from jaxcompress.data._pipeline import eval_batches, global_batch_indices, host_slice, train_batch
from jaxcompress.data._registry import embedded_names, list_datasets, prepare
from jaxcompress.data._source import Source, dataset_info, load_split

__all__ = [
    "Source",
    "dataset_info",
    "default_data_dir",
    "embedded_names",
    "eval_batches",
    "global_batch_indices",
    "host_slice",
    "list_datasets",
    "load_split",
    "prepare",
    "train_batch",
]
