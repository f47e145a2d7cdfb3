"""GraphCL training epoch: our padded, jitted JAX step vs PyTorch Geometric on the same graphs.

Both sides train the same model on the same graphs with the same batch size:
GraphCL (You et al., NeurIPS 2020) with a 3-layer GIN (hidden 32, MLP of two
linear layers per layer, learnable epsilon, sum readout of every layer
concatenated), a 2-layer projection head, NT-Xent at t = 0.2 (one direction,
other graphs' second views as negatives), and 20 % random edge dropping in
each view; Adam at 1e-3.

* ``jax``: ``jaxcompress.ssl.gcl.objective`` (both views sampled inside the
  step, slot-batched ``GraphsTuple`` padded to the dataset budget) under one
  ``jax.jit`` with an optax Adam update; one epoch = every batch of the
  training split once.
* ``torch-geometric``: ``GINConv`` + ``global_add_pool`` with
  ``torch_geometric.utils.dropout_edge`` per view, graphs batched by a PyG
  ``DataLoader`` (concatenated, unpadded; no compile step), the usual way a
  PyGCL/PyG GraphCL epoch runs. PyGCL itself is not used; its GraphCL
  example is built from the same PyG pieces.

Threads: one intra-op thread everywhere (``torch.set_num_threads(1)``,
``--xla_cpu_multi_thread_eigen=false``, single-threaded BLAS), so neither
side wins by grabbing more of a shared machine's cores.

Run: python benchmarks/span_graphcl_epoch.py [--dataset graph_families] [--batch 64] [--epochs 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from jaxcompress import data as data_lib  # noqa: E402
from jaxcompress.data.graphs import batching as gb  # noqa: E402
from jaxcompress.ssl import gcl  # noqa: E402

HIDDEN, LAYERS, TEMPERATURE, DROP, LR = 32, 3, 0.2, 0.2, 1e-3


def load(dataset: str) -> dict[str, np.ndarray]:
    source = data_lib.load_split(dataset, "train")
    return source.read(np.arange(len(source)))


def batches(arrays: dict[str, np.ndarray], batch: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Shuffled full batches of one epoch (the last partial batch is dropped on both sides)."""
    keys = (gb.NODE_FEATURES, gb.EDGES, gb.NUM_NODES, gb.NUM_EDGES, gb.GRAPH_ID)
    order = np.random.default_rng(seed).permutation(len(arrays[gb.NUM_NODES]))
    return [{k: np.asarray(arrays[k][order[i:i + batch]]) for k in keys}
            for i in range(0, len(order) - batch + 1, batch)]


def jax_epochs(arrays: dict[str, np.ndarray], batch: int, epochs: int) -> tuple[list[float], float]:
    """Seconds per epoch (the first includes compilation) and the last epoch's mean loss."""
    settings = gcl.GCLConfig(framework="graphcl", encoder="gin", hidden=HIDDEN, num_layers=LAYERS,
                               proj_hidden=HIDDEN, proj_dim=HIDDEN, temperature=TEMPERATURE,
                               augmentation="edge_drop", aug_ratio=DROP)
    settings = settings.for_dataset(arrays[gb.EDGES].shape[1])
    model = gcl.GCLModel(settings)
    first = batches(arrays, batch, 0)[0]
    params = jax.tree.map(lambda x: getattr(x, "value", x),
                          model.init(jax.random.key(0), gb.batch_graphs_tuple(first))["params"],
                          is_leaf=lambda x: hasattr(x, "value"))
    optimiser = optax.adam(LR)
    state = optimiser.init(params)

    @jax.jit
    def step(params, state, batch_arrays, key):
        (loss, _), grads = jax.value_and_grad(lambda p: gcl.objective(model, p, batch_arrays, key), has_aux=True)(
            params)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    times, key = [], jax.random.key(1)
    for epoch in range(epochs):
        start, losses = time.perf_counter(), []
        for b in batches(arrays, batch, epoch):
            key, sub = jax.random.split(key)
            params, state, loss = step(params, state, b, sub)
            losses.append(loss)
        last = float(np.mean(jax.device_get(losses)))
        times.append(time.perf_counter() - start)
    return times, last


