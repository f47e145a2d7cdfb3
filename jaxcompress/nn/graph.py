"""Graph encoders (GCN, GIN) on slot-batched ``jraph.GraphsTuple`` with ``segment_sum``.

The layers are written here rather than taken from jraph (unmaintained): they
read a ``GraphsTuple`` built by :func:`jaxcompress.data.graphs.batching.graphs_tuple`,
whose leaves carry a leading slot axis [B, ...], and aggregate messages with
``jax.ops.segment_sum`` vmapped over the slots. Because aggregation never
crosses a slot, a batch sharded over the mesh ``data`` axis stays local.

Every message is multiplied by its edge weight (0 for padding or a dropped
edge) and every node output by its node mask, so padding can never leak into
real nodes or readouts, and a graph with no edges (a single node, isolated
nodes) gets finite embeddings from its self term alone.

References:
  Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional
  Networks", ICLR 2017 (GCN); Xu et al., "How Powerful are Graph Neural
  Networks?", ICLR 2019 (GIN, sum readout, layer-wise concatenation).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

_segment_sum = jax.vmap(jax.ops.segment_sum, in_axes=(0, 0, None))


def _dense(features: int, names: tuple[str, str], name: str, use_bias: bool = True) -> nn.Dense:
    return nn.Dense(features, use_bias=use_bias, name=name,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]))


def _gather(values: jax.Array, index: jax.Array) -> jax.Array:
    """values [B, N, ...], index int [B, M] -> [B, M, ...]."""
    return jax.vmap(lambda v, i: v[i])(values, index)


def weighted_sum_aggregate(h: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
    """Sum of weighted neighbour features: out[b, i] = sum_{j->i} w_ji h[b, j]; [B, N, D]."""
    messages = _gather(h, graph.senders) * graph.edges["weight"][..., None]
    return _segment_sum(messages, graph.receivers, h.shape[1])


def gcn_propagate(h: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
    """Symmetric normalised propagation with self-loops, D~^-1/2 (A + I) D~^-1/2 h.

    Degrees use the edge weights, and self-loops exist only on real nodes, so a
    padded node has degree 0 and output 0. Shapes: h [B, N, D] -> [B, N, D].
    """
    mask = graph.nodes["mask"]
    weights = graph.edges["weight"]
    degree = mask + _segment_sum(weights, graph.receivers, h.shape[1])
    inv_sqrt = jnp.where(degree > 0, jax.lax.rsqrt(jnp.maximum(degree, 1e-12)), 0.0)
    coef = weights * _gather(inv_sqrt, graph.senders) * _gather(inv_sqrt, graph.receivers)
    messages = _gather(h, graph.senders) * coef[..., None]
    return _segment_sum(messages, graph.receivers, h.shape[1]) + h * (mask * inv_sqrt ** 2)[..., None]


class GCNLayer(nn.Module):
    """h' = D~^-1/2 (A + I) D~^-1/2 h W + b on real nodes; [B, N, F] -> [B, N, features].

    References:
      Kipf & Welling, ICLR 2017.
    """

    features: int
    names: tuple[str, str] = ("embed", "mlp")

    @nn.compact
    def __call__(self, h: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
        h = _dense(self.features, self.names, "linear", use_bias=False)(h)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), self.names[1:]),
                          (self.features,))
        return (gcn_propagate(h, graph) + bias) * graph.nodes["mask"][..., None]


class GINLayer(nn.Module):
    """h' = MLP((1 + eps) h + sum_{j in N(i)} w_ji h_j); [B, N, F] -> [B, N, features].

    References:
      Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019 (eq. 4.1).
    """

    features: int
    learn_eps: bool = True
    names: tuple[str, str] = ("embed", "mlp")

    @nn.compact
    def __call__(self, h: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
        eps = self.param("eps", nn.initializers.zeros_init(), ()) if self.learn_eps else 0.0
        x = (1.0 + eps) * h + weighted_sum_aggregate(h, graph)
        x = nn.relu(_dense(self.features, self.names, "mlp_0")(x))
        x = _dense(self.features, self.names[::-1], "mlp_1")(x)
        return x * graph.nodes["mask"][..., None]


def readout(h: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
    """Masked graph readout: [B, N, D], [B, N] -> [B, D] (sum or mean over real nodes)."""
    total = jnp.einsum("bnd,bn->bd", h, mask)
    if kind == "sum":
        return total
    if kind == "mean":
        return total / jnp.maximum(mask.sum(1), 1.0)[:, None]
    raise ValueError(f"readout must be 'sum' or 'mean', got {kind!r}")


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"relu": nn.relu, "prelu": None, "elu": nn.elu}


class GraphEncoder(nn.Module):
    """Stacked GCN or GIN layers with a per-layer readout.

    Attributes:
      kind: "gin" or "gcn".
      hidden: width of every layer.
      num_layers: number of message-passing layers.
      readout: "sum" or "mean" over the real nodes.
      activation: "relu", "prelu" (learned slope, as in GRACE/MVGRL) or "elu".
      concat_layers: node and graph embeddings concatenate every layer's output
        (GraphCL/InfoGraph style, width hidden * num_layers); otherwise only the
        last layer's (width hidden).

    Shapes:
      graph (slot-batched GraphsTuple) -> (node embeddings [B, N, D],
      graph embeddings [B, D]); padded nodes have zero embeddings.

    References:
      Kipf & Welling, ICLR 2017; Xu et al., ICLR 2019; You et al., "Graph
      Contrastive Learning with Augmentations", NeurIPS 2020 (GIN encoder of GraphCL).
    """

    kind: str = "gin"
    hidden: int = 32
    num_layers: int = 3
    readout: str = "sum"
    activation: str = "relu"
    concat_layers: bool = True

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> tuple[jax.Array, jax.Array]:
        if self.kind not in ("gin", "gcn"):
            raise ValueError(f"encoder kind must be 'gin' or 'gcn', got {self.kind!r}")
        mask = graph.nodes["mask"]
        h = graph.nodes["features"].astype(jnp.float32)
        layer_outputs = []
        for i in range(self.num_layers):
            names = ("embed", "mlp") if i % 2 == 0 else ("mlp", "embed")
            layer = GINLayer(self.hidden, names=names, name=f"gin_{i}") if self.kind == "gin" \
                else GCNLayer(self.hidden, names=names, name=f"gcn_{i}")
            h = layer(h, graph)
            if self.activation == "prelu":
                slope = self.param(f"prelu_{i}", nn.initializers.constant(0.25), ())
                h = jnp.where(h >= 0, h, slope * h)
            else:
                h = _ACTIVATIONS[self.activation](h)
            h = nn.with_logical_constraint(h * mask[..., None], ("batch", None, None))
            layer_outputs.append(h)
        nodes = jnp.concatenate(layer_outputs, -1) if self.concat_layers else layer_outputs[-1]
        pooled = [readout(x, mask, self.readout) for x in layer_outputs]
        graphs = jnp.concatenate(pooled, -1) if self.concat_layers else pooled[-1]
        return nodes, graphs


class ProjectionHead(nn.Module):
    """Linear-activation-Linear projection used by the contrastive losses; [..., D] -> [..., out].

    References:
      Chen et al., "A Simple Framework for Contrastive Learning of Visual
      Representations", ICML 2020 (projection head g).
    """

    hidden: int
    out: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _dense(self.hidden, ("embed", "mlp"), "dense_0")(x)
        x = nn.elu(x) if self.activation == "elu" else nn.relu(x)
        return _dense(self.out, ("mlp", "embed"), "dense_1")(x)
