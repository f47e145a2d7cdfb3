"""The pool-based active-learning loop, resumable after a kill at any point.

Cycle k trains on the labelled set L_k, evaluates, and (except in the last
cycle) scores the unlabelled pool and selects ``budget`` more images:
``L_{k+1} = L_k + selected_k``. ``L_0`` is a random draw of
``initial_size`` pool images from the loop's seed.

Every finished cycle is appended to ``<directory>/cycles.json`` by writing a
temporary file, flushing it to disk and renaming it over the old one
(``os.replace`` is atomic), so a SIGKILL at any moment leaves either the old
or the new list, never half of one. On restart the loop reads that file,
skips the finished cycles and continues with the labelled set they imply;
the cycle that was running is redone (its training may resume from its own
checkpoints). Randomness (initial draw, tie-breaks) is keyed by
(seed, cycle), so a resumed run selects exactly what an uninterrupted one
would.

References:
  Settles, "Active Learning Literature Survey", 2009 (pool-based sampling);
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023 (the cycle protocol).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable

import numpy as np

from jaxcompress.errors import ConfigError, UserError

#: train_fn(cycle, labelled pool indices int [n]) -> a model handle (anything evaluate/select accept).
TrainFn = Callable[[int, np.ndarray], Any]
#: evaluate_fn(model) -> scalar metrics.
EvaluateFn = Callable[[Any], dict[str, float]]
#: select_fn(model, labelled bool [N], budget, rng) -> int [budget] new pool indices.
SelectFn = Callable[[Any, np.ndarray, int, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """Pool size, initial labelled set, budget per cycle, number of cycles, seed."""

    pool_size: int
    initial_size: int
    budget: int
    cycles: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cycles < 1:
            raise ConfigError(f"active-learning 'cycles' must be >= 1, got {self.cycles}")
        if not 1 <= self.initial_size <= self.pool_size:
            raise ConfigError(f"active-learning 'initial_size' must be in 1..{self.pool_size}, got {self.initial_size}")
        if self.budget < 1 or self.initial_size + self.budget * (self.cycles - 1) > self.pool_size:
            raise ConfigError(f"active-learning 'budget' = {self.budget} over {self.cycles - 1} selections plus "
                              f"{self.initial_size} initial images exceeds the pool of {self.pool_size}")

    def initial(self) -> np.ndarray:
        """L_0: sorted pool indices int [initial_size], a pure function of the seed."""
        return np.sort(np.random.default_rng([self.seed, 0]).permutation(self.pool_size)[:self.initial_size])

    def cycle_rng(self, cycle: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1, cycle])


def write_json_atomically(path: pathlib.Path, payload: Any) -> None:
    """Temporary file, fsync, rename: readers (and a restart after SIGKILL) see the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ActiveLoop:
    """Runs (or resumes) the cycles of one strategy in ``directory``.

    Each record in ``cycles.json``: ``cycle``, ``labelled_count``, ``labelled_fraction``, ``labelled`` (sorted
    pool indices trained on), ``selected`` (picked for the next cycle, in pick order), ``metrics``, ``seconds``.
    """

    def __init__(self, directory: str | os.PathLike, settings: LoopSettings):
        self.directory = pathlib.Path(directory)
        self.settings = settings
        self.path = self.directory / "cycles.json"

    def finished(self) -> list[dict[str, Any]]:
        """The cycles already finished (empty for a new directory).

        Raises:
          UserError: the directory holds a loop with other settings.
        """
        if not self.path.exists():
            return []
        try:
            saved = json.loads(self.path.read_text())
        except ValueError as error:
            raise UserError(f"{self.path} is not valid JSON ({error}); delete it to restart this loop") from None
        if saved.get("settings") != dataclasses.asdict(self.settings):
            raise UserError(f"{self.path} belongs to a loop with settings {saved.get('settings')}, not "
                            f"{dataclasses.asdict(self.settings)}; use another directory")
        return saved["cycles"]

    def run(self, train_fn: TrainFn, evaluate_fn: EvaluateFn, select_fn: SelectFn,
            on_cycle: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Runs the remaining cycles; returns every cycle's record."""
        self.directory.mkdir(parents=True, exist_ok=True)
        s = self.settings
        records = self.finished()
        labelled = np.zeros(s.pool_size, bool)
        labelled[s.initial()] = True
        for record in records:
            labelled[np.asarray(record["selected"], np.int64)] = True
        for cycle in range(len(records), s.cycles):
            start = time.perf_counter()
            rows = np.flatnonzero(labelled)
            model = train_fn(cycle, rows)
            metrics = {k: float(v) for k, v in evaluate_fn(model).items()}
            selected = np.zeros(0, np.int64)
            if cycle < s.cycles - 1:
                selected = np.asarray(select_fn(model, labelled.copy(), s.budget, s.cycle_rng(cycle)), np.int64)
                if selected.size != s.budget or np.unique(selected).size != s.budget or labelled[selected].any():
                    raise UserError(f"selection of cycle {cycle} must be {s.budget} distinct unlabelled pool "
                                    f"indices, got {selected.tolist()[:10]}...")
            record = {"cycle": cycle, "labelled_count": int(rows.size),
                      "labelled_fraction": rows.size / s.pool_size, "labelled": rows.tolist(),
                      "selected": selected.tolist(), "metrics": metrics,
                      "seconds": round(time.perf_counter() - start, 2)}
            records.append(record)
            write_json_atomically(self.path, {"settings": dataclasses.asdict(s), "cycles": records})
            labelled[selected] = True
            if on_cycle is not None:
                on_cycle(record)
        return records
