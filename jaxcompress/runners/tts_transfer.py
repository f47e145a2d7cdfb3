"""``jaxcompress run tts-transfer``: low-resource TTS transfer with three input schemes, and ASPF.

Steps (all offline; speech synthesised by eSpeak NG, datasets ``tts_<lang>``):

1. phonology: phone counts of every language over its CLDR words (eSpeak NG IPA),
   the ASPF and family-distance matrices of the paper's 5 sources x 6 targets;
2. a CTC character recogniser per target language, trained on the target's
   reference (synthesiser) log-mels, the CER judge (task ``tts_ctc``);
3. per source language, the acoustic model pretrained twice (task ``tts``):
   phone ids, and phonological feature vectors (PanPhon + silence bit);
4. per (source, target, seed), fine-tuning on the first ``target_utterances`` target
   utterances with (a) ``nomap``: target phones unseen in the source get new,
   untrained embedding rows; (b) ``map``: they are replaced by the most similar
   source phone (PanPhon features, context-frequency tie-break); (c) ``features``:
   the feature-input model; plus ``scratch`` (the same target data, no pretraining);
5. scores on the target's held-out test utterances (teacher-forced durations):
   mel cepstral distortion against the references and the recogniser's CER on the
   synthesised mels, beside baselines (the mean training mel, the per-phone mean
   mel; the recogniser's CER on the references themselves);
6. correlation (Pearson and Spearman, over pairs) of ASPF and family distance with
   the scores, per scheme; a few Griffin-Lim WAV samples.

Writes ``results.json``, ``report.md``, ``tts_transfer.png`` and ``samples/*.wav``.
``--set KEY=VALUE`` overrides fields of :class:`TTSTransferSettings`. Intermediate
runs live under ``OUT/runs`` and are reused when the command is repeated.

References: Do, Coler, Dijkstra, Klabbers, "Strategies in Transfer Learning for
Low-Resource Speech Synthesis: Phone Mapping, Features Input, and Source Language
Selection", SSW 2023 (arXiv 2306.12040).
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
from jaxcompress.phonology import aspf as aspf_lib
from jaxcompress.phonology import inventory, languages
from jaxcompress.phonology.features import feature_table
from jaxcompress.phonology.mapping import map_phones
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.train import train

SCHEMES = ("nomap", "map", "features")


@dataclasses.dataclass
class TTSTransferSettings:
    """What ``jaxcompress run tts-transfer`` trains and evaluates (``--set`` any field)."""

    sources: tuple[str, ...] = option(("en", "ru"), help="source languages (pretraining; the paper's: "
                                      "en,fi,hi,ja,ru)")
    targets: tuple[str, ...] = option(("bg", "ka", "sw"), help="target languages (fine-tuning; the paper's: "
                                      "bg,ka,kk,sw,ur,uz)")
    seeds: int = option(1, help="fine-tuning seeds per pair and scheme", min=1)
    pretrain_steps: int = option(300, help="steps of every source pretraining", min=1)
    finetune_steps: int = option(80, help="steps of every target fine-tuning", min=1)
    recognizer_steps: int = option(400, help="steps of every target recogniser", min=1)
    batch_size: int = option(16, help="batch size of every run", min=1)
    target_utterances: int = option(40, help="target utterances fine-tuned on (of 400)", min=1, max=400)
    finetune_lr: float = option(1e-3, help="fine-tuning learning rate", min=0.0, min_exclusive=True)
    hidden_size: int = option(64, help="acoustic model width", min=8)
    max_frames: int = option(160, help="frames the acoustic model sees per utterance (longer ones are cropped in "
                             "training and left out of the test scores); 0 keeps the records' 256", min=0)
    feature_table: str = option("panphon", help="features of the mapping and the feature input: panphon (24, "
                                "bundled) or phoible (37, needs phoible_path)", choices=("panphon", "phoible"))
    phoible_path: str = option("", help="a user-supplied phoible-segments-features.tsv (CC BY-SA, not bundled)")
    samples: int = option(1, help="test utterances rendered as WAV per scheme (first pair)", min=0)
    griffin_lim_iterations: int = option(32, help="Griffin-Lim iterations of the WAV samples", min=1)

    def validate(self, prefix: str) -> None:
        for key in ("sources", "targets"):
            codes = getattr(self, key)
            if not codes:
                raise ConfigError(f"setting '{prefix}{key}' must name at least one language")
            for code in codes:
                languages.get_language(code, f"setting '{prefix}{key}'")


def quick_settings() -> TTSTransferSettings:
    """Two sources, one target, a few dozen steps: about two minutes once the data is built."""
    return TTSTransferSettings(sources=("en", "ru"), targets=("bg",), pretrain_steps=60, finetune_steps=30,
                               recognizer_steps=80, hidden_size=64)


def _log(request: RunRequest, message: str) -> None:
    if not request.quiet:
        print(message, flush=True)


def _train(preset: str, workdir: pathlib.Path, overrides: list[str], quiet: bool, **model: Any) -> dict[str, Any]:
    summary = workdir / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    config = apply_overrides(get_preset(preset), overrides)
    for key, value in model.items():
        setattr(config.model, key, value)
    config.name = workdir.name
    return train(config, workdir, quiet=quiet)


def _compilation_cache(runs: pathlib.Path) -> None:
    """A persistent XLA cache under ``runs``: the many runs share step shapes, so most compile once."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        runs.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(runs / "xla_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_PREDICTORS: dict[str, Any] = {}


