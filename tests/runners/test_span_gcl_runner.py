"""The span-gcl runner: plan, node splits, spectra, summaries and the report table; the quick run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from jaxcompress.runners import span_gcl


def test_plans_cover_both_frameworks_and_the_baselines():
    settings, seeds, methods, budgets = span_gcl._plan(quick=False)
    assert {s.framework for s in settings} == {"graphcl", "grace"}
    assert len(seeds) >= 2, "std over seeds needs at least two seeds"
    assert {"span", "span_uniform", "edge_drop"} <= set(methods)
    assert all(0 < b < 1 for b in budgets) and list(budgets) == sorted(budgets)
    quick, quick_seeds, quick_methods, _ = span_gcl._plan(quick=True)
    assert set(quick_methods) == {"span", "span_uniform"} and len(quick_seeds) == 1
    assert all(q.steps <= 20 for q in quick)


def test_node_split_is_stratified_disjoint_and_complete():
    labels = np.repeat([0, 1, 2], [8, 12, 20])
    parts = span_gcl._node_split(labels, seed=3)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(len(labels)))
    for label, count in zip((0, 1, 2), (8, 12, 20)):
        assert np.sum(labels[parts["test"]] == label) == count // 4
        assert np.sum(labels[parts["validation"]] == label) == count // 4
    assert np.array_equal(parts["train"], span_gcl._node_split(labels, seed=3)["train"])
    assert not np.array_equal(parts["test"], span_gcl._node_split(labels, seed=4)["test"])


def test_laplacian_spectrum_matches_networkx():
    g = nx.karate_club_graph()
    a = nx.to_numpy_array(g, weight=None)
    expected = np.sort(nx.normalized_laplacian_spectrum(g, weight=None))
    np.testing.assert_allclose(span_gcl._laplacian_spectrum(a), expected, atol=1e-9)
    # An isolated node contributes the eigenvalue 1 (I - 0), never NaN.
    padded = np.zeros((35, 35))
    padded[:34, :34] = a
    spectrum = span_gcl._laplacian_spectrum(padded)
    assert np.all(np.isfinite(spectrum))
    np.testing.assert_allclose(np.sort(spectrum), np.sort(np.append(expected, 1.0)), atol=1e-9)


def _score(seed, accuracy, attack_acc):
    return {"seed": seed, "accuracy": accuracy, "attacks": {"random@0.1": attack_acc, "degree@0.1": attack_acc - 0.1},
            "loss": 1.0, "flips_view1": 4.0 + seed, "flips_view2": 2.0, "train_seconds": 1.5}


def test_summary_and_report_table_hold_mean_and_std_over_seeds():
    setting = span_gcl.Setting("graphcl", "graph_cycles")
    span_scores = [_score(0, 0.8, 0.7), _score(1, 0.9, 0.6), _score(2, 0.7, 0.5)]
    span_scores[0]["view_spectral_distance"] = 0.25
    flat = [_score(s, 0.5, 0.5) for s in range(3)]
    rows = [span_gcl._summarise(setting, "span", span_scores), span_gcl._summarise(setting, "span_uniform", flat)]
    accuracy = rows[0]["accuracy"]
    assert accuracy["mean"] == pytest.approx(np.mean([0.8, 0.9, 0.7]))
    assert accuracy["std"] == pytest.approx(np.std([0.8, 0.9, 0.7])) and accuracy["n"] == 3
    assert rows[0]["attacks"]["random@0.1"]["mean"] == pytest.approx(0.6)
    assert rows[0]["flips_per_graph"] == pytest.approx([5.0, 2.0])
    assert rows[0]["view_spectral_distance"] == 0.25 and rows[1]["view_spectral_distance"] is None
    results = {"seeds": [0, 1, 2], "devices": 1, "wall_time_s": 12.0, "quick": False, "rows": rows,
               "methods": ["span", "span_uniform"], "attack_budgets": [0.1],
               "span": {"graph_cycles": {"graphs": 400, "budget_mean": 3.0, "expected_flips_mean": [2.9, 2.5],
                                         "objective_mean": [1.1, 0.9], "seconds": 4.2}}}
    report = span_gcl.report_markdown(results)
    lines = report.splitlines()
    header = next(line for line in lines if line.startswith("| framework"))
    assert header.split(" | ")[-2:] == ["degree@0.1", "random@0.1 |"]  # attacks sorted by name, then budget
    span_row = next(line for line in lines if "| span |" in line)
    cells = [c.strip() for c in span_row.strip("|").split("|")]
    assert cells[:6] == ["graphcl", "graph_cycles", "span", f"0.800 ± {np.std([0.8, 0.9, 0.7]):.3f}",
                         "5.0 / 2.0", "0.250"]
    assert cells[6] == f"0.500 ± {np.std([0.6, 0.5, 0.4]):.3f}"  # degree@0.1
    assert cells[7] == f"0.600 ± {np.std([0.7, 0.6, 0.5]):.3f}"  # random@0.1
    uniform = [c.strip() for c in next(line for line in lines if "| span_uniform |" in line).strip("|").split("|")]
    assert uniform[3] == "0.500 ± 0.000" and uniform[5] == "-"
    assert "graph_cycles: 400 graphs, budget 3.0 flips/graph" in report


@pytest.mark.slow
def test_quick_run_writes_results_report_and_plot(tmp_path):
    # One CPU device in a subprocess with a timeout: jaxlib 0.10.2's batched CPU eigh can starve the shared
    # intra-op pool when several virtual devices run it (span_cache._unsafe_cpu_mesh); a hang then fails here.
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    subprocess.run([sys.executable, "-m", "jaxcompress", "run", "span-gcl", "--quick", "--out", str(tmp_path)],
                   check=True, env=env, timeout=600, capture_output=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["devices"] == 1
    assert (tmp_path / "span_gcl.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    for row in results["rows"]:
        assert 0.0 <= row["accuracy"]["mean"] <= 1.0
        assert f"| {row['framework']} | {row['dataset']} | {row['method']} |" in report
    span_rows = [r for r in results["rows"] if r["method"] == "span"]
    assert span_rows and all(r["flips_per_graph"][0] > 0 for r in span_rows)