def torch_epochs(arrays: dict[str, np.ndarray], batch: int, epochs: int) -> tuple[list[float], float] | None:
    try:
        import torch
        import torch.nn.functional as F
        from torch_geometric.data import Data
        from torch_geometric.loader import DataLoader
        from torch_geometric.nn import GINConv, global_add_pool
        from torch_geometric.utils import dropout_edge
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    graphs = []
    for g in range(len(arrays[gb.NUM_NODES])):
        n, e = int(arrays[gb.NUM_NODES][g]), int(arrays[gb.NUM_EDGES][g])
        edges = torch.as_tensor(arrays[gb.EDGES][g][:e].T.astype(np.int64))
        graphs.append(Data(x=torch.as_tensor(arrays[gb.NODE_FEATURES][g][:n], dtype=torch.float32),
                           edge_index=torch.cat([edges, edges.flip(0)], 1)))

    def mlp(i: int, o: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(i, o), torch.nn.ReLU(), torch.nn.Linear(o, o))

    class Encoder(torch.nn.Module):
        def __init__(self, features: int):
            super().__init__()
            self.convs = torch.nn.ModuleList(
                [GINConv(mlp(features if i == 0 else HIDDEN, HIDDEN), train_eps=True) for i in range(LAYERS)])
            self.head = mlp(HIDDEN * LAYERS, HIDDEN)

        def forward(self, x, edge_index, index):
            pooled = []
            for conv in self.convs:
                x = F.relu(conv(x, edge_index))
                pooled.append(global_add_pool(x, index))
            return self.head(torch.cat(pooled, 1))

    def nt_xent(z1, z2):
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        return F.cross_entropy(z1 @ z2.T / TEMPERATURE, torch.arange(len(z1)))

    model = Encoder(graphs[0].x.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    times, last = [], float("nan")
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(epoch)
        loader = DataLoader(graphs, batch_size=batch, shuffle=True, drop_last=True, generator=generator)
        start, losses = time.perf_counter(), []
        for data in loader:
            e1, _ = dropout_edge(data.edge_index, p=DROP)
            e2, _ = dropout_edge(data.edge_index, p=DROP)
            loss = nt_xent(model(data.x, e1, data.batch), model(data.x, e2, data.batch))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        times.append(time.perf_counter() - start)
        last = float(np.mean(losses))
    return times, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="graph_families")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    arrays = load(args.dataset)
    count = len(arrays[gb.NUM_NODES])
    rows = {"jax": jax_epochs(arrays, args.batch, args.epochs), "torch-geometric": torch_epochs(
        arrays, args.batch, args.epochs)}
    print(f"GraphCL epoch on {args.dataset} train ({count} graphs, batch {args.batch}, "
          f"{count // args.batch} steps/epoch), GIN {LAYERS}x{HIDDEN}, edge drop {DROP}; JAX {jax.__version__}")
    print("| implementation | first epoch s (incl. compile) | steady epoch s (median of rest) | "
          "steady time / ours | last-epoch loss |")
    print("|---|---|---|---|---|")
    ours = float(np.median(rows["jax"][0][1:] or rows["jax"][0]))
    out = {}
    for name, row in rows.items():
        if row is None:
            print(f"| {name} | skipped: not installed (pip install -e .[bench]) | | | |")
            continue
        times, loss = row
        steady = float(np.median(times[1:] or times))
        out[name] = {"epoch_seconds": times, "steady_seconds": steady, "last_loss": loss}
        print(f"| {name} | {times[0]:.2f} | {steady:.2f} | {steady / ours:.2f}x | {loss:.3f} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
