"""Orbax checkpoints under ``WORKDIR/checkpoints`` with fall-back on corruption.

Orbax writes each step into a temporary directory and renames it when the
write is complete, so a run killed mid-save leaves no half-written step that
looks finished. A step directory that is present but cannot be restored
(truncated or overwritten files) is reported, moved aside to
``corrupt-<step>-<time>`` for inspection, and the previous step is used.
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from jaxcompress.errors import CheckpointError


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


class CheckpointStore:
    """Saves and restores a train-state pytree by step.

    Args:
      directory: where step directories live (created if missing).
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, keep: int):
        self.directory = pathlib.Path(directory).absolute()
        self._keep = keep
        self._manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            create=True,
            cleanup_tmp_directories=True,  # leftovers of a run killed mid-save
            enable_async_checkpointing=True,
            preservation_policy=ocp.checkpoint_managers.LatestN(self._keep),
        )
        return ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any) -> None:
        """Starts an asynchronous save of ``state`` as ``step`` (no-op if it exists)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def wait(self) -> None:
        """Blocks until pending saves are committed to disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any] | None:
        """Restores the newest readable checkpoint onto ``abstract_state``'s shardings.

        Args:
          abstract_state: a pytree of ``jax.ShapeDtypeStruct`` with shardings,
            so the restored arrays land sharded on the current mesh (which may
            differ from the one that saved them).

        Returns:
          ``(step, state)``, or None when there is no checkpoint at all.

        Raises:
          CheckpointError: if checkpoints exist but none can be restored.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        failures = []
        for step in steps:
            try:
                state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
            except Exception as exc:  # orbax raises many types for damaged files
                failures.append((step, exc))
                print(f"warning: checkpoint {self.directory / str(step)} cannot be restored "
                      f"({_one_line(exc)}); falling back to the previous one", file=sys.stderr)
                continue
            if failures:
                self._quarantine([s for s, _ in failures])
            return step, state
        if failures:
            step, exc = failures[-1]
            raise CheckpointError(
                f"none of the checkpoints in {self.directory} can be restored (steps "
                f"{', '.join(str(s) for s, _ in failures)}; oldest failed with {_one_line(exc)}); "
                f"move the directory away to start from scratch")
        return None

    def _quarantine(self, steps: list[int]) -> None:
        """Moves unreadable step directories aside so new saves can use their steps."""
        if jax.process_index() == 0:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for step in steps:
                source = self.directory / str(step)
                if source.exists():
                    source.rename(self.directory / f"corrupt-{step}-{stamp}")
        multihost_utils.sync_global_devices("jaxcompress-checkpoint-quarantine")
        self._manager.close()
        self._manager = self._open()


def restore_params(workdir: str | pathlib.Path, subtree: str | None = None, *, field: str = "workdir") -> Any:
    """The parameters (host NumPy) of the newest checkpoint of a finished run, without building its model.

    The checkpoint's own metadata gives the shapes and dtypes, so any task's
    run reads back the same way (the model config is not needed).

    Args:
      workdir: a ``jaxcompress train`` work directory (holding ``checkpoints/``).
      subtree: a top-level key of the params to return (e.g. ``"encoder"``,
        ``"student"``); None returns them all.
      field: what the user set to ``workdir``, named in errors (e.g.
        ``"config key 'text.init_from'"``).

    Returns:
      A nested dict of NumPy arrays.

    Raises:
      CheckpointError: no checkpoint, an unreadable one, or no such subtree.
    """
    root = pathlib.Path(workdir).expanduser().absolute()
    directory = root / "checkpoints"
    where = f"{field} = {str(workdir)!r}"
    if not directory.is_dir():
        raise CheckpointError(f"{where}: no checkpoints in {directory} (point it at the workdir of a finished run, "
                              f"e.g. one trained with `jaxcompress train CONFIG --workdir {workdir}`)")
    # The handler is named so orbax reads the item's metadata without guessing (and warning).
    manager = ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler(),
                                    options=ocp.CheckpointManagerOptions(read_only=True, create=False,
                                                                         save_interval_steps=0))
    try:
        step = manager.latest_step()
        if step is None:
            raise CheckpointError(f"{where}: {directory} holds no finished checkpoint")
        metadata = manager.item_metadata(step)
        host = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=host), metadata,
                              is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
        state = manager.restore(step, args=ocp.args.StandardRestore(target))
    except CheckpointError:
        raise
    except Exception as exc:  # orbax raises many types for damaged files
        raise CheckpointError(f"{where}: cannot restore {directory}: {_one_line(exc)}") from None
    finally:
        manager.close()
    params = state.get("params", {}) if isinstance(state, dict) else {}
    if subtree is not None:
        if subtree not in params:
            raise CheckpointError(f"{where}: the checkpoint has no '{subtree}' parameters (top-level keys: "
                                  f"{', '.join(sorted(params)) or 'none'})")
        params = params[subtree]
    return jax.tree.map(np.asarray, params)


def graft_params(boxed: Any, values: Any, source: str) -> Any:
    """``boxed`` (an init tree with logical-axis boxes) with its values replaced by ``values`` (same tree,
    same shapes), so restored weights are sharded like fresh ones.

    Raises:
      CheckpointError: naming ``source`` and the first parameter that is missing or shaped differently.
    """
    flat_boxed = jax.tree_util.tree_flatten_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))[0]
    flat_values = dict(jax.tree_util.tree_flatten_with_path(values)[0])
    leaves = []
    for path, leaf in flat_boxed:
        shape = (leaf.value if isinstance(leaf, nn.Partitioned) else leaf).shape
        value = flat_values.get(path)
        if value is None or tuple(value.shape) != tuple(shape):
            where = jax.tree_util.keystr(path)
            raise CheckpointError(f"{source}: parameter {where} is missing or has shape "
                                  f"{None if value is None else value.shape}, expected {shape}")
        leaves.append(leaf.replace_boxed(jnp.asarray(value)) if isinstance(leaf, nn.Partitioned)
                      else jnp.asarray(value))
    treedef = jax.tree_util.tree_structure(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    return jax.tree_util.tree_unflatten(treedef, leaves)
