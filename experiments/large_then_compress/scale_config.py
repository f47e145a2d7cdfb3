"""Train large, then compress at accelerator scale: BERT-base-sized grids on a real GLUE task.

Run on one host with several accelerators (a GPU box, or a TPU VM such as
v5litepod-8 or v4-8), with both datasets prepared in the data directory:

    jaxcompress run large-then-compress --config experiments/large_then_compress/scale_config.py \
        --out /mnt/shared/runs/ltc-scale

* Pretraining: the ``pydocs_pretrain`` record format (``text``, ``other``,
  ``seed``). Point ``data.name`` in ``pretrain_overrides`` at your own corpus
  converted to that format to pretrain on more text.
* Fine-tuning: ``glue/sst2`` read by name (``tfds build glue/sst2
  --file_format=array_record --data_dir=$JAXCOMPRESS_DATA_DIR`` on a machine
  with internet first).
* Sharding: ``mesh.fsdp=-1`` is not allowed, so the batch is split over
  ``data`` (all devices by default); set ``mesh.fsdp`` / ``mesh.tensor`` in
  both override lists for the largest sizes.

The grid spans 16x in parameters at a fixed 10^18 FLOPs per size (about
13 minutes per size at 1.3 PFLOP/s sustained, e.g. 16 v5e chips at 40% of
peak); see BUILD_NOTES.md for the cost.
"""

from jaxcompress.runners.large_then_compress import LargeThenCompressConfig


def get_config() -> LargeThenCompressConfig:
    return LargeThenCompressConfig(
        sizes=("bert-6x384", "bert-12x768", "bert-24x1024", "albert-12x768"),
        budget_tflops=1e6,
        min_steps=200,
        finetune_steps=2000,
        batch_size=256,
        seq_length=128,
        prune_levels=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
        quant_bits=(8, 4),
        pretrain_overrides=("optim.name=lamb", "optim.learning_rate=1.76e-3", "model.dtype=bfloat16",
                            "model.remat=dots"),
        finetune_overrides=("data.name=glue/sst2", "data.eval_split=validation", "text.text_field=sentence",
                            "optim.learning_rate=2e-5", "model.dtype=bfloat16"),
    )
