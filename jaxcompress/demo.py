"""``jaxcompress demo``: the main job, train large then compress, on the embedded corpus.

It is ``jaxcompress run large-then-compress`` with its defaults (``--quick``:
two sizes and a smaller budget). See
:mod:`jaxcompress.runners.large_then_compress` for the stages and
``experiments/large_then_compress/README.md`` for a full run's numbers.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from jaxcompress.runners.large_then_compress import run_large_then_compress, settings_for


def run_demo(out: str, *, quick: bool = False, quiet: bool = False, overrides: Sequence[str] = ()) -> dict:
    """Runs the workflow into ``out`` and prints where the report is. Resumes if interrupted.

    ``overrides`` are ``KEY=VALUE`` settings of
    :class:`~jaxcompress.runners.large_then_compress.LargeThenCompressConfig`.
    """
    config = settings_for(quick, overrides)
    out_dir = pathlib.Path(out).expanduser().absolute()
    results = run_large_then_compress(config, out_dir, quiet=quiet)
    one, two = results["claim_1"], results["claim_2"]
    print(f"Pretrained {len(results['sizes'])} encoder sizes at {config.budget_tflops} TFLOPs each, fine-tuned "
          f"and compressed them ({len(results['compression'])} compressed models) in "
          f"{results['wall_time_s'] / 60:.1f} min (this invocation; finished stages are skipped).")
    print(f"Claim 1 (larger models reach a given loss in fewer steps): "
          f"{'supported' if one['supported_steps'] else 'not supported'} by this run; "
          f"claim 2 (compressed large beats lightly compressed small at equal size): "
          f"{two['verdict']} (differences beyond 2 standard errors count).")
    print(f"Report: {out_dir / 'report.md'}; plots: {', '.join(str(out_dir / p) for p in results['plots'])}")
    return results
