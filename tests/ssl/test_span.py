"""SPAN: operators, masked spectra, gradients, projection, PGA and sampling against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from jaxcompress.data.graphs import batching as gb
from jaxcompress.ssl import span, span_cache
from tests.ssl import span_numpy_reference as ref


def _random_adjacency(n: int, p: float, seed: int, isolated: int = 0) -> np.ndarray:
    a = nx.to_numpy_array(nx.gnp_random_graph(n, p, seed=seed))
    a[:isolated, :] = 0
    a[:, :isolated] = 0
    return a


def _pad(a: np.ndarray, size: int) -> tuple[jax.Array, jax.Array]:
    n = a.shape[0]
    out = np.zeros((size, size))
    out[:n, :n] = a
    return jnp.asarray(out, jnp.float32), jnp.asarray(np.arange(size) < n, jnp.float32)


def test_flip_signs_mark_additions_and_deletions():
    a = nx.to_numpy_array(nx.path_graph(4))
    c, _ = _pad(a, 6)
    c = np.asarray(span.flip_signs(c, jnp.asarray(np.arange(6) < 4, jnp.float32)))
    np.testing.assert_array_equal(c[:4, :4], ref.flip_signs(a))
    assert np.all(c[4:, :] == 0) and np.all(c[:, 4:] == 0)
    assert c[0, 1] == -1 and c[0, 2] == 1 and c[0, 0] == 0


@pytest.mark.parametrize("kind", ["gcn_adj", "lap"])
def test_operator_matches_numpy_and_gcn_lap_identity(kind):
    a = _random_adjacency(9, 0.4, seed=1, isolated=1)
    x, m = _pad(a, 12)
    ours = np.asarray(span.normalized_operator(x, m, kind))[:9, :9]
    np.testing.assert_allclose(ours, ref.operator(a, kind), atol=1e-6)
    # eig(gcn_adj(X)) = 1 - eig(lap(X + I)): the two objectives weight frequencies differently.
    gcn = np.linalg.eigvalsh(ref.operator(a, "gcn_adj"))
    lap_loops = np.linalg.eigvalsh(ref.operator(a + np.eye(9), "lap"))
    np.testing.assert_allclose(np.sort(gcn), np.sort(1 - lap_loops), atol=1e-9)


@pytest.mark.parametrize("kind", ["gcn_adj", "lap"])
def test_padding_does_not_leak_into_spectrum_objective_or_gradient(kind):
    a = _random_adjacency(8, 0.35, seed=2, isolated=2)
    config = span.SpanConfig(operator=kind)
    rng = np.random.default_rng(0)
    u = np.triu(rng.uniform(0, 0.3, (8, 8)), 1)
    f_small = grad_small = None
    for size in (8, 13):
        x, m = _pad(a, size)
        up = np.zeros((size, size), np.float32)
        up[:8, :8] = u
        eig, valid = jax.jit(lambda x, m: span.masked_spectrum(span.normalized_operator(x, m, kind), m))(x, m)
        real = np.asarray(eig)[np.asarray(valid) > 0]
        np.testing.assert_allclose(np.sort(real), np.linalg.eigvalsh(ref.operator(a, kind)), atol=1e-5)
        f, g = jax.jit(jax.value_and_grad(span.objective), static_argnums=3)(jnp.asarray(up), x, m, config)
        g = np.asarray(g)
        assert np.all(g[8:, :] == 0) and np.all(g[:, 8:] == 0)
        if f_small is None:
            f_small, grad_small = float(f), g
        else:
            assert float(f) == pytest.approx(f_small, abs=1e-6)
            np.testing.assert_allclose(g[:8, :8], grad_small, atol=1e-6)
    assert f_small == pytest.approx(ref.objective(u + u.T, a, kind), abs=1e-5)


@pytest.mark.parametrize("kind", ["gcn_adj", "lap"])
def test_gradient_matches_hand_derived_numpy_gradient(kind):
    a = _random_adjacency(10, 0.3, seed=3)
    rng = np.random.default_rng(1)
    u = np.triu(rng.uniform(0, 0.4, (10, 10)), 1)
    x, m = _pad(a, 10)
    grad = jax.jit(jax.grad(span.objective), static_argnums=3)
    ours = np.asarray(grad(jnp.asarray(u, jnp.float32), x, m, span.SpanConfig(operator=kind)))
    np.testing.assert_allclose(np.triu(ours, 1), ref.gradient(u + u.T, a, kind), atol=2e-5)


def test_frobenius_shortcut_equals_eigvalsh_objective_and_gradient():
    a = _random_adjacency(11, 0.3, seed=4, isolated=1)
    x, m = _pad(a, 16)
    u = jnp.asarray(np.triu(np.random.default_rng(2).uniform(0, 0.3, (16, 16)), 1), jnp.float32)
    value_and_grad = jax.jit(jax.value_and_grad(span.objective), static_argnums=3)
    exact_value, exact_grad = value_and_grad(u, x, m, span.SpanConfig(spectrum="eigvalsh"))
    for spectrum in ("frobenius", "auto"):
        assert span.SpanConfig(spectrum=spectrum).resolved_spectrum == "frobenius"
        value, grad = value_and_grad(u, x, m, span.SpanConfig(spectrum=spectrum))
        assert float(value) == pytest.approx(float(exact_value), abs=1e-5)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(exact_grad), atol=1e-5)
    assert span.SpanConfig(objective="l2").resolved_spectrum == "eigvalsh"



@pytest.mark.parametrize("graph", [nx.star_graph(7), nx.complete_graph(6), nx.empty_graph(4)])
def test_gradient_finite_with_repeated_eigenvalues(graph):
    a = nx.to_numpy_array(graph)
    x, m = _pad(a, 10)
    for objective in span.OBJECTIVES:
        g = jax.jit(jax.grad(span.objective), static_argnums=3)(jnp.zeros((10, 10)), x, m,
                                                               span.SpanConfig(objective=objective))
        assert np.all(np.isfinite(np.asarray(g)))


def test_projection_box_budget_idempotent_and_matches_numpy():
    rng = np.random.default_rng(3)
    n = 12
    mask = np.triu(np.ones((n, n)), 1)
    project = jax.jit(lambda p, m, b: span.project_budget(p, m, b, 1.0, 40))
    for budget in (0.0, 1.5, 7.0, 100.0):
        p = np.triu(rng.normal(0.3, 0.5, (n, n)), 1)
        ours = np.asarray(project(jnp.asarray(p, jnp.float32), jnp.asarray(mask, jnp.float32), jnp.float32(budget)))
        assert ours.min() >= 0 and ours.max() <= 1
        assert ours.sum() <= budget + 1e-4
        np.testing.assert_allclose(ours, ref.project(p, budget), atol=1e-5)
        again = np.asarray(project(jnp.asarray(ours), jnp.asarray(mask, jnp.float32), jnp.float32(budget)))
        np.testing.assert_allclose(again, ours, atol=1e-5)


@pytest.mark.parametrize("kind", ["gcn_adj", "lap"])
def test_closed_form_frobenius_gradient_equals_autodiff(kind):
    a = _random_adjacency(9, 0.3, seed=2)
    a[8, :] = a[:, 8] = 0  # an isolated real node
    x, m = _pad(a, 12)
    config = span.SpanConfig(operator=kind, spectrum="frobenius")
    upper = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (12, 12)), jnp.float32)
    closed = jax.jit(lambda u: span.frobenius_gradient_of(x, m, config)(u))(upper)
    auto = jax.jit(jax.grad(lambda u: span.objective_of(x, m, config)(u)))(upper)
    assert np.abs(np.asarray(auto)).max() > 1e-3  # a gradient that is not trivially zero
    np.testing.assert_allclose(closed, auto, rtol=1e-4, atol=1e-6)


def test_projection_from_a_guess_on_either_side_of_the_shift_lands_on_the_same_point():
    rng = np.random.default_rng(11)
    n, budget = 14, 6.0
    mask = jnp.asarray(np.triu(np.ones((n, n)), 1), jnp.float32)
    p = jnp.asarray(np.triu(rng.normal(0.4, 0.5, (n, n)), 1), jnp.float32)
    project = jax.jit(lambda g: span.project_budget_with_shift(p, mask, jnp.float32(budget), 1.0, 40, g))
    cold, shift = span.project_budget_with_shift(p, mask, jnp.float32(budget), 1.0, 40)
    assert float(shift) > 0  # over budget: the case a guess can speed up
    np.testing.assert_allclose(cold, ref.project(np.asarray(p), budget), atol=1e-5)
    for guess in (0.5 * shift, shift, 1.5 * shift, -1.0, 1e6):  # left, on, right of the root; outside the bracket
        warm, warm_shift = project(jnp.float32(guess))
        np.testing.assert_allclose(warm, cold, atol=1e-5)
        assert float(warm.sum()) <= budget + 1e-4 and abs(float(warm_shift) - float(shift)) < 1e-4


@pytest.mark.parametrize("kind", ["gcn_adj", "lap"])
def test_pga_matches_numpy_loop_and_moves_the_objective(kind):
    a = _random_adjacency(9, 0.35, seed=5)
    x, m = _pad(a, 12)
    config = span.SpanConfig(operator=kind, iterations=8, bisection_iters=40)
    key = jax.random.key(7)
    views = np.asarray(jax.jit(span.both_views, static_argnums=4)(x, m, jnp.float32(a.sum() / 2), key, config))
    keys = jax.random.split(key)
    for view, sign in ((0, 1.0), (1, -1.0)):
        ours = views[view]
        init = 1e-5 + np.asarray(span.pair_uniform(keys[view], 12))[:9, :9] * (1 / 9 - 1e-5)
        theirs = ref.optimise(a, init, sign, kind, iterations=8)
        np.testing.assert_allclose(ours[:9, :9], theirs, atol=2e-3)
        assert np.all(ours[9:] == 0) and np.allclose(ours, ours.T)
        assert np.triu(ours, 1).sum() <= 0.2 * a.sum() / 2 + 1e-3
        moved = ref.objective(theirs, a, kind)
        assert (moved > 1.0) if sign > 0 else (moved < 1.0)


def test_sampled_views_are_symmetric_and_match_probabilities():
    n = 5
    p = np.triu(np.random.default_rng(4).uniform(0, 1, (n, n)), 1)
    p = jnp.asarray(p + p.T, jnp.float32)
    m = jnp.ones((n,), jnp.float32)
    sample = jax.jit(jax.vmap(lambda k: span.sample_flips(k, p, m)))
    draws = np.asarray(sample(jax.random.split(jax.random.key(0), 4000)))
    assert np.all(draws == np.swapaxes(draws, 1, 2)) and np.all(draws[:, range(n), range(n)] == 0)
    freq, prob = draws.mean(0), np.asarray(p)
    sigma = np.sqrt(prob * (1 - prob) / 4000) + 1e-3
    assert np.all(np.abs(freq - prob) < 5 * sigma)
    a = nx.to_numpy_array(nx.cycle_graph(n)).astype(np.float32)
    view = np.asarray(span.sample_view_adjacency(jax.random.key(1), jnp.asarray(a), p, m))
    assert set(np.unique(view)) <= {0.0, 1.0} and np.all(view == view.T) and np.all(np.diag(view) == 0)


def test_precompute_is_independent_of_chunking_bucketing_and_sharding(tmp_path):
    graphs = [gb.from_networkx(nx.gnp_random_graph(n, 0.3, seed=n)) for n in (5, 9, 14, 3, 11)]
    graphs.append(gb.canonical_graph(1, np.zeros((0, 2))))  # a single node: nothing to flip
    padded = gb.stack_padded(graphs, gb.GraphBudget(16, 48), first_id=100)
    config = span.SpanConfig(iterations=5)
    base = span_cache.compute(padded, config, chunk=2, bucket=8, progress=False)
    other = span_cache.compute(padded, config, chunk=2, bucket=16, progress=False)
    np.testing.assert_allclose(base.p_max, other.p_max, atol=1e-5)
    np.testing.assert_allclose(base.p_min, other.p_min, atol=1e-5)
    from jaxcompress.train.config import MeshConfig
    from jaxcompress.train.sharding import build_mesh

    mesh = build_mesh(MeshConfig())
    on_cpu_mesh = jax.devices()[0].platform == "cpu" and mesh.devices.size > 1
    assert span_cache._unsafe_cpu_mesh(mesh, span.SpanConfig(spectrum="eigvalsh")) == on_cpu_mesh
    assert not span_cache._unsafe_cpu_mesh(mesh, config)  # the default computes no eigendecomposition
    sharded = span_cache.compute(padded, config, chunk=8, mesh=mesh, progress=False, cpu_sharding=True)
    np.testing.assert_allclose(sharded.p_max, base.p_max, atol=1e-5)
    assert np.all(base.p_max[5] == 0) and np.all(base.expected_flips <= base.budget[:, None] + 1e-3)
    assert np.all(base.objective[:5, 0] >= 1.0 - 1e-6) and np.all(base.objective[:5, 1] <= 1.0 + 1e-6)
    cached = span_cache.load_or_compute("toy", "train", padded, config, data_dir=tmp_path, chunk=2, bucket=8,
                                        progress=False)
    again = span_cache.load_or_compute("toy", "train", padded, config, data_dir=tmp_path, chunk=2, bucket=8,
                                       progress=False)
    assert not cached.from_cache and again.from_cache and again.seconds == pytest.approx(cached.seconds)
    np.testing.assert_allclose(again.p_min, cached.p_min)
    assert again.rows_for(np.asarray([102, 999])).tolist() == [2, -1]