def _predictor(net: Any) -> Any:
    """One jitted teacher-forced prediction per model config (its repr keys the cache)."""
    import jax

    from jaxcompress.nn.tts import FastSpeech

    key = repr(net)
    if key not in _PREDICTORS:
        model = FastSpeech(net, deterministic=True)
        _PREDICTORS[key] = jax.jit(lambda params, batch: model.apply(
            {"params": params}, batch["inputs"], batch["phone_mask"], batch["durations"], batch["mel"].shape[1]).mel)
    return _PREDICTORS[key]


def _transcripts(code: str, split: str, limit: int | None = None) -> list[list[str]]:
    """Phone sequences (silence included) of a ``tts_<code>`` split."""
    source = data_lib.load_split(f"tts_{code}", split)
    names = source.info.metadata["phones"]
    n = len(source) if limit is None else min(limit, len(source))
    raw = source.read(np.arange(n))
    return [[names[i] for i in row[:k]] for row, k in zip(raw["phones"], raw["num_phones"])]


def _text_counts(codes: list[str]) -> dict[str, Any]:
    """Phone counts per language over its CLDR words (one eSpeak NG transcription each)."""
    from jaxcompress.speech.espeak import Engine

    out = {}
    with Engine(1) as engine:
        for code in codes:
            words = inventory.cldr_words(code)
            out[code] = inventory.phone_counts(inventory.split_ipa(t) for t in engine.phonemize(words, code))
    return out


def _stats(values: np.ndarray, scores: np.ndarray) -> dict[str, float | int | None]:
    from scipy.stats import pearsonr, spearmanr

    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(scores) == 0:
        return {"n": int(len(values)), "pearson": None, "spearman": None, "pearson_p": None}
    r, p = pearsonr(values, scores)
    return {"n": int(len(values)), "pearson": float(r), "pearson_p": float(p),
            "spearman": float(spearmanr(values, scores)[0])}


