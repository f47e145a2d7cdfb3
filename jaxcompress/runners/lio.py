"""``jaxcompress run lio``: Look-into-Object on cluttered canvases, with and without each module.

For every dataset (``cluttered_digits``, the fine-grained ``part_shapes``)
and seed, the same backbone is trained by the core loop (``lio`` task) on the
same anchor + positives batches in these variants:

* ``plain``: classification only (OEL and SCL weights 0);
* ``oel``: + object-extent learning; ``scl``: + spatial-context learning
  (anchor and loss over the whole map, as without a mask);
* ``lio``: both (OEL's region masks SCL), anchor grouping (the paper);
* ``lio_reference``: both, with the reference code's OEL grouping.

The deployed model of every run is the plain backbone on
``params["backbone"]``; the runner checks that its parameter tree and compiled
FLOPs are those of the plain backbone, and scores test accuracy with it.
Localisation on the test canvases (box known, never used in training): IoU of
``m > mean(m)`` (OEL's predicted mask) with the object box and the pointing
game, beside the same scores for the pseudo-mask target M computed from
same-class test groups, for the channel-mean feature energy, and for the whole
canvas (chance). Baselines in the same run: the majority class and logistic
regression on raw pixels.

``lio_reference`` runs on the first dataset only. Writes ``results.json``,
``report.md``, ``lio_accuracy.png`` and ``lio_masks.png``.

References:
  Zhou et al., "Look-into-Object: Self-supervised Structure Modeling for
  Object Recognition", CVPR 2020.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress import data as data_lib
from jaxcompress.configlib import apply_overrides, to_dict
from jaxcompress.configs.lio import lio_config
from jaxcompress.runners import RunRequest, register_experiment
from jaxcompress.ssl import lio_eval, lio_targets
from jaxcompress.ssl.lio import LIOConfig
from jaxcompress.ssl.probe import mean_std
from jaxcompress.tasks.lio import LIOTask
from jaxcompress.train.checkpoint import restore_params

#: (oel_weight, scl_weight, grouping, scl_use_mask) of each variant.
VARIANTS: dict[str, tuple[float, float, str, bool]] = {
    "plain": (0.0, 0.0, "anchor", True),
    "oel": (0.1, 0.0, "anchor", True),
    "scl": (0.0, 0.1, "anchor", False),
    "lio": (0.1, 0.1, "anchor", True),
    "lio_reference": (0.1, 0.1, "reference", True),
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run covers."""

    datasets: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int = 16
    resnet_variants: tuple[str, ...] = ()  # variants also run with a ResNet-18 backbone (first dataset, first seed)
    resnet_steps: int = 0


def make_plan(quick: bool) -> Plan:
    """The quick look (about 2 minutes) or the default run (under 20 minutes on 2 CPU cores)."""
    if quick:
        return Plan(datasets=("part_shapes",), variants=("plain", "lio"), seeds=(0,), steps=150)
    # lio_reference runs on the first dataset only; ResNet rows are opt-in (resnet_variants) for time.
    return Plan(datasets=("part_shapes", "cluttered_digits"), variants=tuple(VARIANTS), seeds=(0, 1, 2), steps=300)


#: Conv widths of the runner's CNN: a quarter of the preset's compute, so 3 seeds fit the CPU budget.
CHANNELS = (16, 32, 32)


def variant_model(variant: str, backbone: str = "cnn") -> LIOConfig:
    """The model config of a variant (same backbone and positives in all)."""
    oel, scl, grouping, use_mask = VARIANTS[variant]
    return LIOConfig(backbone=backbone, channels=CHANNELS, oel_weight=oel, scl_weight=scl, grouping=grouping,
                     scl_use_mask=use_mask)


# ----------------------------------------------------------------------------
# Baselines and analysis


