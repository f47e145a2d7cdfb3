"""The one training loop: shard, initialise or resume, step, evaluate, checkpoint, log.

Stages (each a small function below):

1. work directory and mesh checks, before any work starts;
2. data sources and the task;
3. abstract state -> shardings -> jitted init (or restore of the newest
   readable checkpoint onto the current mesh);
4. jitted, donated train step (and the same step scanned over several batches,
   for ``steps_per_call`` > 1) and evaluation step;
5. the loop, with a prefetch thread that puts the next transfer of batches on the
   devices ahead of use (``data.device_prefetch`` steps' batches at a time, or one
   call's), periodic metrics, evaluation and checkpoints, and a clean save on
   SIGTERM/SIGINT;
6. final checkpoint, evaluation and ``summary.json`` (written atomically).

Example::

    from jaxcompress.configs import get_preset
    from jaxcompress.train import train
    summary = train(get_preset("digits-mlp-tiny"), "/tmp/run")
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import threading
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxcompress
from jaxcompress import data as data_lib
from jaxcompress.compress.masks import sparsity_summary
from jaxcompress.compress.pruning import find_prune_state
from jaxcompress.configlib import to_dict, validate
from jaxcompress.data.subset import SubsetSource, read_rows_file
from jaxcompress.errors import ConfigError, WorkdirError
from jaxcompress.train.build import build_optimizer, make_task
from jaxcompress.train.checkpoint import CheckpointStore
from jaxcompress.train.config import Config
from jaxcompress.train.feed import BatchFeed, prefetch_block
from jaxcompress.train.fingerprint import count_params, params_sha256
from jaxcompress.train.metrics import MetricsWriter, Progress
from jaxcompress.train.optim import learning_rate_schedule
from jaxcompress.train.sharding import batch_sharding, build_mesh, logical_shardings, replicated
from jaxcompress.train.state import TrainState, step_rng, zero_step
from jaxcompress.train.task import Task


class TrainingInterrupted(Exception):
    """Raised after a SIGTERM/SIGINT once the state at ``step`` is safely saved."""

    def __init__(self, signum: int, step: int, workdir: pathlib.Path):
        self.signum = signum
        self.step = step
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; checkpoint saved "
                         f"in {workdir / 'checkpoints'}; rerun the same command to resume")


# ----------------------------------------------------------------------------
# Stage 1: checks before any work


def train_step_flops(config: Config) -> float:
    """FLOPs of one training step of ``config`` at its batch size and data shapes (XLA cost analysis).

    References:
      Kaplan et al., "Scaling Laws for Neural Language Models", 2020 (compute counted per step).
    """
    data_dir = config.data.data_dir or None
    source = data_lib.load_split(config.data.name, config.data.train_split, data_dir)
    task = make_task(config, data_lib.dataset_info(config.data.name, data_dir))
    example = task.prepare_batch(source.read(np.arange(1)))
    steps = Steps(task, build_optimizer(config, task), learning_rate_schedule(config.optim, config.steps), example,
                  build_mesh(config.mesh), config.logical_rules, config.seed)
    return steps.train_step_flops(config.data.batch_size)


def prepare_workdir(workdir: str | os.PathLike) -> pathlib.Path:
    """Creates ``workdir`` and proves it is writable; removes a stale summary.

    Raises:
      WorkdirError: if it is a file, cannot be created, or cannot be written.
    """
    if "://" in os.fspath(workdir):
        raise WorkdirError(f"workdir {os.fspath(workdir)} is a URL; object stores are not supported directly: "
                           f"mount the bucket (e.g. gcsfuse) on every host and pass the mount path")
    path = pathlib.Path(workdir).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"workdir {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise WorkdirError(f"workdir {path} is not writable: {exc.strerror or exc}") from None
    if jax.process_index() == 0:
        # The summary is the mark of a finished run; a new run makes it stale.
        (path / "summary.json").unlink(missing_ok=True)
    return path


def check_batch_sizes(config: Config, mesh: Mesh) -> None:
    shards = mesh.shape["data"] * mesh.shape["fsdp"]
    for key, size in (("data.batch_size", config.data.batch_size),
                      ("data.eval_batch_size", config.data.eval_batch_size)):
        if size % shards:
            raise ConfigError(f"config key {key!r} = {size} must be a multiple of mesh data x fsdp = {shards}")
        if size % jax.process_count():
            raise ConfigError(f"config key {key!r} = {size} must be a multiple of the "
                              f"{jax.process_count()} processes")


def write_json_atomically(path: pathlib.Path, payload: Any) -> None:
    """Writes to a temporary file and renames, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# Stage 3-4: state and steps