class _Evaluator:
    """Scores acoustic models on one target's test split: MCD against the references and CER."""

    def __init__(self, target: str, recognizer_dir: pathlib.Path, fine_tune: list[list[str]], max_frames: int):
        import jax

        from jaxcompress.configs import get_preset as preset
        from jaxcompress.tasks.tts import RecognizerTask, recognizer_errors
        from jaxcompress.train.checkpoint import restore_params

        self.target = target
        self.test = data_lib.load_split(f"tts_{target}", "test")
        frames = self.test.read(np.arange(len(self.test)))["num_frames"]
        keep = np.flatnonzero(frames <= max_frames) if max_frames else np.arange(len(self.test))
        self.raw = self.test.read(keep)
        self.frames = np.asarray(self.raw["num_frames"])
        self.reference = np.asarray(self.raw["mel"], np.float32)[:, :max_frames or None]
        config = apply_overrides(preset("tts-recognizer"), [f"data.name=tts_{target}"])
        task = RecognizerTask(config, data_lib.dataset_info(f"tts_{target}"))
        params = restore_params(recognizer_dir)
        self._errors = jax.jit(lambda mel, mask, labels: recognizer_errors(task.model, params, mel, mask, labels))
        self.mask = np.arange(self.reference.shape[1])[None, :] < self.frames[:, None]
        self.labels = np.asarray(self.raw["chars"], np.int32)
        self._train_raw = data_lib.load_split(f"tts_{target}", "train").read(np.arange(len(fine_tune)))

    def cer(self, mel: np.ndarray) -> float:
        out = self._errors(mel, self.mask, self.labels)
        return float(np.sum(out["edits"]) / max(float(np.sum(out["ref_length"])), 1.0))

    def mcd(self, mel: np.ndarray) -> float:
        from jaxcompress.speech.vocoder import mel_cepstral_distortion

        return float(np.mean([mel_cepstral_distortion(mel[i, :n], self.reference[i, :n])
                              for i, n in enumerate(self.frames)]))

    def score(self, mel: np.ndarray) -> dict[str, float]:
        return {"mcd": self.mcd(mel), "cer": self.cer(mel)}

    def baselines(self) -> dict[str, dict[str, float]]:
        """Mean training mel; per-phone mean mel (teacher-forced durations); the references themselves."""
        train_mel = np.asarray(self._train_raw["mel"], np.float32)
        frames = [train_mel[i, :n] for i, n in enumerate(self._train_raw["num_frames"])]
        mean = np.concatenate(frames).mean(0)
        per_phone: dict[int, list[np.ndarray]] = {}
        for i, f in enumerate(frames):
            ends = np.cumsum(self._train_raw["durations"][i][:self._train_raw["num_phones"][i]])
            for p, start, end in zip(self._train_raw["phones"][i], np.r_[0, ends[:-1]], ends):
                if end > start:
                    per_phone.setdefault(int(p), []).append(f[start:end])
        phone_means = {p: np.concatenate(v).mean(0) for p, v in per_phone.items()}
        mean_mel = np.where(self.mask[..., None], mean[None, None], 0.0).astype(np.float32)
        phone_mel = np.zeros_like(self.reference)
        for i in range(len(self.frames)):
            t = 0
            for p, d in zip(self.raw["phones"][i][:self.raw["num_phones"][i]],
                            self.raw["durations"][i][:self.raw["num_phones"][i]]):
                phone_mel[i, t:t + d] = phone_means.get(int(p), mean)
                t += d
        return {"mean_mel": self.score(mean_mel), "phone_mean_mel": self.score(phone_mel),
                "references": {"mcd": 0.0, "cer": self.cer(self.reference)}}


def _predict(workdir: pathlib.Path, config_overrides: list[str], model: dict[str, Any], evaluator: _Evaluator
             ) -> np.ndarray:
    """Log-mels [N, T, M] of the target's test split from a finished tts run (teacher-forced durations)."""
    from jaxcompress.tasks.tts import TTSTask
    from jaxcompress.train.checkpoint import restore_params

    config = apply_overrides(get_preset("tts-fastspeech"), config_overrides)
    for key, value in model.items():
        setattr(config.model, key, value)
    config.model.init_from = ""
    task = TTSTask(config, data_lib.dataset_info(config.data.name))
    batch = task.prepare_batch(evaluator.raw)
    return np.asarray(_predictor(task.net)(restore_params(workdir), batch))


def _write_wav(path: pathlib.Path, log_mel: np.ndarray, iterations: int) -> None:
    from scipy.io import wavfile

    from jaxcompress.data.builders.tts import TTS_FEATURES
    from jaxcompress.speech.vocoder import griffin_lim

    audio = griffin_lim(log_mel, TTS_FEATURES, iterations)
    wavfile.write(path, TTS_FEATURES.sample_rate, (audio * 32767).astype(np.int16))


@register_experiment("tts-transfer", "low-resource TTS transfer: no mapping vs phone mapping vs feature input; "
                                     "ASPF and family distance for source choice")
