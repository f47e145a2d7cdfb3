"""Probes on frozen features: logistic regression (:func:`fit_probe`) and trained heads (:func:`fit_head`).

Fixed-size embeddings get the linear protocol: the encoder is frozen; its embeddings of the un-augmented graphs (graph
level) or nodes (node level) are standardised with statistics of the training
part, and an L2-regularised logistic regression is fitted on them. The
inverse regularisation C is chosen on the validation part from a small grid;
accuracy is reported on the test part. Runs over several pretraining seeds are
summarised as mean and standard deviation.

Probes that need a loss scikit-learn does not have (CTC over frame
sequences, attention pooling) are fitted by :func:`fit_head`: minibatch Adam on
the frozen arrays, keeping the parameters that score best on validation.

References:
  Velickovic et al., "Deep Graph Infomax", ICLR 2019 and Zhu et al., GRACE,
  2020 (linear evaluation protocol); Pedregosa et al., "Scikit-learn", JMLR 2011.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

from jaxcompress.data.graphs import batching as gb
from jaxcompress.errors import DataError

C_GRID = (0.01, 0.1, 1.0, 10.0)


@dataclasses.dataclass
class Probe:
    """A fitted probe: scaler statistics, the classifier and its chosen C."""

    mean: np.ndarray
    scale: np.ndarray
    classifier: Any
    c: float
    val_accuracy: float

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on embeddings x [M, D] with labels y [M]."""
        return float(np.mean(self.classifier.predict((x - self.mean) / self.scale) == y))


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
              c_grid: Sequence[float] = C_GRID, seed: int = 0) -> Probe:
    """Fits the logistic-regression probe, C chosen by validation accuracy.

    Shapes: x [M, D] float, y [M] int.

    Raises:
      DataError: fewer than two classes in the training labels, or non-finite embeddings.
    """
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(train_y)) < 2:
        raise DataError("the linear probe needs at least two classes in its training labels")
    for name, x in (("train", train_x), ("validation", val_x)):
        if not np.all(np.isfinite(x)):
            raise DataError(f"{name} embeddings contain NaN or infinite values")
    mean = train_x.mean(0)
    scale = np.maximum(train_x.std(0), 1e-6)
    xs, vs = (train_x - mean) / scale, (val_x - mean) / scale
    best: Probe | None = None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(xs, train_y)
        acc = float(np.mean(model.predict(vs) == val_y)) if len(val_y) else 0.0
        if best is None or acc > best.val_accuracy:
            best = Probe(mean, scale, model, c, acc)
    assert best is not None
    return best


@dataclasses.dataclass(frozen=True)
class HeadFit:
    """How :func:`fit_head` trains a probe head on frozen features."""

    steps: int = 400
    batch_size: int = 64
    learning_rate: float = 3e-3
    eval_every: int = 100
    seed: int = 0


Arrays = tuple[np.ndarray, ...]


def fit_head(params: Any, per_example: Callable[..., dict[str, jax.Array]],
             batch_loss: Callable[[dict[str, jax.Array]], jax.Array],
             score: Callable[[dict[str, np.ndarray]], float], train: Arrays, validation: Arrays, test: Arrays,
             settings: HeadFit = HeadFit(), higher_is_better: bool = True,
             eval_batch: int = 256) -> dict[str, Any]:
    """Fits a probe head with Adam and keeps the step that scores best on ``validation``.

    Args:
      params: the head's initial parameters.
      per_example: ``per_example(params, *arrays)`` -> per-example statistics
        (arrays are one split's tuple, sliced along axis 0; e.g. features,
        mask, labels).
      batch_loss: the scalar loss of a batch's statistics.
      score: one number from a split's concatenated statistics.
      train, validation, test: tuples of arrays with a shared leading axis N.

    Returns:
      ``{"validation": score, "test": score, "best_step": int}`` (step 0 is the initial head).
    """
    tx = optax.adam(settings.learning_rate)
    opt_state = tx.init(params)

    @jax.jit
    def step(p: Any, state: Any, *arrays: jax.Array) -> tuple[Any, Any]:
        grads = jax.grad(lambda q: batch_loss(per_example(q, *arrays)))(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    evaluate = jax.jit(per_example)

    def split_score(p: Any, arrays: Arrays) -> float:
        chunks: dict[str, list[np.ndarray]] = {}
        for start in range(0, arrays[0].shape[0], eval_batch):
            out = jax.device_get(evaluate(p, *(a[start:start + eval_batch] for a in arrays)))
            for k, v in out.items():
                chunks.setdefault(k, []).append(np.asarray(v))
        return score({k: np.concatenate(v) for k, v in chunks.items()})

    def improves(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    rng = np.random.default_rng(settings.seed)
    n = train[0].shape[0]
    order, cursor = rng.permutation(n), 0
    best = (split_score(params, validation), params, 0)
    for i in range(1, settings.steps + 1):
        if cursor + settings.batch_size > n:
            order, cursor = rng.permutation(n), 0
        idx = order[cursor:cursor + settings.batch_size]
        cursor += settings.batch_size
        params, opt_state = step(params, opt_state, *(a[idx] for a in train))
        if i % settings.eval_every == 0 or i == settings.steps:
            value = split_score(params, validation)
            if improves(value, best[0]):
                best = (value, params, i)
    return {"validation": best[0], "test": split_score(best[1], test), "best_step": best[2]}


def embed_arrays(embed_fn: Callable[[Any, dict], dict], params: Any, padded: dict[str, np.ndarray],
                 batch_size: int = 128) -> dict[str, np.ndarray]:
    """Embeddings of every graph of a padded array dict, in fixed-size jitted batches.

    Returns:
      ``graphs`` [G, D] and ``nodes`` [G, N, D] (zero on padded nodes).
    """
    keys = (gb.NODE_FEATURES, gb.EDGES, gb.NUM_NODES, gb.NUM_EDGES, gb.GRAPH_ID)
    count = padded[gb.NUM_NODES].shape[0]
    jitted = embed_fn if hasattr(embed_fn, "lower") else jax.jit(embed_fn)  # already jitted: keep its cache
    graphs, nodes = [], []
    for first in range(0, count, batch_size):
        block = {k: np.asarray(padded[k][first:first + batch_size]) for k in keys}
        real = block[gb.NUM_NODES].shape[0]
        if real < batch_size:  # pad with empty graphs so the shapes (and the compile) stay the same
            block = {k: np.concatenate([v, np.zeros((batch_size - real,) + v.shape[1:], v.dtype)])
                     for k, v in block.items()}
        out = jax.device_get(jitted(params, block))
        graphs.append(np.asarray(out["graphs"])[:real])
        nodes.append(np.asarray(out["nodes"])[:real])
    return {"graphs": np.concatenate(graphs), "nodes": np.concatenate(nodes)}


def node_rows(nodes: np.ndarray, padded: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Real nodes of a padded split flattened: (embeddings [M, D], labels [M])."""
    mask = np.arange(nodes.shape[1])[None, :] < padded[gb.NUM_NODES][:, None]
    return nodes[mask], np.asarray(padded[gb.NODE_LABELS])[mask]


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and (population) standard deviation over seeds."""
    array = np.asarray(values, np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "n": int(array.size)}
