"""``jaxcompress run mtal``: multi-task active learning on street scenes, inter-task inconsistency vs baselines.

For each seed, an initial random labelled set of the pool (the ``train``
split of ``street_scenes``) is drawn; every strategy then runs the loop of
:mod:`jaxcompress.active.loop`: train the detection + segmentation network
(``mtal`` task, the core training loop, from scratch each cycle, fixed step
count) on the labelled rows, evaluate on the test split (mDSQ, mAP@0.5 with
VOC and COCO interpolation, mIoU), score the unlabelled pool and label
``budget`` more images. Identical labelled sets (cycle 0 of every strategy)
are trained once. A model trained on the whole pool gives the full-data
reference; the report gives, per strategy, the labelled fraction at which the
mean curve first reaches 95% of the full-data mDSQ (linear interpolation).

Baselines in the same run: random selection (the AL baseline), entropy per
task and combined, core-set, single-task flip consistency, and for the
metrics a label-free per-pixel prior (each pixel's most frequent class over
the labelled pool) for mIoU. A sanity check per seed: Spearman correlation,
on the test set, between each image's score under the cycle-0 model and its
error (1 - the image's own mDSQ).

Resumable: every loop writes its finished cycles atomically and every
training run its summary, so rerunning the same command after a kill
continues where it stopped. Writes ``results.json``, ``report.md`` and
``mtal_curves.png``.

References:
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023 (arXiv 2306.12398).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.active import consistency, metrics, strategies
from jaxcompress.active.boxes import nms
from jaxcompress.active.loop import ActiveLoop, LoopSettings, write_json_atomically
from jaxcompress.configlib import apply_overrides, to_dict
from jaxcompress.configs.mtal import mtal_config
from jaxcompress.nn.multitask import MultiTaskConfig
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.runners.workspace import enable_compilation_cache
from jaxcompress.ssl.probe import mean_std
from jaxcompress.tasks.mtal import MultiTaskTask
from jaxcompress.train.checkpoint import restore_params

#: NMS and score thresholds: AP reads every kept detection, mDSQ and the consistency scores the confident ones.
NMS_IOU, AP_SCORE, CONFIDENT = 0.5, 0.05, 0.3


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run covers."""

    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    pool_size: int
    test_size: int
    initial: int
    budget: int
    cycles: int
    steps: int
    batch_size: int = 32


def make_plan(quick: bool) -> Plan:
    """The quick look (~2.5 minutes) or the default run (36 trainings of 250 steps: an estimated 20-25 minutes on
    2 idle CPU cores, far longer on a loaded machine)."""
    if quick:
        return Plan(strategies=("random", "entropy", "inconsistency"), seeds=(0,), pool_size=200, test_size=64,
                    initial=20, budget=20, cycles=3, steps=80, batch_size=16)
    # The per-task entropies (strategies entropy_det, entropy_seg) enter the score/error correlations of every
    # run; as selection strategies they are left out of the default plan to fit 3 seeds on 2 shared cores.
    return Plan(strategies=("random", "entropy", "coreset", "flip_det", "inconsistency"), seeds=(0, 1, 2),
                pool_size=300, test_size=160, initial=30, budget=30, cycles=3, steps=250, batch_size=16)


#: The runner's network: a narrow two-block CNN (stride 4) and neck, so 3 seeds x 5 strategies fit on 2 CPU cores.
MODEL = MultiTaskConfig(channels=(8, 16), neck_width=24)
#: Adam peak rate for the short from-scratch trainings (1e-2 beat 5e-3 at 200 steps: mAP 0.31 vs 0.22).
LEARNING_RATE = 1e-2


# ----------------------------------------------------------------------------
# Inference on many images, host-side post-processing


