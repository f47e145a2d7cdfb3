"""SPAN: spectral augmentation, batched over graphs with ``vmap`` under ``jit``.

For each graph with adjacency A (n nodes, |E| edges) SPAN learns two
symmetric edge-flip probability matrices, one per contrastive view:

* flip signs ``C = (11^T - I - A) - A`` (+1: the pair may be added, -1: the
  edge may be deleted, 0 on the diagonal and on padding);
* the expected view ``X(P) = A + C * P``;
* the spectral objective ``f(P) = ||eig(op(X(P)))||_2 / ||eig(op(A))||_2`` with
  ``op`` the GCN-normalised adjacency with self-loops (the reference code,
  ``"gcn_adj"``) or the normalised Laplacian (the paper, ``"lap"``);
* view 1 maximises f, view 2 minimises it, each by projected gradient ascent
  ``P <- Proj(P +- lr_t grad f)``, ``lr_t = lr / sqrt(t + 1)``, where Proj is
  the projection onto ``{0 <= P <= clip_max, sum P <= ratio * |E|}`` found by
  a safeguarded Newton search for the shift mu of ``clip(P - mu, 0, clip_max)``.

Only the strict upper triangle is a parameter (P is its mirror), so the views
sampled from P are symmetric by construction (the reference samples both
triangles independently and can produce asymmetric views).

**Padding and the spectrum.** Graphs of different sizes are padded to one
node budget N so that a batch vmaps. The operator is built with a node mask:
padded rows and columns are zero (no self-loop, no flip candidates, C is
zeroed on them). Before ``eigvalsh`` the padded diagonal block is set to a
sentinel value (-4, below the spectrum of both operators, which lies in
[-1, 2]); the matrix is block diagonal, so the real block's eigenvalues are
exactly those of the unpadded graph, and the N - n sentinel eigenvalues sort
first and are masked out. The padded graph therefore has the same objective
(and gradient) as the unpadded one, which the tests check.

Only eigenvalues are needed (``eigvalsh``, never eigenvector outputs), whose
gradients stay finite at repeated eigenvalues. For the default ``norm``
objective ``||eig(M)||_2 = ||M||_F`` for any symmetric M, so
``spectrum="frobenius"`` gives the same values and gradients without an
eigendecomposition; ``"eigvalsh"`` follows the reference; ``"auto"`` (default)
takes the Frobenius form wherever it is exact.

References:
  Lin, Chen & Wang, "Spectral Augmentation for Self-Supervised Learning on
  Graphs", ICLR 2023 (arXiv 2210.00643); Xu et al., "Topology Attack and
  Defense for Graph Neural Networks", IJCAI 2019 (the projection).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxcompress.errors import ConfigError

#: Diagonal value of padded nodes before eigvalsh: below the spectrum of both operators.
PAD_SENTINEL = -4.0
OPERATORS = ("gcn_adj", "lap")
OBJECTIVES = ("norm", "l2")
SPECTRA = ("auto", "eigvalsh", "frobenius")


@dataclasses.dataclass(frozen=True)
class SpanConfig:
    """Hyper-parameters of the SPAN precompute (one set for both views).

    Attributes:
      ratio: flip budget per graph, epsilon = ratio * |E| expected flips.
      lr: base step size of projected gradient ascent.
      iterations: PGA steps T per view.
      operator: "gcn_adj" (reference code) or "lap" (paper).
      objective: "norm" (||eig||) or "l2" (||eig - eig(A)||, distance to the original spectrum).
      spectrum: "eigvalsh", "frobenius" (same values for objective "norm", no eigendecomposition) or
        "auto" (the default: "frobenius" for "norm", "eigvalsh" for "l2"; see :meth:`resolved_spectrum`).
      clip_max: upper bound of every flip probability (the box of the projection).
      normalize_grad: divide each step by the largest |gradient| of the graph, so
        lr is in probability units whatever the graph size (the raw gradient is
        O(1/n) and the budget then rarely binds).
      bisection_iters: most root-search steps of the projection (Newton with a bisection fallback).
      seed: seed of the U(1e-5, 1/n) initialisation (folded with the graph id).
    """

    ratio: float = 0.2
    lr: float = 0.5
    iterations: int = 20
    operator: str = "gcn_adj"
    objective: str = "norm"
    spectrum: str = "auto"
    clip_max: float = 1.0
    normalize_grad: bool = True
    bisection_iters: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.operator in OPERATORS, f"span operator must be one of {OPERATORS}, got {self.operator!r}"),
                  (self.objective in OBJECTIVES, f"span objective must be one of {OBJECTIVES}, got {self.objective!r}"),
                  (self.spectrum in SPECTRA, f"span spectrum must be one of {SPECTRA}, got {self.spectrum!r}"),
                  (self.spectrum != "frobenius" or self.objective == "norm",
                   "span spectrum 'frobenius' only computes the 'norm' objective"),
                  (0.0 <= self.ratio <= 10.0, f"span ratio must lie in [0, 10], got {self.ratio}"),
                  (self.lr > 0, f"span lr must be > 0, got {self.lr}"),
                  (self.iterations >= 0, f"span iterations must be >= 0, got {self.iterations}"),
                  (0.0 < self.clip_max <= 1.0, f"span clip_max must lie in (0, 1], got {self.clip_max}"),
                  (self.bisection_iters >= 1, f"span bisection_iters must be >= 1, got {self.bisection_iters}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def resolved_spectrum(self) -> str:
        """The spectrum actually computed: "auto" is the Frobenius identity wherever it is exact."""
        if self.spectrum != "auto":
            return self.spectrum
        return "frobenius" if self.objective == "norm" else "eigvalsh"

    @property
    def needs_eigendecomposition(self) -> bool:
        """Whether a step calls ``eigvalsh`` (the "l2" objective always does: "frobenius" is refused for it)."""
        return self.resolved_spectrum == "eigvalsh"

    def fingerprint(self) -> str:
        """Short stable hash of the hyper-parameters (cache keys)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


