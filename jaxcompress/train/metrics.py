"""Metric logs (JSON lines and TensorBoard) and the progress display.

Only process 0 writes files. When a run resumes from step ``s``, lines for
steps after ``s`` (written before the interruption, then redone) are dropped so
``metrics.jsonl`` reads as one clean curve.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Any, TextIO

import tqdm


def read_metrics(workdir: pathlib.Path, split: str | None = None) -> list[dict[str, Any]]:
    """The records of ``WORKDIR/metrics.jsonl`` in order, only those of ``split`` if given."""
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return records if split is None else [r for r in records if r["split"] == split]


class MetricsWriter:
    """Appends ``{"step": s, "split": ..., name: value}`` records.

    Files: ``WORKDIR/metrics.jsonl`` and TensorBoard events in ``WORKDIR/tensorboard``.
    """

    def __init__(self, workdir: pathlib.Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self._tb = None
        self.resumed_elapsed_s = 0.0  # training time already spent before a resume
        if not enabled:
            return
        self._truncate_after(resume_step)
        # Imported lazily: tensorboardX pulls in protobuf, slow to import.
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(workdir / "tensorboard"), purge_step=resume_step + 1)

    def _truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
                if record["step"] <= step:
                    kept.append(line)
                    self.resumed_elapsed_s = float(record.get("elapsed_s", self.resumed_elapsed_s))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, **{k: _finite(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in metrics.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _finite(value: float) -> Any:
    value = float(value)
    return value if math.isfinite(value) else str(value)


class Progress:
    """A tqdm bar on a terminal; plain lines when logging to a file; nothing when quiet.

    Shows step, loss, throughput (examples per second) and the ETA.
    """

    def __init__(self, total: int, initial: int, quiet: bool, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.interactive = not quiet and self.stream.isatty()
        self._bar = (tqdm.tqdm(total=total, initial=initial, file=self.stream, unit="step",
                               dynamic_ncols=True) if self.interactive else None)
        self._start = time.perf_counter()
        self._start_step = initial

    def update(self, step: int, metrics: dict[str, float], examples_per_second: float) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}",
                                  ex_per_s=f"{examples_per_second:,.0f}", refresh=True)
            return
        elapsed = time.perf_counter() - self._start
        done = step - self._start_step
        eta = elapsed / done * (self.total - step) if done else float("nan")
        print(f"step {step}/{self.total}  loss {metrics.get('loss', float('nan')):.4f}  "
              f"{examples_per_second:,.0f} ex/s  eta {_clock(eta)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