def baselines(train: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """Majority class and logistic regression on raw pixels, scored on the test split."""
    from sklearn.linear_model import LogisticRegression

    majority = np.bincount(train["label"]).argmax()
    x_train = train["image"].reshape(len(train["label"]), -1)
    x_test = test["image"].reshape(len(test["label"]), -1)
    probe = LogisticRegression(C=0.1, max_iter=300, random_state=seed).fit(x_train, train["label"])
    return {"majority": float(np.mean(test["label"] == majority)),
            "logistic_pixels": float(np.mean(probe.predict(x_test) == test["label"]))}


def same_class_groups(labels: np.ndarray, group_size: int, seed: int = 0) -> np.ndarray:
    """Row indices int [G_count, group_size]: every image with group_size - 1 others of its class."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(labels):
        pool = np.flatnonzero((labels == label) & (np.arange(len(labels)) != k))
        rows.append(np.concatenate([[k], rng.choice(pool, group_size - 1, replace=False)]))
    return np.asarray(rows)


def analyse(task: LIOTask, params: Any, test: dict[str, np.ndarray], chunk: int = 64) -> dict[str, Any]:
    """Test accuracy of the deployed backbone and localisation of every map; maps of the first images."""
    deployed = jax.jit(task.logits)
    train_mode = jax.jit(lambda p, x: task.model.apply({"params": p}, x, train=True))
    images, labels, boxes = test["image"], test["label"], test["box"]
    height, width = images.shape[1:3]
    group = task.settings.group_size
    groups = same_class_groups(labels, group)
    correct, maps = [], {"mask": [], "target": [], "energy": []}
    keep: dict[str, list[np.ndarray]] = {"mask": [], "scl": [], "anchor": [], "region": []}
    for start in range(0, len(labels), chunk):
        rows = np.arange(start, min(start + chunk, len(labels)))
        logits = deployed(task.inference_params(params), jnp.asarray(images[rows]))
        correct.append(np.asarray(logits.argmax(-1)) == labels[rows])
        grouped = groups[rows].reshape(-1)  # each test image first in its own same-class group
        out = jax.device_get(train_mode(params, jnp.asarray(images[grouped])))
        feats = out["features"]
        n = feats.shape[1]
        own = np.arange(len(rows)) * group
        fgroups = feats.reshape(len(rows), group, n * n, feats.shape[-1])
        maps["target"].append(np.asarray(lio_targets.grouped_oel_targets(jnp.asarray(fgroups)))[:, 0])
        maps["energy"].append(np.maximum(feats[own], 0).mean(-1).reshape(len(rows), -1))
        if "mask" in out:
            maps["mask"].append(out["mask"][own])
        for key in keep:
            if key in out:
                keep[key].append(out[key][own])
    result: dict[str, Any] = {"accuracy": float(np.concatenate(correct).mean())}
    for name, values in maps.items():
        if values:
            result[f"loc_{name}"] = lio_eval.localisation_scores(np.concatenate(values), boxes, height, width)
    full = lio_eval.box_masks(np.tile([[0, 0, height, width]], (len(labels), 1)), height, width)
    result["loc_chance_iou"] = float(lio_eval.iou(full, lio_eval.box_masks(boxes, height, width)).mean())
    result["_maps"] = {k: np.concatenate(v)[:8] for k, v in keep.items() if v}
    result["grid"] = int(n)
    return result


def inference_check(task: LIOTask, params: Any, example: np.ndarray) -> dict[str, Any]:
    """Is the deployed model the plain backbone? Same tree and shapes, same compiled FLOPs."""
    plain = nn.unbox(task.backbone.init(jax.random.key(0), jnp.asarray(example))["params"])
    deployed = task.inference_params(params)
    same_tree = jax.tree.structure(plain) == jax.tree.structure(deployed) and \
        jax.tree.map(np.shape, plain) == jax.tree.map(np.shape, deployed)

    def flops(fn: Any, p: Any) -> float:
        cost = jax.jit(fn).lower(p, jnp.asarray(example)).compile().cost_analysis()
        return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])

    full_forward = flops(lambda p, x: task.model.apply({"params": p}, x, train=False), params)
    plain_forward = flops(lambda p, x: task.backbone.apply({"params": p}, x), plain)
    count = int(sum(np.size(leaf) for leaf in jax.tree.leaves(deployed)))
    return {"same_tree": bool(same_tree), "flops_inference": full_forward, "flops_plain": plain_forward,
            "deployed_params": count,
            "training_params": int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))}


# ----------------------------------------------------------------------------
# The run


def _read_split(name: str, split: str) -> dict[str, np.ndarray]:
    source = data_lib.load_split(name, split)
    arrays = source.read(np.arange(len(source)))
    return {"image": arrays["image"].astype(np.float32), "label": arrays["label"].astype(np.int64),
            "box": arrays["box"].astype(np.int64)}


def _load_finished(workdir: pathlib.Path, config: Any) -> dict[str, Any] | None:
    """The saved score of a run already finished with this exact config (the runner resumes), else None."""
    try:
        saved = json.loads((workdir / "score.json").read_text())
        if saved["config"] != json.loads(json.dumps(to_dict(config), sort_keys=True)):
            return None
        with np.load(workdir / "maps.npz") as maps:
            return {**saved["score"], "_maps": {k: maps[k] for k in maps.files}}
    except (OSError, ValueError, KeyError):
        return None


def _train_one(dataset: str, variant: str, backbone: str, seed: int, steps: int, batch_size: int,
               request: RunRequest, out: pathlib.Path, test: dict[str, np.ndarray]) -> dict[str, Any]:
    from jaxcompress.train import train

    name = f"{dataset}-{backbone}-{variant}-seed{seed}"
    config = lio_config(name, dataset, variant_model(variant, backbone), steps=steps,
                        batch_size=batch_size)
    config.data.eval_split = ""
    config.seed = config.data.seed = seed
    config = apply_overrides(config, list(request.overrides))
    workdir = out / "runs" / name
    finished = _load_finished(workdir, config)
    if finished is not None:
        return finished
    if workdir.exists():
        shutil.rmtree(workdir)
    summary = train(config, workdir, quiet=True)
    params = restore_params(workdir)
    task = LIOTask(config, data_lib.dataset_info(dataset))
    result = analyse(task, params, test)
    result.update(seed=seed, train_seconds=summary["wall_time_s"],
                  train_metrics={k: float(v) for k, v in summary["train_metrics"].items()},
                  inference=inference_check(task, params, test["image"][:1]))
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    np.savez(workdir / "maps.npz", **result["_maps"])
    scalars = {k: v for k, v in result.items() if k != "_maps"}
    (workdir / "score.json").write_text(json.dumps({"config": to_dict(config), "score": scalars}, sort_keys=True))
    if not request.quiet:
        loc = result.get("loc_mask", {}).get("iou")
        print(f"{name}: test accuracy {result['accuracy']:.3f}" + (f", mask IoU {loc:.3f}" if loc else ""),
              flush=True)
    return result


@register_experiment("lio", help="Look-into-Object (OEL + SCL) vs the plain backbone on cluttered canvases: "
                                 "accuracy, module ablation, object-extent IoU")
def run(request: RunRequest) -> dict[str, Any]:
    """Trains every (seed, dataset, variant), analyses it and writes the report.

    Seeds run outermost and ``results.json`` / ``report.md`` are rewritten after
    every training run (``complete`` false until the end), so an interrupted
    run still leaves every variant's numbers for the seeds it finished.
    """
    start = time.perf_counter()
    out = pathlib.Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(request.quick)
    splits = {d: (_read_split(d, "train"), _read_split(d, "test")) for d in plan.datasets}
    base = {d: baselines(*splits[d]) for d in plan.datasets}
    jobs = [(seed, d, v, "cnn", plan.steps) for seed in plan.seeds for d in plan.datasets for v in plan.variants
            if not (v == "lio_reference" and d != plan.datasets[0])]
    jobs += [(plan.seeds[0], plan.datasets[0], v, "resnet", plan.resnet_steps) for v in plan.resnet_variants]
    scores: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    examples: dict[str, dict[str, np.ndarray]] = {}
    results: dict[str, Any] = {}
    for done, (seed, dataset, variant, backbone, steps) in enumerate(jobs, 1):
        test = splits[dataset][1]
        score = _train_one(dataset, variant, backbone, seed, steps, plan.batch_size, request, out, test)
        maps = score.pop("_maps")
        if variant == "lio" and backbone == "cnn" and dataset not in examples:
            examples[dataset] = {"images": test["image"][:8], "boxes": test["box"][:8], **maps}
        scores.setdefault((dataset, variant, backbone, steps), []).append(score)
        rows = [summarise(d, v, b, n, s) for (d, v, b, n), s in scores.items()]
        results = {"experiment": "lio", "quick": request.quick, "complete": done == len(jobs),
                   "runs_done": done, "runs_planned": len(jobs), "seeds": list(plan.seeds), "steps": plan.steps,
                   "batch_anchors": plan.batch_size, "positives": LIOConfig().positives,
                   "channels": list(CHANNELS), "baselines": base, "rows": rows,
                   "wall_time_s": round(time.perf_counter() - start, 1), "devices": jax.device_count(),
                   "jax_version": jax.__version__}
        (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (out / "report.md").write_text(report_markdown(results))
    plot_accuracy(results, out / "lio_accuracy.png")
    plot_masks(examples, out / "lio_masks.png")
    return results


def summarise(dataset: str, variant: str, backbone: str, steps: int, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of a (dataset, variant, backbone) row."""
    row: dict[str, Any] = {"dataset": dataset, "variant": variant, "backbone": backbone, "steps": steps,
                           "accuracy": mean_std([s["accuracy"] for s in scores]),
                           "chance_iou": scores[0]["loc_chance_iou"], "grid": scores[0]["grid"],
                           "train_seconds": float(np.mean([s["train_seconds"] for s in scores])),
                           "inference": scores[0]["inference"], "per_seed": scores}
    for name in ("mask", "target", "energy"):
        key = f"loc_{name}"
        if key in scores[0]:
            row[key] = {metric: mean_std([s[key][metric] for s in scores]) for metric in ("iou", "pointing")}
    return row


def _fmt(stat: dict[str, float] | None) -> str:
    return "-" if stat is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def report_markdown(results: dict[str, Any]) -> str:
    """The results table (markdown)."""
    lines = ["# lio: Look-into-Object on cluttered canvases", "",
             f"Seeds {results['seeds']}, {results['steps']} steps of {results['batch_anchors']} anchors x "
             f"(1 + {results['positives']} positives), {results['devices']} device(s), wall time "
             f"{results['wall_time_s']} s" + (" (quick run)" if results["quick"] else "") + "."
             + ("" if results.get("complete", True) else
                f" **Partial: {results['runs_done']} of {results['runs_planned']} training runs done.**"), "",
             "Test accuracy of the deployed backbone (mean ± std over seeds). Localisation on test canvases: IoU "
             "of `score > mean(score)` with the object box, and pointing game; `mask` = OEL's predicted m, "
             "`target` = the pseudo-mask M from 2 same-class test positives, `energy` = channel-mean of "
             "ReLU features; chance = IoU of the whole canvas.", "",
             "| dataset | backbone | variant | steps | test accuracy | IoU mask | IoU target | IoU energy | "
             "pointing mask | chance IoU | train s |", "|---" * 11 + "|"]
    for dataset, base in results["baselines"].items():
        lines.append(f"| {dataset} | - | majority class | - | {base['majority']:.3f} | - | - | - | - | - | - |")
        lines.append(f"| {dataset} | - | logistic regression, raw pixels | - | {base['logistic_pixels']:.3f} "
                     f"| - | - | - | - | - | - |")
        for r in (r for r in results["rows"] if r["dataset"] == dataset):
            def loc(name: str, metric: str, row: dict[str, Any] = r) -> str:
                return _fmt(row.get(f"loc_{name}", {}).get(metric))
            lines.append(f"| {dataset} | {r['backbone']} | {r['variant']} | {r['steps']} | {_fmt(r['accuracy'])} | "
                         f"{loc('mask', 'iou')} | {loc('target', 'iou')} | {loc('energy', 'iou')} | "
                         f"{loc('mask', 'pointing')} | {r['chance_iou']:.3f} | {r['train_seconds']:.0f} |")
    lines += ["", "Deployed model = plain backbone (checked per row: same parameter tree; compiled inference "
              "FLOPs of the LIO model vs the plain backbone):", ""]
    for r in results["rows"]:
        inf = r["inference"]
        lines.append(f"- {r['dataset']} {r['backbone']} {r['variant']}: same tree {inf['same_tree']}, FLOPs "
                     f"{inf['flops_inference']:.0f} vs {inf['flops_plain']:.0f}, deployed params "
                     f"{inf['deployed_params']:,} (training {inf['training_params']:,})")
    return "\n".join(lines) + "\n"


def plot_accuracy(results: dict[str, Any], path: pathlib.Path) -> None:
    """Bars of test accuracy and localisation IoU per dataset and variant, baselines as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["baselines"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    ticks, names, top = [], [], 0.0
    for col, dataset in enumerate(datasets):
        rows = [r for r in results["rows"] if r["dataset"] == dataset]
        x = np.arange(len(rows)) + col * (len(rows) + 1.5)
        colours = plt.cm.tab10(np.arange(len(rows)))
        acc = [r["accuracy"] for r in rows]
        axes[0].bar(x, [a["mean"] for a in acc], yerr=[a["std"] for a in acc], capsize=3, color=colours)
        base = results["baselines"][dataset]
        axes[0].hlines(base["logistic_pixels"], x[0] - 0.5, x[-1] + 0.5, colors="black", linestyles="--",
                       label="logistic regression on pixels" if col == 0 else None)
        axes[0].hlines(base["majority"], x[0] - 0.5, x[-1] + 0.5, colors="grey", linestyles=":",
                       label="majority class" if col == 0 else None)
        top = max(top, max(a["mean"] + a["std"] for a in acc), base["logistic_pixels"])
        ious = [r.get("loc_mask", r.get("loc_target"))["iou"] for r in rows]
        axes[1].bar(x, [i["mean"] for i in ious], yerr=[i["std"] for i in ious], capsize=3, color=colours)
        axes[1].hlines(rows[0]["chance_iou"], x[0] - 0.5, x[-1] + 0.5, colors="grey", linestyles=":",
                       label="whole canvas (chance)" if col == 0 else None)
        ticks += list(x)
        names += [f"{r['variant']}" + ("" if r["backbone"] == "cnn" else f" ({r['backbone']})") + f"\n{dataset}"
                  if k == 0 else r["variant"] + ("" if r["backbone"] == "cnn" else f" ({r['backbone']})")
                  for k, r in enumerate(rows)]
    for ax in axes:
        ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    axes[0].set(ylabel="test accuracy (deployed backbone)", ylim=(0, min(1.0, 1.25 * top)),
                title="accuracy, mean ± std over seeds")
    axes[1].set(ylabel="IoU with object box", ylim=(0, 1), title="IoU of m > mean(m) (no OEL: of target M)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_masks(examples: dict[str, dict[str, np.ndarray]], path: pathlib.Path, count: int = 6) -> None:
    """Per test canvas: image + box, OEL mask m, region and SCL anchor, predicted distance and angle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(examples)
    fig, axes = plt.subplots(4 * len(names), count, figsize=(1.9 * count, 7.6 * len(names)), squeeze=False)
    for d, dataset in enumerate(names):
        ex = examples[dataset]
        n = int(round(np.sqrt(ex["mask"].shape[1])))
        for k in range(count):
            image, box = ex["images"][k, ..., 0], ex["boxes"][k]
            size = image.shape[0]
            ax = axes[4 * d, k]
            ax.imshow(image, cmap="gray")
            ax.add_patch(plt.Rectangle((box[1] - 0.5, box[0] - 0.5), box[3] - box[1], box[2] - box[0], fill=False,
                                       color="red"))
            ax.set_title(f"{dataset}" if k == 0 else "", fontsize=8)
            axes[4 * d + 1, k].imshow(ex["mask"][k].reshape(n, n), cmap="magma")
            region = ex["region"][k].reshape(n, n)
            axes[4 * d + 1, k].contour(region, levels=[0.5], colors="cyan", linewidths=1)
            if "anchor" in ex:
                r, c = divmod(int(ex["anchor"][k]), n)
                axes[4 * d + 1, k].plot(c, r, "g*", markersize=10)
            if "scl" in ex:
                axes[4 * d + 2, k].imshow(ex["scl"][k, :, 0].reshape(n, n), cmap="viridis")
                axes[4 * d + 3, k].imshow(ex["scl"][k, :, 1].reshape(n, n), cmap="twilight")
            del size
        for row, label in enumerate(("canvas + box", "mask m, region, anchor", "predicted distance",
                                     "predicted angle")):
            axes[4 * d + row, 0].set_ylabel(label, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