# ----------------------------------------------------------------------------
# Operators and spectra (single graph, [N, N]; vmapped by the callers)


def pair_mask(node_mask: jax.Array) -> jax.Array:
    """Strict upper triangle of real node pairs: the flip candidates, [N] -> [N, N]."""
    n = node_mask.shape[0]
    return jnp.triu(jnp.outer(node_mask, node_mask), 1) * (1.0 - jnp.eye(n, dtype=node_mask.dtype))


def flip_signs(adjacency: jax.Array, node_mask: jax.Array) -> jax.Array:
    """C = (11^T - I - A) - A on real pairs, 0 on the diagonal and padding; [N, N]."""
    real = jnp.outer(node_mask, node_mask) * (1.0 - jnp.eye(adjacency.shape[0], dtype=adjacency.dtype))
    return (1.0 - 2.0 * adjacency) * real


def normalized_operator(x: jax.Array, node_mask: jax.Array, operator: str) -> jax.Array:
    """GCN adjacency D~^-1/2 (X + I) D~^-1/2 or Laplacian I - D^-1/2 X D^-1/2 on real nodes; [N, N].

    Padded rows and columns are zero. An isolated real node has Laplacian
    diagonal 1 (the ``I`` term) and GCN diagonal 1 (its self-loop).
    """
    eye = jnp.diag(node_mask)
    if operator == "gcn_adj":
        x = x + eye
    degree = x.sum(1)
    inv_sqrt = jnp.where(degree > 0, jax.lax.rsqrt(jnp.maximum(degree, 1e-12)), 0.0)
    normed = inv_sqrt[:, None] * x * inv_sqrt[None, :]
    if operator == "gcn_adj":
        return normed
    if operator == "lap":
        return eye - normed
    raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")