class Steps:
    """The jitted init, train and eval functions of one (task, optimiser, mesh)."""

    def __init__(self, task: Task, tx: optax.GradientTransformation, schedule: optax.Schedule,
                 example: dict[str, np.ndarray], mesh: Mesh, rules: Any, seed: int):
        self.mesh, self.rules = mesh, rules
        example = jax.tree.map(jnp.asarray, example)
        self._example = example

        def init_boxed(rng: jax.Array) -> TrainState:
            params = task.init(rng, example)
            return TrainState(step=zero_step(), params=params, opt_state=tx.init(params))

        with nn.logical_axis_rules(rules):  # shapes only: no mesh needed
            abstract_boxed = jax.eval_shape(init_boxed, jax.random.key(seed))
            self.state_shardings = logical_shardings(abstract_boxed, mesh, rules)
        self.abstract_state = jax.tree.map(
            lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
            nn.unbox(abstract_boxed), self.state_shardings)
        self.batch_sharding = batch_sharding(mesh)

        def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
            rng = step_rng(seed, state.step)
            (_, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, rng)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            metrics = {**metrics, "grad_norm": optax.tree.norm(grads),
                       "learning_rate": schedule(state.step)}
            return TrainState(state.step + 1, params, opt_state), metrics

        def eval_step(params: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
            weight = batch["weight"]
            per_example = task.evaluate(params, batch)
            sums = {name: jnp.sum(value * weight) for name, value in per_example.items()}
            return {**sums, "_weight": jnp.sum(weight)}

        # Every train function adds its steps' metrics to running sums that stay on the devices, so
        # the host fetches a few scalars per log window instead of every metric of every step.
        def train_and_sum(state: TrainState, batch: dict[str, jax.Array], sums: dict) -> tuple[TrainState, dict]:
            state, metrics = train_step(state, batch)
            return state, jax.tree.map(lambda total, value: total + jnp.asarray(value, total.dtype), sums, metrics)

        def train_steps(state: TrainState, batches: dict[str, jax.Array], sums: dict) -> tuple[TrainState, dict]:
            # The same step, scanned over a leading axis of batches: one host call, one dispatch.
            carry, _ = jax.lax.scan(lambda carry, batch: (train_and_sum(carry[0], batch, carry[1]), None),
                                    (state, sums), batches)
            return carry

        def train_step_from_block(state: TrainState, block: dict[str, jax.Array],
                                  sums: dict) -> tuple[TrainState, dict]:
            # Block slot s holds the batch of every step congruent to s modulo the block length, so the
            # step counter already on the devices picks it: the host passes the same block K times.
            slot = state.step % jax.tree.leaves(block)[0].shape[0]
            return train_and_sum(state, jax.tree.map(
                lambda x: jax.lax.dynamic_index_in_dim(x, slot, keepdims=False), block), sums)

        self._init = jax.jit(lambda rng: nn.unbox(init_boxed(rng)), out_shardings=self.state_shardings)
        self.stacked_batch_sharding = NamedSharding(mesh, P(None, *self.batch_sharding.spec))
        self._train, self._train_many, self._train_from_block = (
            jax.jit(fn, in_shardings=(self.state_shardings, batches, replicated(mesh)),
                    out_shardings=(self.state_shardings, replicated(mesh)), donate_argnums=(0, 2))
            for fn, batches in ((train_and_sum, self.batch_sharding), (train_steps, self.stacked_batch_sharding),
                                (train_step_from_block, self.stacked_batch_sharding)))
        self._train_step = train_step
        self._zero_sums: Callable[[], dict] | None = None
        self._eval = jax.jit(eval_step, in_shardings=(self.state_shardings.params, self.batch_sharding),
                             out_shardings=replicated(mesh))
        # Params shaped unlike the model's init (factored or separable layers after
        # compression) take their shardings from the arrays themselves.
        self._eval_other = jax.jit(eval_step, out_shardings=replicated(mesh))
        self._params_structure = jax.tree.structure(self.state_shardings.params)
        self._seed = seed

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Mesh and logical rules in scope, so activation constraints resolve."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield

    def init(self) -> TrainState:
        with self.context():
            return self._init(jax.random.key(self._seed))

    def zero_metric_sums(self) -> dict[str, jax.Array]:
        """Zeros shaped like one step's metrics, replicated: the start of a log window's running sums."""
        if self._zero_sums is None:
            with self.context():
                batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self._example)
                shapes = jax.eval_shape(self._train_step, self.abstract_state, batch)[1]
            # At least float32, so a bfloat16 loss summed over a long window keeps its precision.
            self._zero_sums = jax.jit(lambda: jax.tree.map(
                lambda s: jnp.zeros(s.shape, jnp.promote_types(s.dtype, jnp.float32)), shapes),
                                      out_shardings=replicated(self.mesh))
        return self._zero_sums()

    def train(self, state: TrainState, batch: dict[str, jax.Array],
              sums: dict[str, jax.Array] | None = None) -> tuple[TrainState, dict]:
        """One step; returns the new state and ``sums`` (zeros if None) plus the step's metrics.
        ``sums`` is donated."""
        return self._call(self._train, state, batch, sums)

    def train_many(self, state: TrainState, batches: dict[str, jax.Array],
                   sums: dict[str, jax.Array] | None = None) -> tuple[TrainState, dict]:
        """Several steps in one call; ``batches`` has a leading step axis (:meth:`stacked_global_batch`);
        every step's metrics are added to ``sums``."""
        return self._call(self._train_many, state, batches, sums)

    def train_from_block(self, state: TrainState, block: dict[str, jax.Array],
                         sums: dict[str, jax.Array] | None = None) -> tuple[TrainState, dict]:
        """One step on the batch in slot ``state.step % K`` of ``block`` (K stacked batches from
        :meth:`stacked_global_batch`, slot s holding step b * K + s): as :meth:`train` on that batch."""
        return self._call(self._train_from_block, state, block, sums)

    def _call(self, train_fn: Callable, state: TrainState, batches: dict[str, jax.Array],
              sums: dict[str, jax.Array] | None) -> tuple[TrainState, dict]:
        if sums is None:
            sums = self.zero_metric_sums()
        with self.context():
            return train_fn(state, batches, sums)

    def evaluate(self, params: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        same_tree = jax.tree.structure(params) == self._params_structure
        with self.context():
            return (self._eval if same_tree else self._eval_other)(params, batch)

    def train_step_flops(self, batch_size: int) -> float:
        """FLOPs of one training step on a global batch of ``batch_size``, from XLA's cost analysis of the
        lowered step: forward, backward, every head and the optimiser update, at the run's shapes."""
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch_size,) + x.shape[1:], x.dtype,
                                                            sharding=self.batch_sharding), self._example)
        with self.context():
            cost = jax.jit(self._train_step).lower(self.abstract_state, batch).cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])

    def place_params(self, params: Any) -> Any:
        """``params`` on the mesh: sharded like the model's, or replicated if their tree differs."""
        params = jax.tree.map(jnp.asarray, params)
        if jax.tree.structure(params) == self._params_structure:
            return jax.device_put(params, self.state_shardings.params)
        return jax.device_put(params, replicated(self.mesh))

    def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Assembles this host's rows into global arrays sharded over data x fsdp."""
        return _global_arrays(self.batch_sharding, local)

    def stacked_global_batch(self, locals_: list[dict[str, np.ndarray]]) -> dict[str, jax.Array]:
        """Several steps' local rows, stacked on a leading step axis, as global arrays (rows over data x fsdp)."""
        return _global_arrays(self.stacked_batch_sharding, jax.tree.map(lambda *xs: np.stack(xs), *locals_))