def run(request: RunRequest) -> dict[str, Any]:
    start = time.perf_counter()
    settings = quick_settings() if request.quick else TTSTransferSettings()
    settings = apply_overrides(settings, list(request.overrides))
    validate(settings)
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    codes = list(dict.fromkeys([*settings.sources, *settings.targets]))
    for code in codes:
        _log(request, f"preparing tts_{code} ...")
        data_lib.prepare(f"tts_{code}")

    # 1. Phonology over real text.
    text_counts = _text_counts(list(languages.LANGUAGES))
    phonology = {"aspf_text": {s: {t: aspf_lib.aspf(text_counts[s], text_counts[t]) for t in languages.TARGETS}
                               for s in languages.SOURCES},
                 "family_distance": {s: {t: languages.family_distance(s, t) for t in languages.TARGETS}
                                     for s in languages.SOURCES},
                 "inventory_size": {c: len(v) for c, v in text_counts.items()}}

    _compilation_cache(runs)
    common = ["data.eval_split=", f"data.batch_size={settings.batch_size}", f"model.net.hidden_size={settings.hidden_size}",
              f"model.net.intermediate_size={2 * settings.hidden_size}", f"model.max_frames={settings.max_frames}",
              f"model.feature_table={settings.feature_table}", f"model.phoible_path={settings.phoible_path}"]
    k = settings.target_utterances
    table = feature_table(settings.feature_table, settings.phoible_path)

    # 2. Recognisers; 3. source pretraining.
    recognizers = {}
    for target in settings.targets:
        _log(request, f"recogniser for {target} ...")
        recognizers[target] = _train("tts-recognizer", runs / f"recognizer-{target}",
                                     [f"data.name=tts_{target}", f"steps={settings.recognizer_steps}", "data.eval_split=",
                                      f"data.batch_size={settings.batch_size}"], request.quiet)
    pretrain = {}
    for source in settings.sources:
        for kind in ("ids", "features"):
            _log(request, f"pretraining {source} ({kind}) ...")
            pretrain[f"{source}-{kind}"] = _train("tts-fastspeech", runs / f"pretrain-{source}-{kind}",
                                                  [*common, f"data.name=tts_{source}", f"model.net.input_kind={kind}",
                                                   f"steps={settings.pretrain_steps}"], request.quiet)

    # 4-5. Fine-tuning and scores.
    rows: list[dict[str, Any]] = []
    baselines: dict[str, Any] = {}
    samples_dir = out / "samples"
    for target in settings.targets:
        target_train = _transcripts(target, "train", k)
        target_phones = list(data_lib.load_split(f"tts_{target}", "train").info.metadata["phones"])
        evaluator = _Evaluator(target, runs / f"recognizer-{target}", target_train, settings.max_frames)
        baselines[target] = {**evaluator.baselines(), "test_utterances": int(len(evaluator.frames))}
        _log(request, f"{target} baselines: " + json.dumps(baselines[target]))
        ft = [*common, f"data.name=tts_{target}", f"data.train_split=train[:{k}]",
              f"steps={settings.finetune_steps}", f"optim.learning_rate={settings.finetune_lr}"]
        for seed in range(settings.seeds):
            workdir = runs / f"scratch-{target}-seed{seed}"
            _log(request, f"scratch {target} seed {seed} ...")
            summary = _train("tts-fastspeech", workdir, [*ft, f"seed={seed}", f"data.seed={seed}"], request.quiet)
            mel = _predict(workdir, ft, {}, evaluator)
            rows.append({"source": None, "target": target, "scheme": "scratch", "seed": seed,
                         **evaluator.score(mel), "train_mel_l1": summary["train_metrics"].get("mel_l1")})
        for source in settings.sources:
            source_train = _transcripts(source, "train")
            source_counts = inventory.phone_counts(source_train)
            target_counts = inventory.phone_counts(target_train)
            source_phones = list(data_lib.load_split(f"tts_{source}", "train").info.metadata["phones"])
            unseen = [p for p in target_phones if p not in source_phones]
            mapping = map_phones(unseen, source_counts, table, inventory.context_counts(target_train),
                                 inventory.context_counts(source_train))
            pair = {"aspf": aspf_lib.aspf(source_counts, target_counts),
                    "aspf_text": phonology["aspf_text"].get(source, {}).get(target,
                                                                           aspf_lib.aspf(text_counts[source],
                                                                                         text_counts[target])),
                    "family_distance": languages.family_distance(source, target),
                    "unseen_phones": len(unseen), "target_phones": len(target_phones),
                    "unseen_token_share": sum(target_counts[p] for p in unseen) / max(sum(target_counts.values()), 1),
                    "mapping": mapping}
            schemes = {"nomap": {"symbols": tuple(source_phones + unseen)},
                       "map": {"symbols": tuple(source_phones), "phone_map": tuple(mapping.items())},
                       "features": {}}
            for scheme, model in schemes.items():
                kind = "features" if scheme == "features" else "ids"
                overrides = [*ft, f"model.net.input_kind={kind}"]
                for seed in range(settings.seeds):
                    workdir = runs / f"{scheme}-{source}-{target}-seed{seed}"
                    _log(request, f"{scheme} {source} -> {target} seed {seed} ...")
                    summary = _train("tts-fastspeech", workdir, [*overrides, f"seed={seed}", f"data.seed={seed}"],
                                     request.quiet, init_from=str(runs / f"pretrain-{source}-{kind}"), **model)
                    mel = _predict(workdir, overrides, model, evaluator)
                    row = {"source": source, "target": target, "scheme": scheme, "seed": seed,
                           **evaluator.score(mel), "train_mel_l1": summary["train_metrics"].get("mel_l1"),
                           **{key: value for key, value in pair.items() if key != "mapping"}}
                    rows.append(row)
                    _log(request, f"  MCD {row['mcd']:.2f} dB  CER {100 * row['cer']:.1f}%")
                    if seed == 0 and settings.samples and target == settings.targets[0] \
                            and source == settings.sources[0]:
                        samples_dir.mkdir(exist_ok=True)
                        for i in range(min(settings.samples, len(evaluator.frames))):
                            n = int(evaluator.frames[i])
                            _write_wav(samples_dir / f"{source}-{target}-{scheme}-{i}.wav", mel[i, :n],
                                       settings.griffin_lim_iterations)
                            if scheme == "nomap":
                                _write_wav(samples_dir / f"{target}-reference-{i}.wav", evaluator.reference[i, :n],
                                           settings.griffin_lim_iterations)
            pair_key = f"{source}-{target}"
            phonology.setdefault("pairs", {})[pair_key] = pair

    results = {"settings": dataclasses.asdict(settings), "quick": request.quick, "phonology": phonology,
               "recognizers": {t: s.get("eval_metrics") for t, s in recognizers.items()},
               "pretrain": {key: {"train_metrics": s.get("train_metrics"), "num_params": s.get("num_params"),
                                  "wall_time_s": s.get("wall_time_s")} for key, s in pretrain.items()},
               "rows": rows, "baselines": baselines}
    results["summary"] = summarise(rows, settings)
    results["correlations"] = correlations(rows)
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    from jaxcompress.runners.tts_transfer_report import plot, report

    (out / "report.md").write_text(report(results))
    plot(results, out / "tts_transfer.png")
    return results


