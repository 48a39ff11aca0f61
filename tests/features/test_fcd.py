"""FCD against a straightforward loop over simulations and windows."""

import numpy as np
import pytest

from vbi_dask.features import fcd, fcd_matrix, window_fc

QS = (0.1, 0.25, 0.5, 0.75, 0.9)


def reference_fcd(x, window, step, qs=QS):
    """Plain loops: np.corrcoef per window, np.corrcoef of the FC stack, numpy statistics."""
    n_sim, n_time, n_nodes = x.shape
    rows, cols = np.triu_indices(n_nodes, k=1)
    starts = range(0, n_time - window + 1, step)
    matrices, stats = [], []
    for sim in x:
        stack = np.array([np.corrcoef(sim[s : s + window].T)[rows, cols] for s in starts])
        matrix = np.corrcoef(stack)
        n = len(stack)
        upper = np.array([matrix[i, j] for i in range(n) for j in range(i + 1, n)])
        disjoint = np.array([matrix[i, j] for i in range(n) for j in range(i + 1, n) if (j - i) * step >= window])
        stats.append([upper.var(), *np.quantile(upper, qs), upper.mean(), disjoint.var()])
        matrices.append(matrix)
    return np.array(matrices), np.array(stats)


def test_fcd_matches_loop_reference(signals, rng, tol):
    x = signals(rng, 3, 120, 5)
    window, step = 20, 5
    expected_matrix, expected_stats = reference_fcd(x, window, step)
    matrix = fcd_matrix(x, window_samples=window, step_samples=step)
    values, names = fcd(x, window_samples=window, step_samples=step)
    assert matrix.shape == expected_matrix.shape == (3, 21, 21)
    quantile_names = ["fcd_q0.1", "fcd_q0.25", "fcd_q0.5", "fcd_q0.75", "fcd_q0.9"]
    assert names == ["fcd_var", *quantile_names, "fcd_mean", "fcd_fluidity"]
    # Window FC: 4 sums of `window` terms; FCD: 3 sums over 10 edges. Errors compound
    # through two normalisations, so allow a generous 16 * (window + edges) roundoffs.
    atol = tol(np.float64, 16 * (window + 10))
    np.testing.assert_allclose(matrix, expected_matrix, rtol=0, atol=atol)
    np.testing.assert_allclose(values, expected_stats, rtol=0, atol=atol)


def test_lengths_in_ms_convert_to_samples(signals, rng):
    x = signals(rng, 2, 100, 4)
    by_samples, names = fcd(x, window_samples=20, step_samples=4)
    by_ms, names_ms = fcd(x, 2.0, window_ms=40.0, step_ms=8.0)
    np.testing.assert_array_equal(by_ms, by_samples)
    assert names_ms == names


def test_window_fc_shape(signals, rng):
    stack = window_fc(signals(rng, 2, 50, 4), window_samples=10, step_samples=10)
    assert stack.shape == (2, 5, 6)


def test_stationary_signal_gives_fcd_of_ones(rng, tol):
    # Periodic with the step as period: window starts differ by whole periods, so every
    # window holds the same samples, hence the same FC, hence FCD = 1 everywhere.
    step, window = 6, 24
    pattern = rng.standard_normal((step, 4))
    x = np.tile(pattern, (15, 1))[None]  # (1, 90, 4)
    matrix = fcd_matrix(x, window_samples=window, step_samples=step)
    values, names = fcd(x, window_samples=window, step_samples=step)
    atol = tol(np.float64, 16 * (window + 6))
    np.testing.assert_allclose(matrix, 1.0, rtol=0, atol=atol)
    stats = dict(zip(names, values[0]))
    assert stats["fcd_mean"] == pytest.approx(1.0, abs=atol)
    assert stats["fcd_var"] == pytest.approx(0.0, abs=atol)
    assert stats["fcd_fluidity"] == pytest.approx(0.0, abs=atol)


def test_fluidity_is_nan_without_disjoint_windows(signals, rng):
    values, names = fcd(signals(rng, 1, 30, 3), window_samples=20, step_samples=2, quantiles=[0.5])
    assert names == ["fcd_var", "fcd_q0.5", "fcd_mean", "fcd_fluidity"]
    assert np.isnan(values[0, -1]) and np.isfinite(values[0, :-1]).all()


def test_bad_windows_are_named(signals, rng):
    x = signals(rng, 1, 50, 3)
    with pytest.raises(ValueError, match=r"window \(60 samples\) is longer than the series \(time=50"):
        fcd(x, window_samples=60, step_samples=1)
    with pytest.raises(ValueError, match="at least 2 windows"):
        fcd(x, window_samples=40, step_samples=20)
    with pytest.raises(ValueError, match="either window_samples or window_ms"):
        fcd(x, 1.0, window_samples=10, window_ms=10.0)
    with pytest.raises(ValueError, match="needs the sampling period dt_ms"):
        fcd(x, window_ms=10.0, step_samples=1)
    with pytest.raises(ValueError, match="step_samples must be an integer >= 1"):
        fcd(x, window_samples=10, step_samples=0)
    with pytest.raises(ValueError, match=r"quantiles must lie in \[0, 1\]"):
        fcd(x, window_samples=10, step_samples=5, quantiles=[50])


def test_fcd_in_groups_of_simulations_matches_the_reference(signals, rng, tol, monkeypatch):
    """Large blocks are summarised a few simulations at a time (bounded workspace)."""
    import importlib

    monkeypatch.setattr(importlib.import_module("vbi_dask.features.fcd"), "WORKSPACE_BYTES", 1)  # one at a time
    x = signals(rng, 3, 120, 5)
    values, _ = fcd(x, window_samples=20, step_samples=5)
    _, expected = reference_fcd(x, 20, 5)
    np.testing.assert_allclose(values, expected, rtol=0, atol=tol(np.float64, 16 * 30))