def masked_spectrum(matrix: jax.Array, node_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues of the real block of a padded symmetric matrix.

    Returns:
      (eigenvalues [N] ascending, with the N - n padded ones set to 0 and
      sorted first; valid [N] float mask of the real ones).
    """
    shifted = matrix + jnp.diag(PAD_SENTINEL * (1.0 - node_mask))
    eig = jnp.linalg.eigvalsh(shifted)
    n_pad = node_mask.shape[0] - node_mask.sum()
    valid = (jnp.arange(node_mask.shape[0]) >= n_pad).astype(matrix.dtype)
    return eig * valid, valid


def spectral_norm(matrix: jax.Array, node_mask: jax.Array, spectrum: str) -> jax.Array:
    """||eig(M)||_2 over the real nodes (Frobenius norm of M when ``spectrum="frobenius"``)."""
    if spectrum == "frobenius":
        return jnp.sqrt(jnp.sum(matrix * matrix))
    eig, _ = masked_spectrum(matrix, node_mask)
    return jnp.sqrt(jnp.sum(eig * eig))


def objective_of(adjacency: jax.Array, node_mask: jax.Array, config: SpanConfig) -> Callable[[jax.Array], jax.Array]:
    """f as a function of the upper-triangle probabilities of one graph, with every constant computed once.

    The pair mask, the flip signs and the original operator's spectrum do not
    depend on P: computed here, outside the projected-gradient loop, each
    step differentiates only the view's part.
    """
    mask = pair_mask(node_mask)
    signs = flip_signs(adjacency, node_mask)
    base = normalized_operator(adjacency, node_mask, config.operator)
    spectrum = config.resolved_spectrum
    if config.objective == "norm":
        base_norm = jnp.maximum(spectral_norm(base, node_mask, spectrum), 1e-12)
    else:
        eig0, _ = masked_spectrum(base, node_mask)
        base_norm = jnp.maximum(jnp.sqrt(jnp.sum(eig0 ** 2)), 1e-12)

    def f(upper: jax.Array) -> jax.Array:
        upper = upper * mask
        view = normalized_operator(adjacency + signs * (upper + upper.T), node_mask, config.operator)
        if config.objective == "norm":
            return spectral_norm(view, node_mask, spectrum) / base_norm
        eig, _ = masked_spectrum(view, node_mask)
        # sqrt(x + tiny): the distance is 0 at P = 0, where sqrt has no derivative.
        return jnp.sqrt(jnp.sum((eig - eig0) ** 2) + 1e-12) / base_norm

    return f


def frobenius_gradient_of(adjacency: jax.Array, node_mask: jax.Array, config: SpanConfig
                          ) -> Callable[[jax.Array], jax.Array]:
    """The gradient of the Frobenius-form "norm" objective w.r.t. the upper-triangle probabilities, closed form.

    With X the perturbed adjacency (plus self-loops for "gcn_adj"), degrees d = X 1 and r = 1/d,
    ||D^-1/2 X D^-1/2||_F^2 = F = sum_ij X_ij^2 r_i r_j, and the Laplacian adds the constant n
    (its diagonal is I: X has no self-loops). Because X_kl only enters row k's degree,
    dF/dX_kl = 2 X_kl r_k r_l - 2 r_k^2 q_k with q = (X o X) r; f = sqrt(F) / ||M(A)||_F.
    One matrix-vector product and a few elementwise passes per step, where autodiff of the
    same expression keeps and re-reads its intermediates.

    Shapes: adjacency [N, N], node_mask [N]; the returned function maps upper [N, N] -> [N, N].

    References:
      Lin et al., "Spectral Augmentation for Self-Supervised Learning on Graphs", ICLR 2023 (the objective).
    """
    if config.resolved_spectrum != "frobenius":
        raise ValueError("the closed-form gradient is the Frobenius form's; use jax.grad of objective_of")
    mask = pair_mask(node_mask)
    signs = flip_signs(adjacency, node_mask)
    base = normalized_operator(adjacency, node_mask, config.operator)
    base_norm = jnp.maximum(spectral_norm(base, node_mask, "frobenius"), 1e-12)
    self_loops = jnp.diag(node_mask) if config.operator == "gcn_adj" else jnp.zeros_like(adjacency)
    constant = node_mask.sum() if config.operator == "lap" else 0.0

    def gradient(upper: jax.Array) -> jax.Array:
        upper = upper * mask
        x = adjacency + signs * (upper + upper.T) + self_loops
        degree = x.sum(1)
        r = jnp.where(degree > 0, 1.0 / jnp.maximum(degree, 1e-12), 0.0)
        squares = x * x
        q = squares @ r
        total = jnp.sum(squares * r[:, None] * r[None, :]) + constant
        d_x = 2.0 * x * r[:, None] * r[None, :] - 2.0 * (r * r * q)[:, None]
        return signs * (d_x + d_x.T) * mask / (2.0 * jnp.sqrt(jnp.maximum(total, 1e-24)) * base_norm)

    return gradient


def objective(upper: jax.Array, adjacency: jax.Array, node_mask: jax.Array, config: SpanConfig) -> jax.Array:
    """f(P) of one graph: the spectral norm (or spectral distance) ratio; scalar.

    Args:
      upper: [N, N] flip probabilities, only the strict upper triangle of real pairs used.
      adjacency: [N, N] symmetric 0/1.
      node_mask: [N].
    """
    return objective_of(adjacency, node_mask, config)(upper)


def project_budget_with_shift(p: jax.Array, mask: jax.Array, budget: jax.Array, clip_max: float = 1.0,
                              iters: int = 30, guess: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Euclidean projection onto ``{0 <= p <= clip_max, sum(mask * p) <= budget}``.

    When the clipped mass exceeds the budget, finds the shift mu with
    ``g(mu) = sum(mask * clip(p - mu, 0, clip_max)) = budget``. g is piecewise
    linear and decreasing, so a Newton step lands on the root of the current
    piece; from ``max(p) - clip_max`` rightwards no entry is capped, g is convex
    there and Newton from the left never overshoots (Michelot's simplex
    projection). Steps that would leave the bracket bisect instead, which
    covers roots among capped entries. This takes ~5 passes over p where plain
    bisection to the same precision takes ~25-30, and it ends on the root
    itself (the mass equals the budget within float rounding).

    Shapes: p, mask [...]; budget scalar. Returns the projection (p's shape, zero off the mask) and
    the shift mu (scalar; 0 when p is within budget). ``iters`` caps the root-search steps (each is one
    pass over p); ``guess``, a previous shift, starts the search there when it lies in the bracket.

    References:
      Michelot, "A finite algorithm for finding the projection of a point onto
      the canonical simplex of R^n", JOTA 1986; Xu et al., IJCAI 2019 (the box
      and budget constraint of the edge-flip attack).
    """
    p = p * mask
    tolerance = 1e-6 * (1.0 + budget)

    def excess_and_slope(mu: jax.Array) -> tuple[jax.Array, jax.Array]:
        shifted = p - mu
        free = mask * ((shifted > 0.0) & (shifted < clip_max))
        return jnp.sum(mask * jnp.clip(shifted, 0.0, clip_max)) - budget, jnp.sum(free)

    def searching(state: tuple[jax.Array, ...]) -> jax.Array:
        lo, hi, _, excess, step = state
        return (step < iters) & (jnp.abs(excess) > tolerance) & (hi - lo > 1e-7)

    def search_step(state: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        lo, hi, mu, _, step = state
        excess, slope = excess_and_slope(mu)
        lo, hi = jnp.where(excess > 0, mu, lo), jnp.where(excess > 0, hi, mu)
        newton = mu + excess / jnp.maximum(slope, 1.0)
        inside = (slope > 0) & (newton > lo) & (newton < hi)
        following = jnp.where(inside, newton, 0.5 * (lo + hi))
        # On convergence take the last Newton step when it is to the right, so the mass never exceeds the budget.
        converged = jnp.abs(excess) <= tolerance
        mu = jnp.where(converged, mu + jnp.maximum(excess, 0.0) / jnp.maximum(slope, 1.0), following)
        return lo, hi, mu, excess, step + 1

    top = jnp.max(p)
    over_budget = excess_and_slope(jnp.zeros_like(top))[0] > 0
    start = jnp.maximum(top - clip_max, 0.0)
    if guess is not None:
        # A shift inside the bracket (the previous step's, in projected gradient ascent) is usually a
        # pass or two from the root; from its right, one Newton step lands left of it and Newton goes on.
        start = jnp.where((guess > 0.0) & (guess < top), guess, start)
    # Under budget the search does not run (excess 0 fails the loop test at once).
    initial = (jnp.zeros_like(top), top, start, jnp.where(over_budget, jnp.inf, 0.0), jnp.int32(0))
    _, _, mu, _, _ = jax.lax.while_loop(searching, search_step, initial)
    shift = jnp.where(over_budget, mu, 0.0)
    return jnp.clip(p - shift, 0.0, clip_max) * mask, shift


def project_budget(p: jax.Array, mask: jax.Array, budget: jax.Array, clip_max: float = 1.0,
                   iters: int = 30) -> jax.Array:
    """:func:`project_budget_with_shift` without a guess, the projection only."""
    return project_budget_with_shift(p, mask, budget, clip_max, iters)[0]


def _mix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijective avalanche mix of uint32 values."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def pair_uniform(key: jax.Array, size: int) -> jax.Array:
    """U[0, 1) for every node pair, a hash of the key and (i, j) only: [size, size].

    Unlike ``jax.random.uniform(key, (size, size))`` the value of pair (i, j)
    does not depend on ``size``, so a graph padded to any budget starts from
    the same point (and it compiles in no time, unlike N^2 ``fold_in`` calls).
    """
    words = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    index = jnp.arange(size, dtype=jnp.uint32)
    rows = _mix32(words[0] ^ _mix32(index * jnp.uint32(0x9E3779B1) + jnp.uint32(1)))
    cols = _mix32(words[-1] ^ _mix32(index * jnp.uint32(0x85EBCA77) + jnp.uint32(2)))
    h = _mix32(rows[:, None] ^ _mix32(cols[None, :] + rows[:, None] * jnp.uint32(0x27D4EB2F)))
    return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def optimise_view(adjacency: jax.Array, node_mask: jax.Array, num_edges: jax.Array, key: jax.Array,
                  config: SpanConfig, sign: float | jax.Array) -> jax.Array:
    """PGA for one view of one graph (``sign`` +1 maximises f, -1 minimises it).

    Starts from U(1e-5, 1/n) on every real pair (projected), as the reference.

    Returns:
      Symmetric flip probabilities [N, N], zero on the diagonal and padding,
      total mass of the upper triangle <= ratio * |E|.
    """
    mask = pair_mask(node_mask)
    n = jnp.maximum(node_mask.sum(), 1.0)
    budget = config.ratio * num_edges.astype(adjacency.dtype)
    init = 1e-5 + pair_uniform(key, adjacency.shape[0]).astype(adjacency.dtype) * (1.0 / n - 1e-5)
    state = project_budget_with_shift(init * mask, mask, budget, config.clip_max, config.bisection_iters)
    if config.resolved_spectrum == "frobenius":
        gradient = frobenius_gradient_of(adjacency, node_mask, config)
    else:
        gradient = jax.grad(objective_of(adjacency, node_mask, config))

    def step(t: int, state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        u, shift = state
        g = sign * gradient(u) * mask
        if config.normalize_grad:
            g = g / jnp.maximum(jnp.max(jnp.abs(g)), 1e-12)
        lr = config.lr / jnp.sqrt(t + 2.0)  # t counts from 1 in the reference: lr / sqrt(t + 1)
        # Successive steps move p a little, so the last shift starts the root search near the new one.
        return project_budget_with_shift(u + lr * g, mask, budget, config.clip_max, config.bisection_iters, shift)

    upper, _ = jax.lax.fori_loop(0, config.iterations, step, state)
    return upper + upper.T


def graph_keys(seed: int, graph_ids: jax.Array) -> jax.Array:
    """One key per graph, folded from its id: results do not depend on batching."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(graph_ids.astype(jnp.uint32))


def span_views(adjacency: jax.Array, node_mask: jax.Array, num_edges: jax.Array, graph_ids: jax.Array,
               config: SpanConfig) -> tuple[jax.Array, jax.Array]:
    """Both views' flip probabilities for a batch of padded graphs.

    Args:
      adjacency: [B, N, N] symmetric 0/1; node_mask [B, N]; num_edges [B];
      graph_ids: int [B] (seeds the initialisation).

    Returns:
      (P_max, P_min), each [B, N, N] symmetric.
    """
    keys = graph_keys(config.seed, graph_ids)
    p = jax.vmap(lambda a, m, e, k: both_views(a, m, e, k, config))(adjacency, node_mask, num_edges, keys)
    return p[:, 0], p[:, 1]


def both_views(adjacency: jax.Array, node_mask: jax.Array, num_edges: jax.Array, key: jax.Array,
               config: SpanConfig) -> jax.Array:
    """Both views of one graph, vmapped over the sign (one trace, half the compile time): [2, N, N]."""
    keys = jax.random.split(key)
    signs = jnp.asarray([1.0, -1.0], adjacency.dtype)
    return jax.vmap(lambda k, s: optimise_view(adjacency, node_mask, num_edges, k, config, s))(keys, signs)


def view_objective(p: jax.Array, adjacency: jax.Array, node_mask: jax.Array, config: SpanConfig) -> jax.Array:
    """f at symmetric probabilities p (batched): [B, N, N] -> [B]."""
    return jax.vmap(lambda q, a, m: objective(jnp.triu(q, 1), a, m, config))(p, adjacency, node_mask)


# ----------------------------------------------------------------------------
# Sampling views


def sample_flips(key: jax.Array, probabilities: jax.Array, node_mask: jax.Array) -> jax.Array:
    """A symmetric 0/1 flip mask drawn from symmetric probabilities, one graph; [N, N].

    Each unordered pair is drawn once (upper triangle) and mirrored, so the
    view is symmetric (the reference draws (i, j) and (j, i) independently).
    """
    upper = jax.random.bernoulli(key, jnp.clip(probabilities, 0.0, 1.0)).astype(probabilities.dtype)
    upper = upper * pair_mask(node_mask)
    return upper + upper.T


def sample_view_adjacency(key: jax.Array, adjacency: jax.Array, probabilities: jax.Array,
                          node_mask: jax.Array) -> jax.Array:
    """A' = A + C * M with M ~ Bernoulli(P) symmetric; one graph, [N, N] 0/1."""
    flips = sample_flips(key, probabilities, node_mask)
    return adjacency + flip_signs(adjacency, node_mask) * flips


def expected_flips(probabilities: jax.Array) -> jax.Array:
    """Expected number of flipped pairs per graph: [B, N, N] -> [B]."""
    return jnp.sum(jnp.triu(probabilities, 1), axis=(-2, -1))


def budget_matched_uniform(probabilities: jax.Array, node_mask: jax.Array) -> jax.Array:
    """Uniform flip probabilities with the same expected flip count per graph; [B, N, N].

    The baseline SPAN is compared with: same budget, no spectral targeting.
    """
    pairs = jax.vmap(pair_mask)(node_mask)
    count = pairs.sum((-2, -1))
    rate = jnp.where(count > 0, expected_flips(probabilities) / jnp.maximum(count, 1.0), 0.0)
    upper = pairs * jnp.clip(rate, 0.0, 1.0)[:, None, None]
    return upper + jnp.swapaxes(upper, -1, -2)


def padding_for(num_graphs: int, multiple: int) -> int:
    """Rows to add so that ``num_graphs`` is a multiple of ``multiple``."""
    return (-num_graphs) % multiple if multiple > 1 else 0


def describe(config: SpanConfig) -> dict[str, Any]:
    """The hyper-parameters as a JSON-friendly dict (with the fingerprint)."""
    return {**dataclasses.asdict(config), "fingerprint": config.fingerprint()}


__all__ = ["SpanConfig", "budget_matched_uniform", "expected_flips", "flip_signs", "frobenius_gradient_of",
           "masked_spectrum",
           "normalized_operator", "objective", "optimise_view", "pair_mask", "project_budget",
           "project_budget_with_shift", "sample_flips", "sample_view_adjacency", "span_views", "spectral_norm",
           "view_objective"]