def summarise(rows: list[dict[str, Any]], settings: TTSTransferSettings) -> dict[str, Any]:
    """Mean (and std over seeds) of MCD and CER per pair and scheme, and per scheme over pairs."""
    out: dict[str, Any] = {"pairs": [], "schemes": {}}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["target"], r["scheme"]), []).append(r)
    for (source, target, scheme), items in groups.items():
        mcd = np.array([r["mcd"] for r in items])
        cer = np.array([r["cer"] for r in items])
        out["pairs"].append({"source": source, "target": target, "scheme": scheme, "seeds": len(items),
                             "mcd": float(mcd.mean()), "mcd_std": float(mcd.std()), "cer": float(cer.mean()),
                             "cer_std": float(cer.std())})
    for scheme in ("scratch", *SCHEMES):
        items = [p for p in out["pairs"] if p["scheme"] == scheme]
        if items:
            out["schemes"][scheme] = {"mcd": float(np.mean([p["mcd"] for p in items])),
                                      "cer": float(np.mean([p["cer"] for p in items])), "pairs": len(items)}
    wins = {}
    by_pair: dict[tuple, dict[str, dict[str, float]]] = {}
    for p in out["pairs"]:
        if p["source"] is not None:
            by_pair.setdefault((p["source"], p["target"]), {})[p["scheme"]] = p
    for a, b in (("map", "nomap"), ("features", "nomap"), ("features", "map")):
        for metric in ("mcd", "cer"):
            n = [v[a][metric] < v[b][metric] for v in by_pair.values() if a in v and b in v]
            wins[f"{a}<{b} ({metric})"] = f"{sum(n)}/{len(n)}"
    out["wins"] = wins
    return out


def correlations(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pearson/Spearman over (source, target) pairs of ASPF and family distance against MCD and CER."""
    out: dict[str, Any] = {}
    for scheme in SCHEMES:
        pairs: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            if r["scheme"] == scheme:
                pairs.setdefault((r["source"], r["target"]), []).append(r)
        if not pairs:
            continue
        items = [{**v[0], "mcd": float(np.mean([r["mcd"] for r in v])), "cer": float(np.mean([r["cer"] for r in v]))}
                 for v in pairs.values()]
        entry = {}
        for measure in ("aspf", "aspf_text", "family_distance"):
            x = np.array([i[measure] for i in items], np.float64)
            for metric in ("mcd", "cer"):
                entry[f"{measure}~{metric}"] = _stats(x, np.array([i[metric] for i in items], np.float64))
        out[scheme] = entry
    return out
