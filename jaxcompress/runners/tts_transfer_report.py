"""Report and plot of ``jaxcompress run tts-transfer`` (tables, correlation, the paper's claims).

References: Do et al., SSW 2023 (arXiv 2306.12040).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _claims(results: dict[str, Any]) -> list[str]:
    summary = results["summary"]["schemes"]
    lines = ["## The paper's claims against this run", ""]
    if all(s in summary for s in ("nomap", "map", "features")):
        for metric, unit in (("mcd", "dB"), ("cer", "")):
            n, m, f = (summary[s][metric] for s in ("nomap", "map", "features"))
            order = sorted((("nomap", n), ("map", m), ("features", f)), key=lambda kv: kv[1])
            lines.append(f"* Mean {metric.upper()} over pairs: nomap {_fmt(n)}, map {_fmt(m)}, features {_fmt(f)} "
                         f"{unit}; best to worst: {' < '.join(k for k, _ in order)} (paper, CER: features < map < "
                         f"nomap).")
        lines.append("* Pairwise wins (lower is better): "
                     + ", ".join(f"{k} {v}" for k, v in results["summary"]["wins"].items()) + ".")
    corr = results["correlations"]
    for scheme, entry in corr.items():
        a, d = entry.get("aspf~cer", {}), entry.get("family_distance~cer", {})
        lines.append(f"* {scheme}: ASPF vs CER r = {_fmt(a.get('pearson'))} (n = {a.get('n')}), family distance vs "
                     f"CER r = {_fmt(d.get('pearson'))}; ASPF vs MCD r = "
                     f"{_fmt(entry.get('aspf~mcd', {}).get('pearson'))}.")
    lines += ["", "The paper: higher ASPF lowers CER with phone-label input (nomap, map) but not with feature "
              "input; the family-tree distance has the unexpected sign. With n pairs this small a correlation "
              "needs |r| > 0.8 or so to mean anything.", ""]
    return lines


def report(results: dict[str, Any]) -> str:
    """Markdown report of a finished run."""
    s = results["settings"]
    lines = ["# TTS transfer to low-resource languages (eSpeak NG speech)", "",
             f"Sources {', '.join(s['sources'])}; targets {', '.join(s['targets'])}; pretraining "
             f"{s['pretrain_steps']} steps on 400 source utterances, fine-tuning {s['finetune_steps']} steps on "
             f"{s['target_utterances']} target utterances, {s['seeds']} seed(s). Scores on 40 held-out target "
             f"utterances with teacher-forced durations: MCD (dB, 13 mel cepstra, c0 excluded) against the "
             f"synthesiser's log-mels, and CER of a CTC character recogniser trained on the target's references.",
             "", "## Scores per pair", "",
             "| source | target | scheme | MCD (dB) | CER | ASPF (transcripts) | ASPF (CLDR text) | family dist. | "
             "unseen phones |", "|---|---|---|---|---|---|---|---|---|"]
    pairs = results["phonology"].get("pairs", {})
    for p in results["summary"]["pairs"]:
        info = pairs.get(f"{p['source']}-{p['target']}", {})
        std = f" ± {p['mcd_std']:.2f}" if p["seeds"] > 1 else ""
        cstd = f" ± {100 * p['cer_std']:.1f}" if p["seeds"] > 1 else ""
        lines.append(f"| {p['source'] or '-'} | {p['target']} | {p['scheme']} | {p['mcd']:.2f}{std} | "
                     f"{100 * p['cer']:.1f}%{cstd} | {_fmt(info.get('aspf'), 3)} | {_fmt(info.get('aspf_text'), 3)} | "
                     f"{info.get('family_distance', '-')} | {info.get('unseen_phones', '-')}"
                     f"/{info.get('target_phones', '-')} |")
    lines += ["", "## Baselines (same test utterances)", "", "| target | predictor | MCD (dB) | CER |", "|---|---|---|---|"]
    for target, entries in results["baselines"].items():
        for name, v in entries.items():
            if not isinstance(v, dict):
                continue
            lines.append(f"| {target} | {name} | {v['mcd']:.2f} | {100 * v['cer']:.1f}% |")
    lines += ["", "## Source pretraining (training-batch metrics at the last step)", "",
              "| source model | parameters | mel L1 | duration MSE |", "|---|---|---|---|"]
    for key, v in results.get("pretrain", {}).items():
        m = v.get("train_metrics") or {}
        lines.append(f"| {key} | {v.get('num_params', '-')} | {_fmt(m.get('mel_l1'), 3)} | "
                     f"{_fmt(m.get('duration_mse'), 3)} |")
    lines += ["", "## Means per scheme", "", "| scheme | pairs | MCD (dB) | CER |", "|---|---|---|---|"]
    for scheme, v in results["summary"]["schemes"].items():
        lines.append(f"| {scheme} | {v['pairs']} | {v['mcd']:.2f} | {100 * v['cer']:.1f}% |")
    lines += ["", "## Correlations over pairs (Pearson r, Spearman rho)", "",
              "| scheme | measure ~ score | n | r | p | rho |", "|---|---|---|---|---|---|"]
    for scheme, entry in results["correlations"].items():
        for key, v in entry.items():
            lines.append(f"| {scheme} | {key} | {v['n']} | {_fmt(v['pearson'])} | {_fmt(v.get('pearson_p'), 3)} | "
                         f"{_fmt(v['spearman'])} |")
    lines += ["", "## ASPF over CLDR words (sources x targets) and family distance", "",
              "| source | " + " | ".join(results["phonology"]["aspf_text"][next(iter(results["phonology"]["aspf_text"]))])
              + " |", "|---" * 7 + "|"]
    for source, row in results["phonology"]["aspf_text"].items():
        dist = results["phonology"]["family_distance"][source]
        lines.append(f"| {source} | " + " | ".join(f"{v:.3f} ({dist[t]})" for t, v in row.items()) + " |")
    lines += [""] + _claims(results) + [f"Wall time: {results['wall_time_s']:.0f} s.", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
    """MCD and CER per pair and scheme (bars), and CER against ASPF per scheme (scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = results["summary"]["pairs"]
    keys = sorted({(p["source"], p["target"]) for p in pairs if p["source"] is not None}, key=lambda k: (k[1], k[0]))
    schemes = ("nomap", "map", "features")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = np.arange(len(keys))
    for j, scheme in enumerate(schemes):
        for ax, metric, scale in ((axes[0], "mcd", 1.0), (axes[1], "cer", 100.0)):
            values = [next((p[metric] * scale for p in pairs if (p["source"], p["target"]) == k
                            and p["scheme"] == scheme), np.nan) for k in keys]
            ax.bar(x + (j - 1) * 0.27, values, 0.27, label=scheme)
    for ax, metric, scale, unit in ((axes[0], "mcd", 1.0, "MCD (dB)"), (axes[1], "cer", 100.0, "CER (%)")):
        for target in sorted({k[1] for k in keys}):
            base = results["baselines"][target]["phone_mean_mel"][metric] * scale
            idx = [i for i, k in enumerate(keys) if k[1] == target]
            ax.hlines(base, min(idx) - 0.45, max(idx) + 0.45, colors="k", linestyles="dashed",
                      label="per-phone mean mel" if target == keys[0][1] else None)
        ax.set_xticks(x, [f"{s}→{t}" for s, t in keys], rotation=45, fontsize=8)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, loc="lower right")
    rows = [r for r in results["rows"] if r["source"] is not None]
    for scheme in schemes:
        pts = [(r["aspf"], 100 * r["cer"]) for r in rows if r["scheme"] == scheme]
        if pts:
            axes[2].scatter(*zip(*pts), label=scheme, s=18)
    axes[2].set(xlabel="ASPF (training transcripts)", ylabel="CER (%)", title="source choice")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