class Predictor:
    """Jitted pool inference of one task, and the host-side NMS and pixel assignment."""

    def __init__(self, task: MultiTaskTask, chunk: int = 100):
        self.task, self.chunk = task, chunk
        self._predict = jax.jit(task.predict)
        m = task.settings
        self.settings = consistency.ConsistencySettings(thing_offset=m.thing_offset, num_det_classes=m.det_classes)

    def outputs(self, params: Any, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = [jax.device_get(self._predict(params, jnp.asarray(images[i:i + self.chunk])))
                 for i in range(0, len(images), self.chunk)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    @staticmethod
    def kept(out: dict[str, np.ndarray], i: int, prefix: str = "", threshold: float = AP_SCORE
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image i's detections after class-wise NMS: (boxes [n, 4], scores [n], classes [n])."""
        boxes, scores, classes = out[prefix + "boxes"][i], out[prefix + "scores"][i], out[prefix + "classes"][i]
        keep = nms(boxes, scores, classes, NMS_IOU, threshold)
        return boxes[keep], scores[keep], classes[keep]

    def detections(self, out: dict[str, np.ndarray], i: int) -> metrics.Detections:
        boxes, scores, classes = self.kept(out, i)
        masks = consistency.assign_pixels(boxes, scores, classes, out["seg"][i], self.settings)
        return metrics.Detections(boxes, scores, classes, masks)

    def inconsistency(self, out: dict[str, np.ndarray], i: int) -> float:
        boxes, scores, classes = self.kept(out, i, threshold=CONFIDENT)
        return consistency.image_inconsistency(boxes, scores, classes, out["seg"][i], self.settings)

    def flip_det(self, out: dict[str, np.ndarray], i: int) -> float:
        boxes, scores, classes = self.kept(out, i, threshold=CONFIDENT)
        fboxes, _, fclasses = self.kept(out, i, "flip_", threshold=CONFIDENT)
        return strategies.flip_detection_disagreement(boxes, scores, classes, fboxes, fclasses)


def ground_truth(split: dict[str, np.ndarray], i: int) -> metrics.GroundTruth:
    n = int(split["num_objects"][i])
    masks = np.stack([split["instances"][i] == k + 1 for k in range(n)]) if n else np.zeros((0,) + split["instances"].shape[1:], bool)
    return metrics.GroundTruth(split["boxes"][i, :n], split["classes"][i, :n], masks)


def evaluate_outputs(predictor: Predictor, out: dict[str, np.ndarray], test: dict[str, np.ndarray]
                     ) -> tuple[dict[str, float], list[metrics.Detections]]:
    """Test-set metrics from the model's outputs: mDSQ (+ mDQ, mSQ), mAP@0.5 (VOC, COCO), mIoU."""
    m = predictor.task.settings
    dets = [predictor.detections(out, i) for i in range(len(test["image"]))]
    truths = [ground_truth(test, i) for i in range(len(test["image"]))]
    dsq = metrics.detection_segmentation_quality(dets, truths, m.det_classes, CONFIDENT)
    confusion = metrics.confusion_matrix(out["seg"], test["segmentation"], m.seg_classes)
    return {"mdsq": dsq["mdsq"], "mdq": dsq["mdq"], "msq": dsq["msq"],
            "map_voc": metrics.detection_map(dets, truths, m.det_classes, 0.5, "voc")["map"],
            "map_coco": metrics.detection_map(dets, truths, m.det_classes, 0.5, "coco")["map"],
            "miou": metrics.mean_iou(confusion)["miou"]}, dets


def score_correlations(predictor: Predictor, out: dict[str, np.ndarray], test: dict[str, np.ndarray],
                       dets: list[metrics.Detections]) -> dict[str, float]:
    """Spearman rho between each image's selection score and its error (1 - own mDSQ), on the test set."""
    from scipy.stats import spearmanr

    m = predictor.task.settings
    n = len(test["image"])
    error = np.asarray([1.0 - metrics.detection_segmentation_quality([dets[i]], [ground_truth(test, i)],
                                                                      m.det_classes, CONFIDENT)["mdsq"]
                        for i in range(n)])
    signals = pool_signals(predictor, out, np.arange(n), ("entropy_det", "entropy_seg", "flip_det", "inconsistency"))
    signals["entropy"] = strategies.combine_scores("entropy", signals, np.random.default_rng(0))
    result = {}
    for name, values in signals.items():
        rho = spearmanr(values, error).statistic
        result[name] = float(rho) if np.isfinite(rho) else 0.0
    return result


def pool_signals(predictor: Predictor, out: dict[str, np.ndarray], rows: np.ndarray,
                 names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-image signals [len(rows)] that the score strategies combine (only the ones named)."""
    result: dict[str, np.ndarray] = {}
    if "entropy_det" in names:
        result["entropy_det"] = strategies.binary_entropy(out["scores"][rows]).mean(1)
    if "entropy_seg" in names:
        result["entropy_seg"] = out["entropy_seg"][rows]
    if "flip_seg" in names:
        result["flip_seg"] = out["flip_seg"][rows]
    if "flip_det" in names:
        result["flip_det"] = np.asarray([predictor.flip_det(out, i) for i in rows])
    if "inconsistency" in names:
        result["inconsistency"] = np.asarray([predictor.inconsistency(out, i) for i in rows])
    return result


#: Signals each strategy needs.
NEEDS = {"random": ("entropy_seg",), "entropy_det": ("entropy_det",), "entropy_seg": ("entropy_seg",),
         "entropy": ("entropy_det", "entropy_seg"), "max_uncertainty": ("entropy_det", "entropy_seg"),
         "flip_det": ("flip_det",), "flip_seg": ("flip_seg",), "inconsistency": ("inconsistency",)}


# ----------------------------------------------------------------------------
# Training with caching by labelled set


def _read(dataset: str, split: str, count: int) -> dict[str, np.ndarray]:
    source = data_lib.load_split(dataset, split)
    return source.read(np.arange(min(count, len(source))))


class Trainer:
    """Trains (or reuses) one model per (seed, labelled set) with the core loop, and evaluates it once."""

    def __init__(self, plan: Plan, request: RunRequest, out: pathlib.Path, test: dict[str, np.ndarray]):
        self.plan, self.request, self.out, self.test = plan, request, out, test
        self.task: MultiTaskTask | None = None
        self.predictor: Predictor | None = None

    def config(self, name: str, rows_file: pathlib.Path, seed: int) -> Any:
        config = mtal_config(name, MODEL, steps=self.plan.steps, batch_size=self.plan.batch_size,
                             learning_rate=LEARNING_RATE)
        config.data.eval_split = ""
        config.data.train_rows = str(rows_file)
        config.seed = config.data.seed = seed
        return apply_overrides(config, list(self.request.overrides))

    def train(self, seed: int, rows: np.ndarray) -> dict[str, Any]:
        """Model handle ``{"params", "workdir", "train_seconds"}`` for the labelled ``rows`` (sorted)."""
        from jaxcompress.train import train

        digest = hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest()[:12]
        workdir = self.out / "models" / f"seed{seed}-n{len(rows)}-{digest}"
        workdir.mkdir(parents=True, exist_ok=True)
        rows_file = workdir / "rows.json"
        if not rows_file.exists():
            write_json_atomically(rows_file, {"rows": [int(r) for r in rows]})
        config = self.config(workdir.name, rows_file, seed)
        if self.task is None:
            self.task = MultiTaskTask(config, data_lib.dataset_info(config.data.name))
            self.predictor = Predictor(self.task)
        summary_path = workdir / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
        else:
            summary = train(config, workdir, quiet=True)
        return {"params": restore_params(workdir), "workdir": workdir, "train_seconds": summary["wall_time_s"],
                "config": to_dict(config)}

    def evaluate(self, model: dict[str, Any], correlations: bool = False) -> dict[str, float]:
        """Test metrics of a model, cached in its work directory."""
        path = model["workdir"] / ("eval_corr.json" if correlations else "eval.json")
        if path.exists():
            return json.loads(path.read_text())
        out = self.predictor.outputs(model["params"], self.test["image"])
        result, dets = evaluate_outputs(self.predictor, out, self.test)
        result["train_seconds"] = model["train_seconds"]
        if correlations:
            result.update({f"rho_{k}": v for k, v in score_correlations(self.predictor, out, self.test, dets).items()})
        write_json_atomically(path, result)
        return result


def make_selector(strategy: str, trainer: Trainer, pool_images: np.ndarray):
    """``select_fn`` of the active loop for one strategy."""

    def select(model: dict[str, Any], labelled: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
        out = trainer.predictor.outputs(model["params"], pool_images)
        if strategy == "coreset":
            return strategies.k_center_greedy(out["embedding"], labelled, budget)
        free = np.flatnonzero(~labelled)
        signals = pool_signals(trainer.predictor, out, free, NEEDS[strategy])
        scores = np.full(len(labelled), -np.inf)
        scores[free] = strategies.combine_scores(strategy, signals, rng)
        return strategies.select_top(scores, labelled, budget, rng)

    return select


# ----------------------------------------------------------------------------
# The run


def pixel_prior_miou(pool: dict[str, np.ndarray], test: dict[str, np.ndarray], num_classes: int) -> float:
    """mIoU of a label-free baseline: every test pixel gets its position's most frequent class in the pool."""
    seg = pool["segmentation"].astype(np.int64)
    counts = np.stack([(seg == c).sum(0) for c in range(num_classes)])
    prior = counts.argmax(0)
    confusion = metrics.confusion_matrix(np.broadcast_to(prior, test["segmentation"].shape), test["segmentation"],
                                         num_classes)
    return metrics.mean_iou(confusion)["miou"]


def labels_to_reach(fractions: list[float], values: list[float], target: float) -> float | None:
    """First labelled fraction where the curve reaches ``target`` (linear interpolation); None if never."""
    for k, (f, v) in enumerate(zip(fractions, values)):
        if v >= target:
            if k == 0:
                return float(f)
            f0, v0 = fractions[k - 1], values[k - 1]
            return float(f0 + (target - v0) / (v - v0) * (f - f0))
    return None


METRICS = ("mdsq", "map_voc", "map_coco", "miou", "mdq", "msq")


def summarise(plan: Plan, curves: dict[str, dict[int, list[dict[str, Any]]]], full: dict[int, dict[str, float]]
              ) -> dict[str, Any]:
    """Mean/std over seeds per strategy and cycle, and labels needed for 95% of full-data mDSQ."""
    full_mean = {m: float(np.mean([f[m] for f in full.values()])) for m in METRICS} if full else {}
    rows = []
    for strategy, by_seed in curves.items():
        seeds = sorted(by_seed)
        if not seeds:
            continue
        n_cycles = min(len(by_seed[s]) for s in seeds)
        cycles = []
        for c in range(n_cycles):
            recs = [by_seed[s][c] for s in seeds]
            cycles.append({"cycle": c, "labelled_count": recs[0]["labelled_count"],
                           "labelled_fraction": recs[0]["labelled_fraction"],
                           **{m: mean_std([r["metrics"][m] for r in recs]) for m in METRICS}})
        row: dict[str, Any] = {"strategy": strategy, "seeds": seeds, "cycles": cycles}
        if full_mean:
            fr = [c["labelled_fraction"] for c in cycles]
            for m in ("mdsq", "map_voc", "miou"):
                row[f"fraction_to_95_{m}"] = labels_to_reach(fr, [c[m]["mean"] for c in cycles], 0.95 * full_mean[m])
        rows.append(row)
    return {"rows": rows, "full_data": full_mean,
            "full_data_per_seed": {str(s): {m: v[m] for m in METRICS} for s, v in full.items()}}


@register_experiment("mtal", help="multi-task active learning (detection + segmentation): inter-task "
                                  "inconsistency vs random/entropy/core-set/flip selection; mDSQ, mAP, mIoU")
def run(request: RunRequest) -> dict[str, Any]:
    """Runs every (seed, strategy) active loop, the full-data references, and writes the report."""
    start = time.perf_counter()
    out = pathlib.Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    enable_compilation_cache(out)
    plan = make_plan(request.quick)
    # --set data.name=... / data.eval_split=... point the run at another dataset in the street_scenes layout.
    base = apply_overrides(mtal_config("mtal", MODEL, steps=plan.steps), list(request.overrides))
    dataset, test_split = base.data.name, base.data.eval_split or "test"
    pool, test = _read(dataset, "train", plan.pool_size), _read(dataset, test_split, plan.test_size)
    trainer = Trainer(plan, request, out, test)
    baselines = {"pixel_prior_miou": pixel_prior_miou(pool, test, MODEL.seg_classes)}
    curves: dict[str, dict[int, list[dict[str, Any]]]] = {s: {} for s in plan.strategies}
    full: dict[int, dict[str, float]] = {}
    correlations: dict[int, dict[str, float]] = {}
    results: dict[str, Any] = {}

    def write(complete: bool) -> None:
        nonlocal results
        results = {"experiment": "mtal", "dataset": dataset, "quick": request.quick, "complete": complete,
                   "plan": dataclasses.asdict(plan), "model": to_dict(MODEL), "baselines": baselines,
                   **summarise(plan, curves, full),
                   "score_error_spearman": {str(s): v for s, v in correlations.items()},
                   "wall_time_s": round(time.perf_counter() - start, 1), "devices": jax.device_count(),
                   "jax_version": jax.__version__}
        write_json_atomically(out / "results.json", results)
        (out / "report.md").write_text(report_markdown(results))

    for seed in plan.seeds:
        settings = LoopSettings(pool_size=len(pool["image"]), initial_size=plan.initial, budget=plan.budget,
                                cycles=plan.cycles, seed=seed)
        first = trainer.train(seed, settings.initial())
        evaluated = trainer.evaluate(first, correlations=True)
        correlations[seed] = {k[4:]: v for k, v in evaluated.items() if k.startswith("rho_")}
        for strategy in plan.strategies:
            loop = ActiveLoop(out / "loops" / f"seed{seed}" / strategy, settings)
            records = loop.run(lambda cycle, rows, s=seed: trainer.train(s, rows), trainer.evaluate,
                               make_selector(strategy, trainer, pool["image"]))
            curves[strategy][seed] = records
            if not request.quiet:
                print(f"seed {seed} {strategy}: mDSQ " + " ".join(f"{r['metrics']['mdsq']:.3f}" for r in records),
                      flush=True)
            write(False)
        full[seed] = trainer.evaluate(trainer.train(seed, np.arange(len(pool["image"]))))
        write(False)
    write(True)
    plot_curves(results, out / "mtal_curves.png")
    return results


# ----------------------------------------------------------------------------
# Report


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def report_markdown(results: dict[str, Any]) -> str:
    """Learning-curve table per strategy, full-data reference, labels to 95%, score/error correlations."""
    plan = results["plan"]
    lines = ["# mtal: multi-task active learning (detection + segmentation)", "",
             f"Seeds {plan['seeds']}; pool {plan['pool_size']} street scenes, test {plan['test_size']}; initial "
             f"{plan['initial']} labelled, +{plan['budget']} per cycle, {plan['cycles']} cycles; {plan['steps']} "
             f"training steps of {plan['batch_size']} from scratch per cycle; wall time {results['wall_time_s']} s"
             + (" (quick run)" if results["quick"] else "") + ("" if results["complete"] else " **(partial)**") + ".",
             "", "Mean ± std over seeds (population std). mDSQ = mean over classes of DQ x SQ (box IoU > 0.5, "
             f"detections scoring >= {CONFIDENT}); mAP at box IoU 0.5, all-point (VOC) and 101-point (COCO) "
             "interpolation; mIoU over 5 classes.", "",
             "| strategy | labelled | mDSQ | mAP (VOC) | mAP (COCO) | mIoU |", "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        # A partial run may have finished a strategy for fewer seeds than planned: say which.
        name = row["strategy"] + ("" if len(row["seeds"]) == len(plan["seeds"]) else
                                  f" (seeds {', '.join(map(str, row['seeds']))})")
        for c in row["cycles"]:
            lines.append(f"| {name} | {c['labelled_count']} ({c['labelled_fraction']:.0%}) | "
                         f"{_fmt(c['mdsq'])} | {_fmt(c['map_voc'])} | {_fmt(c['map_coco'])} | {_fmt(c['miou'])} |")
    full = results.get("full_data") or {}
    if full:
        lines.append(f"| full pool | {plan['pool_size']} (100%) | {full['mdsq']:.3f} | {full['map_voc']:.3f} | "
                     f"{full['map_coco']:.3f} | {full['miou']:.3f} |")
    lines.append(f"| per-pixel class prior (no image) | - | - | - | - | {results['baselines']['pixel_prior_miou']:.3f} |")
    if full:
        lines += ["", "Labelled fraction where the mean curve first reaches 95% of the full-pool value "
                  "(linear interpolation; '-' = not reached within the cycles run):", "",
                  "| strategy | mDSQ | mAP (VOC) | mIoU |", "|---|---|---|---|"]
        for row in results["rows"]:
            cells = [row.get(f"fraction_to_95_{m}") for m in ("mdsq", "map_voc", "miou")]
            lines.append(f"| {row['strategy']} | " + " | ".join("-" if v is None else f"{v:.1%}" for v in cells) + " |")
    if results["score_error_spearman"]:
        names = sorted(next(iter(results["score_error_spearman"].values())))
        lines += ["", "Spearman rho between each test image's score (cycle-0 model) and its error 1 - mDSQ(image):",
                  "", "| seed | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for seed, values in results["score_error_spearman"].items():
            lines.append(f"| {seed} | " + " | ".join(f"{values[n]:.3f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, Any], path: pathlib.Path) -> None:
    """mDSQ, mAP and mIoU vs labelled fraction, one line per strategy with a ±std band; full pool dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("mdsq", "mDSQ"), ("map_voc", "mAP@0.5 (VOC)"), ("miou", "mIoU"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (key, title) in zip(axes, panels):
        for row in results["rows"]:
            x = [c["labelled_fraction"] for c in row["cycles"]]
            mean = np.asarray([c[key]["mean"] for c in row["cycles"]])
            std = np.asarray([c[key]["std"] for c in row["cycles"]])
            width = 2.5 if row["strategy"] == "inconsistency" else 1.3
            line, = ax.plot(x, mean, marker="o", linewidth=width, label=row["strategy"])
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12)
        full = results.get("full_data") or {}
        if key in full:
            ax.axhline(full[key], color="black", linestyle="--", linewidth=1, label="full pool")
            ax.axhline(0.95 * full[key], color="grey", linestyle=":", linewidth=1, label="95% of full pool")
        if key == "miou":
            ax.axhline(results["baselines"]["pixel_prior_miou"], color="brown", linestyle="-.", linewidth=1,
                       label="per-pixel prior")
        ax.set(xlabel="labelled fraction of the pool", ylabel=title, title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