def _global_arrays(sharding: NamedSharding, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows as global arrays laid out by ``sharding``."""
    if jax.process_count() == 1:
        # The local rows are the global batch: one transfer call for the whole tree, about 25% less
        # host time per batch than assembling each leaf from per-device pieces.
        return jax.device_put(local, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


# ----------------------------------------------------------------------------
# Stage 5: the loop


class _SignalFlag:
    """Records SIGTERM/SIGINT instead of dying, so the loop can save first."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_SignalFlag":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def evaluate(steps: Steps, task: Task, params: Any, source: Any, batch_size: int) -> dict[str, float]:
    """Exact weighted means of the task's per-example metrics over a whole split."""
    totals: dict[str, float] = {}
    for local in data_lib.eval_batches(source, batch_size, jax.process_index(), jax.process_count()):
        sums = jax.device_get(steps.evaluate(params, steps.global_batch(task.prepare_batch(local))))
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + float(value)
    weight = totals.pop("_weight", 0.0)
    return {name: value / max(weight, 1.0) for name, value in totals.items()}


def _mean_metrics(sums: dict[str, jax.Array], num_steps: int) -> dict[str, float]:
    """Mean of each metric over the ``num_steps`` steps whose metrics ``sums`` adds up."""
    return {name: float(np.mean(value)) / num_steps for name, value in jax.device_get(sums).items()}


def _chunk(step: int, config: Config) -> int:
    """How many steps the next host call runs: ``steps_per_call``, cut short so that no log, evaluation,
    checkpoint or the end falls inside a call (those happen between calls)."""
    boundaries = [config.steps, *(every * (step // every + 1) for every in
                                  (config.log_every, config.eval_every, config.checkpoint_every) if every)]
    return max(1, min(config.steps_per_call, min(boundaries) - step))


def train(config: Config, workdir: str | os.PathLike, *, quiet: bool = False,
          on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Trains ``config`` in ``workdir``, resuming from its newest checkpoint.

    Args:
      config: a validated or unvalidated :class:`Config`.
      workdir: holds ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``,
        ``config.json`` and, at the end, ``summary.json``.
      quiet: no progress output.
      on_step: called with the host step after every host call: every step, or every
        ``steps_per_call`` steps (tests use it).

    Returns:
      The summary dict also written to ``workdir/summary.json``.

    Raises:
      UserError subclasses for bad input, before any training;
      TrainingInterrupted after a signal, once the checkpoint is saved.
    """
    wall_start = time.perf_counter()
    validate(config)
    mesh = build_mesh(config.mesh)
    check_batch_sizes(config, mesh)
    workdir = prepare_workdir(workdir)
    is_chief = jax.process_index() == 0

    data_dir = config.data.data_dir or None
    train_source = data_lib.load_split(config.data.name, config.data.train_split, data_dir)
    if config.data.train_rows:
        train_source = SubsetSource(train_source, read_rows_file(config.data.train_rows))
    eval_source = (data_lib.load_split(config.data.name, config.data.eval_split, data_dir)
                   if config.data.eval_split else None)
    task = make_task(config, data_lib.dataset_info(config.data.name, data_dir))
    tx = build_optimizer(config, task)
    schedule = learning_rate_schedule(config.optim, config.steps)
    example = task.prepare_batch(train_source.read(np.arange(1)))
    steps = Steps(task, tx, schedule, example, mesh, config.logical_rules, config.seed)

    store = CheckpointStore(workdir / "checkpoints", keep=config.keep_checkpoints)
    restored = store.restore_latest(steps.abstract_state)
    if restored is None:
        start_step, state = 0, steps.init()
    else:
        start_step, state = restored
    if is_chief:
        write_json_atomically(workdir / "config.json", to_dict(config))

    writer = MetricsWriter(workdir, resume_step=start_step, enabled=is_chief)
    progress = Progress(config.steps, start_step, quiet=quiet or not is_chief)
    if restored is not None:
        progress.message(f"resumed from step {start_step} ({store.directory / str(start_step)})")

    def local_batch(step: int) -> dict[str, np.ndarray]:
        return task.prepare_batch(data_lib.train_batch(train_source, step, config.data.batch_size,
                                                       config.data.seed, jax.process_index(), jax.process_count()))

    train_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    step = start_step
    feed = BatchFeed(local_batch, steps.global_batch, steps.stacked_global_batch,
                     lambda s: s + _chunk(s, config), start_step, config.steps,
                     prefetch_block(config, example))
    with _SignalFlag() as stop, feed:
        loaded_end = step
        sums = None  # this log window's metric sums, on the devices
        # elapsed_s in the logs: wall time of the loop (first-step compilation
        # and evaluations included), accumulated across resumes.
        loop_start = window_start = time.perf_counter()
        window_step = step
        while step < config.steps and stop.signum is None:
            if step == loaded_end:
                loaded_end, batch = feed.take()
            if feed.block > 1:
                n = 1
                state, sums = steps.train_from_block(state, batch, sums)
            else:
                n = loaded_end - step
                state, sums = (steps.train if n == 1 else steps.train_many)(state, batch, sums)
            step += n
            if step % config.log_every == 0 or step == config.steps:
                train_metrics = _mean_metrics(sums, step - window_step)
                sums = None
                now = time.perf_counter()
                rate = (step - window_step) * config.data.batch_size / max(now - window_start, 1e-9)
                window_start, window_step = now, step
                elapsed = writer.resumed_elapsed_s + now - loop_start
                writer.write(step, "train", {**train_metrics, "examples_per_second": rate, "elapsed_s": elapsed})
                progress.update(step, train_metrics, rate)
            if eval_source is not None and config.eval_every and step % config.eval_every == 0 \
                    and step < config.steps:
                eval_metrics = evaluate(steps, task, state.params, eval_source, config.data.eval_batch_size)
                writer.write(step, "eval", eval_metrics)
                progress.message(f"step {step}: eval " + _format(eval_metrics))
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                store.save(step, state)
            if on_step is not None:
                on_step(step)
        if stop.signum is not None and step < config.steps:
            store.save(step, state)
            store.wait()
            writer.close()
            progress.close()
            raise TrainingInterrupted(stop.signum, step, workdir)

    store.save(step, state)
    if eval_source is not None:
        eval_metrics = evaluate(steps, task, state.params, eval_source, config.data.eval_batch_size)
        writer.write(step, "eval", eval_metrics)
    digest = params_sha256(state.params)
    sparsity = None
    if config.prune.method != "none":
        sparsity = sparsity_summary(state.params, find_prune_state(state.opt_state).masks)["global"]
    store.wait()
    store.close()
    writer.close()
    progress.close()

    summary = {
        "name": config.name,
        "final_step": step,
        "resumed_from_step": start_step if restored is not None else None,
        "train_metrics": train_metrics,
        "eval_metrics": eval_metrics,
        "wall_time_s": round(time.perf_counter() - wall_start, 3),
        "params_sha256": digest,
        "sparsity": sparsity,
        "num_params": count_params(state.params),
        "mesh": dict(mesh.shape),
        "num_devices": jax.device_count(),
        "process_count": jax.process_count(),
        "jax_version": jax.__version__,
        "jaxcompress_version": jaxcompress.__version__,
    }
    if is_chief:
        write_json_atomically(workdir / "summary.json", summary)
    return summary


def _format(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
