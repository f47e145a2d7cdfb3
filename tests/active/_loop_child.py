"""A small active-learning run for the SIGKILL test (run as a script; see test_loop.py).

Pool: 80 two-dimensional points labelled by a fixed line; model: logistic regression on the labelled
points; selection: the highest predictive entropy. Appends "train <cycle>" to the log for every training.
With ``MTAL_STALL_AT`` set, the training of that cycle writes the marker file and sleeps (so the
parent can kill it in the middle of a cycle).
"""

import os
import pathlib
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from jaxcompress.active.loop import ActiveLoop, LoopSettings
from jaxcompress.active.strategies import binary_entropy, select_top

directory = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(80, 2))
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
y[:2] = (0, 1)  # both classes among the first rows
stall = int(os.environ.get("MTAL_STALL_AT", "-1"))


def train(cycle, rows):
    with open(directory / "log.txt", "a") as log:
        log.write(f"train {cycle}\n")
    if cycle == stall:
        (directory / "stalled").write_text("1")
        time.sleep(120)
    rows = np.union1d(rows, [0, 1])
    return LogisticRegression().fit(x[rows], y[rows])


def evaluate(model):
    return {"accuracy": float(model.score(x, y))}


def select(model, labelled, budget, rng):
    return select_top(binary_entropy(model.predict_proba(x)[:, 1]), labelled, budget, rng)


directory.mkdir(parents=True, exist_ok=True)
ActiveLoop(directory, LoopSettings(pool_size=80, initial_size=6, budget=5, cycles=5, seed=3)).run(
    train, evaluate, select)
