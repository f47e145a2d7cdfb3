"""``jaxcompress run ofa-speech``: one once-for-all speech encoder at every rate, against fixed-rate ones.

Steps (all offline, on the synthetic ``speech_*`` corpora):

1. pretrain the OFA encoder (lambda ~ U(0, 1) per batch) and one encoder per
   fixed lambda (``fixed_lambdas``) with the same budget, through the core loop
   (task ``ofa_speech``);
2. for every encoder, operating point (the OFA grid, or a fixed model's own
   lambda) and downstream target: encode the splits with the frozen encoder,
   fit a light probe (best validation step), score it on the test split, and
   record the measured frame period and the transformer's FLOPs;
3. adaptive rate: for every target and seed, train a probe with a learned
   ``lambda = sigmoid(rho)`` through the core loop (task ``speech_probe``), with
   the task loss alone and with a compute penalty, and record where lambda
   settles (as a frame period) and the test score there.

Writes ``results.json``, ``report.md`` (tables) and ``score_vs_frame_period.png``.
``--set KEY=VALUE`` overrides fields of :class:`OFASpeechSettings` (e.g.
``--set pretrain_steps=200``). Intermediate runs live under ``OUT/runs`` and are
reused when the command is repeated (finished runs are skipped).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.configlib import apply_overrides, option, validate
from jaxcompress.configs import get_preset
from jaxcompress.errors import ConfigError
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.ssl import ofa_eval
from jaxcompress.ssl.ofa import BASE_FRAME_MS
from jaxcompress.ssl.ofa_probe import PROBE_TARGETS
from jaxcompress.ssl.probe import HeadFit
from jaxcompress.train import train

_TARGETS = tuple(PROBE_TARGETS)


@dataclasses.dataclass
class OFASpeechSettings:
    """What ``jaxcompress run ofa-speech`` trains and evaluates (``--set`` any field)."""

    preset: str = option("ofa-speech-tiny", help="pretraining preset of every encoder")
    digits_data: str = option("speech_digits", help="dataset of the speaker/language/digits/phones targets")
    commands_data: str = option("speech_commands", help="dataset of the keyword target")
    pretrain_steps: int = option(200, help="pretraining steps of every encoder", min=1)
    pretrain_batch: int = option(32, help="pretraining batch size", min=1)
    fixed_lambdas: tuple[float, ...] = option((0.0, 0.5, 1.0), help="lambdas of the fixed-rate baselines")
    grid: tuple[float, ...] = option((0.0, 0.25, 0.5, 0.75, 1.0), help="operating points of the OFA encoder")
    targets: tuple[str, ...] = option(_TARGETS, help="downstream targets")
    probe_steps: int = option(300, help="steps of every probe fitted on frozen features", min=1)
    probe_lr: float = option(3e-3, help="probe learning rate", min=0.0, min_exclusive=True)
    sequence_probe_steps: int = option(900, help="steps of the CTC probes (digits, phones)", min=1)
    sequence_probe_lr: float = option(1e-2, help="learning rate of the CTC probes", min=0.0, min_exclusive=True)
    adaptive_targets: tuple[str, ...] = option(("keyword", "speaker", "digits", "phones"),
                                               help="targets of the adaptive-rate runs")
    adaptive_seeds: int = option(2, help="seeds per adaptive-rate run", min=0)
    adaptive_steps: int = option(120, help="steps of every adaptive-rate run", min=1)
    adaptive_batch: int = option(16, help="batch size of the adaptive-rate runs", min=1)
    adaptive_init: float = option(0.5, help="starting lambda of the adaptive-rate runs", min=0.0, max=1.0)
    penalties: tuple[float, ...] = option((0.0, 0.5), help="compute penalties mu of the adaptive-rate runs")

    def validate(self, prefix: str) -> None:
        for key in ("targets", "adaptive_targets"):
            bad = [t for t in getattr(self, key) if t not in PROBE_TARGETS]
            if bad:
                raise ConfigError(f"setting '{prefix}{key}' has unknown target(s) {', '.join(bad)}; "
                                  f"allowed: {', '.join(PROBE_TARGETS)}")
        for key in ("fixed_lambdas", "grid"):
            bad = [v for v in getattr(self, key) if not 0.0 <= v <= 1.0]
            if bad:
                raise ConfigError(f"setting '{prefix}{key}' must hold lambdas in [0, 1]; got {bad}")
        if any(p < 0 for p in self.penalties):
            raise ConfigError(f"setting '{prefix}penalties' must be >= 0; got {self.penalties}")


def quick_settings() -> OFASpeechSettings:
    """A smoke-sized run: tiny corpora, a 32-wide encoder, a few steps of everything."""
    return OFASpeechSettings(preset="ofa-speech-smoke", digits_data="speech_digits_tiny",
                             commands_data="speech_commands_tiny", pretrain_steps=6, pretrain_batch=8,
                             fixed_lambdas=(1.0,), grid=(0.0, 1.0), targets=("keyword", "digits"),
                             probe_steps=20, sequence_probe_steps=20, adaptive_targets=("keyword", "digits"),
                             adaptive_seeds=1, adaptive_steps=4, adaptive_batch=8, penalties=(0.0,))


def _log(request: RunRequest, message: str) -> None:
    if not request.quiet:
        print(message, flush=True)


def _dataset(settings: OFASpeechSettings, target: str) -> str:
    return settings.commands_data if PROBE_TARGETS[target].dataset == "speech_commands" else settings.digits_data


def _pretrain(settings: OFASpeechSettings, workdir: pathlib.Path, lam: float | None, quiet: bool
              ) -> dict[str, Any]:
    summary_path = workdir / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    mode = ["model.lambda_mode=uniform"] if lam is None else ["model.lambda_mode=fixed", f"model.fixed_lambda={lam}"]
    config = apply_overrides(get_preset(settings.preset), [
        f"data.name={settings.digits_data}", f"steps={settings.pretrain_steps}",
        f"data.batch_size={settings.pretrain_batch}", f"eval_every={settings.pretrain_steps}", *mode])
    config.name = workdir.name
    return train(config, workdir, quiet=quiet)


def _adaptive(settings: OFASpeechSettings, upstream: pathlib.Path, target: str, seed: int, penalty: float,
              workdir: pathlib.Path, quiet: bool) -> dict[str, Any]:
    summary_path = workdir / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    config = apply_overrides(get_preset("ofa-speech-probe"), [
        f"model.upstream={upstream}", f"model.target={target}", "model.learn_lambda=true",
        f"model.lam={settings.adaptive_init}", f"model.compute_penalty={penalty}",
        f"data.name={_dataset(settings, target)}", "data.eval_split=test", f"data.seed={seed}", f"seed={seed}",
        f"steps={settings.adaptive_steps}", f"data.batch_size={settings.adaptive_batch}",
        f"log_every={max(settings.adaptive_steps // 10, 1)}"])
    config.name = workdir.name
    return train(config, workdir, quiet=quiet)


def _num_labels(dataset: str, target: str) -> int:
    from jaxcompress.tasks.speech_probe import label_count

    return label_count(dataset, PROBE_TARGETS[target], None)


def _grid_rows(settings: OFASpeechSettings, name: str, workdir: pathlib.Path, lams: tuple[float, ...],
               request: RunRequest) -> list[dict[str, Any]]:
    """Probe scores of one encoder at each of ``lams`` on every target.

    Each split is encoded once per operating point and dataset; every target
    on that dataset fits its probe on the same features.
    """
    from jaxcompress.tasks.speech_probe import load_upstream

    config, params = load_upstream(str(workdir), key=f"encoder {name}")
    by_dataset: dict[str, list[str]] = {}
    for target in settings.targets:
        by_dataset.setdefault(_dataset(settings, target), []).append(target)
    rows = []
    for dataset, targets in by_dataset.items():
        splits = {s: data_lib.load_split(dataset, s) for s in ("train", "validation", "test")}
        fields = tuple(sorted({PROBE_TARGETS[t].field for t in targets}))
        for lam in lams:
            start = time.perf_counter()
            encoded = {s: ofa_eval.encode_records(config, params, src, lam, fields) for s, src in splits.items()}
            encode_s = time.perf_counter() - start
            for target in targets:
                start = time.perf_counter()
                spec = PROBE_TARGETS[target]
                views = {s: ofa_eval.for_target(e, spec) for s, e in encoded.items()}
                fit = ofa_eval.fit_probe(spec, _num_labels(dataset, target), views["train"], views["validation"],
                                         views["test"],
                                         _probe_settings(settings, spec.level))
                rows.append(_grid_row(name, target, lam, fit, views["test"], config,
                                      encode_s + time.perf_counter() - start))
                r = rows[-1]
                _log(request, f"  {name:10s} {target:9s} lambda {lam:.2f}  FP {r['frame_period_ms']:5.1f} ms  "
                              f"{spec.metric} {r['test']:.4f}  ({r['seconds']:.1f} s)")
    return rows


def _probe_settings(settings: OFASpeechSettings, level: str) -> HeadFit:
    """Utterance heads converge in a few hundred steps; CTC heads need more steps and a larger rate."""
    steps, lr = ((settings.probe_steps, settings.probe_lr) if level == "utterance"
                 else (settings.sequence_probe_steps, settings.sequence_probe_lr))
    return HeadFit(steps=steps, learning_rate=lr, eval_every=max(steps // 4, 1))


def _grid_row(name: str, target: str, lam: float, fit: dict[str, Any], test: ofa_eval.Encoded, config: Any,
              seconds: float) -> dict[str, Any]:
    """One table row: the probe's scores, the measured frame period and the transformer's cost on ``test``."""
    flops = ofa_eval.transformer_flops(test.lengths, config)
    base_flops = ofa_eval.transformer_flops(test.frames50, config)  # the same split at 50 Hz
    return {"encoder": name, "target": target, "metric": PROBE_TARGETS[target].metric, "lambda": lam,
            "test": fit["test"], "validation": fit["validation"], "best_step": fit["best_step"],
            "frame_period_ms": ofa_eval.frame_period_ms(test.frames50, test.lengths),
            "mean_frames": float(test.lengths.mean()), "mean_frames_50hz": float(test.frames50.mean()),
            "mean_alpha": float(test.alpha_sum.sum() / max(test.frames50.sum(), 1)),
            "transformer_gflops": flops / 1e9, "relative_flops": flops / base_flops,
            "seconds": round(seconds, 2)}


def _summarise_adaptive(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["penalty"]), []).append(run)
    out = []
    for (target, penalty), items in groups.items():
        def stat(key: str) -> tuple[float, float]:
            values = np.array([r[key] for r in items], np.float64)
            return float(values.mean()), float(values.std())

        lam, lam_sd = stat("lambda")
        fp, fp_sd = stat("frame_period_ms")
        sc, sc_sd = stat("test")
        out.append({"target": target, "penalty": penalty, "seeds": len(items), "metric": items[0]["metric"],
                    "lambda": lam, "lambda_std": lam_sd, "frame_period_ms": fp, "frame_period_ms_std": fp_sd,
                    "test": sc, "test_std": sc_sd})
    return out


def _fmt(value: float, metric: str) -> str:
    return f"{100 * value:.1f}%"


def _report(settings: OFASpeechSettings, results: dict[str, Any]) -> str:
    rows, adaptive = results["grid"], results["adaptive_summary"]
    lines = ["# Once-for-all sequence compression on synthetic speech", "",
             f"Encoders pretrained for {settings.pretrain_steps} steps (batch {settings.pretrain_batch}) on "
             f"`{settings.digits_data}`; probes fitted on frozen features for {settings.probe_steps} steps "
             f"(CTC probes: {settings.sequence_probe_steps}), "
             f"scored on the test split (accuracy: higher is better; error rate: lower is better). "
             f"FP = measured mean frame period of the compressed sequence; FLOPs = transformer FLOPs "
             f"relative to the 50 Hz sequence.", ""]
    for target in settings.targets:
        metric = PROBE_TARGETS[target].metric
        lines += [f"## {target} ({metric})", "", "| encoder | lambda | FP (ms) | frames | rel. FLOPs | test | "
                  "validation |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["target"] == target:
                lines.append(f"| {r['encoder']} | {r['lambda']:.2f} | {r['frame_period_ms']:.1f} | "
                             f"{r['mean_frames']:.1f} | {r['relative_flops']:.2f} | {_fmt(r['test'], metric)} | "
                             f"{_fmt(r['validation'], metric)} |")
        lines.append("")
    if adaptive:
        lines += ["## Adaptive rate (learned lambda per task)", "",
                  f"Starting at lambda = {settings.adaptive_init}, {settings.adaptive_steps} steps, "
                  f"mean +- std over seeds; penalty mu adds mu * mean(alpha_mix).", "",
                  "| target | mu | seeds | lambda | FP (ms) | test |", "|---|---|---|---|---|---|"]
        for a in sorted(adaptive, key=lambda a: (a["penalty"], a["target"])):
            lines.append(f"| {a['target']} | {a['penalty']:g} | {a['seeds']} | {a['lambda']:.3f} +- "
                         f"{a['lambda_std']:.3f} | {a['frame_period_ms']:.1f} +- {a['frame_period_ms_std']:.1f} | "
                         f"{_fmt(a['test'], a['metric'])} +- {100 * a['test_std']:.1f} |")
        lines.append("")
    lines += [f"Wall time: {results['wall_time_s']:.0f} s.", ""]
    return "\n".join(lines)


def _plot(settings: OFASpeechSettings, results: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(settings.targets)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.2), squeeze=False)
    for ax, target in zip(axes[0], targets):
        metric = PROBE_TARGETS[target].metric
        rows = [r for r in results["grid"] if r["target"] == target]
        ofa_rows = sorted((r for r in rows if r["encoder"] == "ofa"), key=lambda r: r["frame_period_ms"])
        ax.plot([r["frame_period_ms"] for r in ofa_rows], [r["test"] for r in ofa_rows], "o-", label="OFA")
        fixed = [r for r in rows if r["encoder"] != "ofa"]
        if fixed:
            ax.plot([r["frame_period_ms"] for r in fixed], [r["test"] for r in fixed], "s", color="C3",
                    label="fixed-rate")
        for a in results["adaptive_summary"]:
            if a["target"] == target:
                ax.errorbar([a["frame_period_ms"]], [a["test"]], xerr=[a["frame_period_ms_std"]],
                            yerr=[a["test_std"]], fmt="*", markersize=10,
                            label=f"learned (mu={a['penalty']:g})")
        ax.set(title=target, xlabel="frame period (ms)", ylabel=metric)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@register_experiment("ofa-speech", "once-for-all CIF speech encoder vs fixed-rate encoders, and learned rates per task")
def run(request: RunRequest) -> dict[str, Any]:
    start = time.perf_counter()
    settings = quick_settings() if request.quick else OFASpeechSettings()
    settings = apply_overrides(settings, list(request.overrides))
    validate(settings)
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    for name in {settings.digits_data, settings.commands_data}:
        data_lib.prepare(name)

    encoders: list[tuple[str, pathlib.Path, tuple[float, ...]]] = [("ofa", runs / "ofa", tuple(settings.grid))]
    encoders += [(f"fixed-{lam:g}", runs / f"fixed-{lam:g}", (lam,)) for lam in settings.fixed_lambdas]
    pretrain = {}
    for name, workdir, _ in encoders:
        _log(request, f"pretraining {name} ...")
        lam = None if name == "ofa" else float(name.split("-", 1)[1])
        pretrain[name] = _pretrain(settings, workdir, lam, request.quiet)

    grid: list[dict[str, Any]] = []
    for name, workdir, lams in encoders:
        _log(request, f"probing {name} at lambda {', '.join(f'{v:g}' for v in lams)}")
        grid.extend(_grid_rows(settings, name, workdir, lams, request))

    adaptive: list[dict[str, Any]] = []
    for penalty in settings.penalties:
        for target in settings.adaptive_targets:
            for seed in range(settings.adaptive_seeds):
                workdir = runs / "adaptive" / f"{target}-mu{penalty:g}-seed{seed}"
                _log(request, f"adaptive rate: {target}, mu={penalty:g}, seed {seed}")
                summary = _adaptive(settings, runs / "ofa", target, seed, penalty, workdir, request.quiet)
                metrics = summary["eval_metrics"]
                spec = PROBE_TARGETS[target]
                test = (metrics["edits"] / max(metrics["ref_length"], 1e-9) if spec.level == "sequence"
                        else metrics["accuracy"])
                adaptive.append({"target": target, "penalty": penalty, "seed": seed, "metric": spec.metric,
                                 "lambda": metrics["lambda"], "test": test,
                                 "frame_period_ms": BASE_FRAME_MS * metrics["frames_50hz"]
                                 / max(metrics["compressed_frames"], 1e-6),
                                 "compressed_frames": metrics["compressed_frames"]})

    results = {"settings": dataclasses.asdict(settings), "quick": request.quick,
               "pretrain": {k: {"eval_metrics": v.get("eval_metrics"), "wall_time_s": v.get("wall_time_s"),
                                "num_params": v.get("num_params")} for k, v in pretrain.items()},
               "grid": grid, "adaptive": adaptive, "adaptive_summary": _summarise_adaptive(adaptive),
               "wall_time_s": round(time.perf_counter() - start, 1)}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(_report(settings, results))
    _plot(settings, results, out / "score_vs_frame_period.png")
    return results
