"""Shared test helpers: a seeded generator and tolerances stated in units of roundoff."""

import numpy as np
import pytest


def roundoff(dtype, factor: float) -> float:
    """Allowed error: ``factor`` times the machine epsilon of ``dtype``.

    Each test states its factor, typically the number of terms summed (a worst-case bound
    on the rounding error of a recursive sum is n * eps relative to the sum of |terms|).
    """
    return float(factor * np.finfo(dtype).eps)


@pytest.fixture
def tol():
    return roundoff


@pytest.fixture
def rng():
    return np.random.default_rng(20240607)


def mixed_signals(rng, n_sim: int, n_time: int, n_nodes: int, dtype=np.float64) -> np.ndarray:
    """Random signals with a shared component, so correlations are far from zero."""
    common = rng.standard_normal((n_sim, n_time, 1))
    loading = rng.uniform(-1.0, 1.0, (n_sim, 1, n_nodes))
    noise = rng.standard_normal((n_sim, n_time, n_nodes))
    return (common * loading + 0.7 * noise + rng.uniform(-2, 2, (n_sim, 1, n_nodes))).astype(dtype)


@pytest.fixture
def signals():
    return mixed_signals
