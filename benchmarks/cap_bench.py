"""CAP's cost: its train step vs the plain pruning step, side by side in one process.

Three jitted train steps of the loop (:class:`jaxcompress.train.loop.Steps`) on the same
fine-tuned encoder, the same batch and the same movement pruner (masks recomputed every step,
as during the cubic ramp):

* ``plain``: the text classifier with the pruning wrapper (cross-entropy only);
* ``kd``: the ``cap`` task with every bank off (cross-entropy + distillation: the paper's baseline);
* ``cap``: the ``cap`` task with PrC, FiC and SnC banks (``--extra`` random bank rows each).

Each step is compiled (timed), warmed up, then timed in alternating rounds; a cell is the median of
``--repeats`` rounds of ``--steps`` steps. The snapshot refresh (encoding the whole training split)
is timed separately: it runs once per epoch, not every step.

Needs a fine-tuned work directory whose ``text.init_from`` is its pretraining run (e.g. one made by
``jaxcompress run cap``).

Run: python benchmarks/cap_bench.py --workdir RUN/finetune/topic [--extra 4096] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jaxcompress.tasks  # noqa: E402,F401
from jaxcompress import data as data_lib  # noqa: E402
from jaxcompress.compress.cap import bank_bytes  # noqa: E402
from jaxcompress.compress.pruning import Pruner  # noqa: E402
from jaxcompress.configlib import copy_config  # noqa: E402
from jaxcompress.train.build import build_optimizer, make_task  # noqa: E402
from jaxcompress.train.config import config_from_dict  # noqa: E402
from jaxcompress.train.loop import Steps  # noqa: E402
from jaxcompress.train.optim import learning_rate_schedule  # noqa: E402
from jaxcompress.train.sharding import build_mesh  # noqa: E402
from jaxcompress.workflows.cap import ENCODER_KERNELS, cap_config  # noqa: E402


def _steps(config):
    info = data_lib.dataset_info(config.data.name, config.data.data_dir or None)
    source = data_lib.load_split(config.data.name, config.data.train_split, config.data.data_dir or None)
    task = make_task(config, info)
    example = task.prepare_batch(source.read(np.arange(1)))
    steps = Steps(task, build_optimizer(config, task), learning_rate_schedule(config.optim, config.steps), example,
                  build_mesh(config.mesh), config.logical_rules, config.seed)
    batch = steps.global_batch(task.prepare_batch(data_lib.train_batch(source, 0, config.data.batch_size, 0)))
    return task, steps, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a fine-tuned text_classification work directory")
    parser.add_argument("--extra", type=int, default=4096, help="extra bank rows per bank and step")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", nargs="?", const="-", help="write the results as JSON (to PATH or stdout)")
    args = parser.parse_args()

    finetuned = config_from_dict(json.loads((pathlib.Path(args.workdir) / "config.json").read_text()))
    total = 1000  # a long run, so every timed step sits inside the pruning ramp (masks recomputed)
    plain = copy_config(finetuned)
    plain.steps = total
    plain.prune = Pruner(method="movement", sparsity=0.9, schedule="gradual", start_step=0, end_step=total,
                         frequency=1, include=ENCODER_KERNELS)
    configs = {"plain": plain}
    for name, contrastive in (("kd", False), ("cap", True)):
        config = cap_config(finetuned, args.workdir, pruner="movement", sparsity=0.9, steps=total, warmup=0,
                            contrastive=contrastive, extra_examples=args.extra)
        config.prune.start_step, config.prune.end_step = 0, total
        configs[name] = config

    built, compile_s, state = {}, {}, {}
    for name, config in configs.items():
        task, steps, batch = _steps(config)
        start = time.perf_counter()
        s = steps.init()
        s, metrics = steps.train(s, batch)
        jax.block_until_ready(metrics)
        compile_s[name] = time.perf_counter() - start
        built[name], state[name] = (task, steps, batch), s

    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name in configs:
            _, steps, batch = built[name]
            start = time.perf_counter()
            sums = None  # metric sums stay on the device, as in the training loop
            for _ in range(args.steps):
                state[name], sums = steps.train(state[name], batch, sums)
            jax.block_until_ready(sums)
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(t) for name, t in times.items()}

    # The once-per-epoch snapshot refresh: encoding the whole training split with the student.
    cap_task, cap_steps, _ = built["cap"]
    encode = jax.jit(lambda params: cap_task._encode_student(params, jax.random.key(0)))
    with cap_steps.context():
        student = state["cap"].params["student"]
        jax.block_until_ready(encode(student))
        start = time.perf_counter()
        jax.block_until_ready(encode(student))
    refresh_s = time.perf_counter() - start
    steps_per_epoch = cap_task.refresh_every

    cfg = configs["cap"]
    result = {
        "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
        "model": {"layers": cfg.model.encoder.num_layers, "hidden": cfg.model.encoder.hidden_size,
                  "seq_length": cfg.text.max_seq_length, "batch": cfg.data.batch_size},
        "extra_examples": args.extra, "train_examples": cap_task.num_examples,
        "step_s_median": median, "compile_s": compile_s,
        "overhead_vs_plain": {"kd": median["kd"] / median["plain"], "cap": median["cap"] / median["plain"]},
        "cap_vs_kd": median["cap"] / median["kd"],
        "refresh_s": refresh_s, "steps_per_epoch": steps_per_epoch,
        "refresh_per_epoch_vs_plain_epoch": refresh_s / (steps_per_epoch * median["plain"]),
        "bank_bytes": bank_bytes(cap_task.num_examples, cfg.model.encoder.hidden_size, cap_task.slots,
                                 cap_task.num_classes, cfg.model.bank_dtype),
        "repeats": args.repeats, "steps_per_round": args.steps,
    }
    for name in configs:
        print(f"{name:6s} step {median[name] * 1e3:8.2f} ms  ({median[name] / median['plain']:.2f}x plain)  "
              f"compile {compile_s[name]:.1f} s")
    print(f"snapshot refresh {refresh_s:.2f} s once per {steps_per_epoch} steps "
          f"({result['refresh_per_epoch_vs_plain_epoch']:.2f}x a plain epoch)")
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            pathlib.Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
