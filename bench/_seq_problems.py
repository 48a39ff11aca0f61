"""Problems with a known posterior, run as external simulators by bench_sequential.py
(importable by name: ``_seq_problems:linear_gaussian`` with bench/ on the path).

Linear Gaussian: theta ~ U(-3, 3)^3, x = A theta + SIGMA * noise (5 features); the
posterior at x_o is N(m, SIGMA^2 (A^T A)^-1), m = (A^T A)^-1 A^T x_o, restricted to the
box (its mass outside is negligible at the observation used: exact draws by rejection).
The posterior is ~1% of the prior's width per parameter: the regime where sequential
rounds pay.
"""

from __future__ import annotations

import numpy as np

A = np.array([[1.0, 0.4, -0.2], [0.3, -1.1, 0.5], [-0.4, 0.2, 0.9], [0.8, 0.6, 0.3], [0.1, -0.5, -1.0]])
SIGMA = 0.1
LOW, HIGH = -3.0, 3.0
THETA_O = np.array([0.5, -1.0, 1.5])


def linear_gaussian(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """x = A theta + SIGMA * noise, row k's noise from its own generator (seed, first_sim + k)."""
    noise = (
        np.stack(
            [
                np.random.default_rng(np.random.SeedSequence([seed, first_sim + k])).standard_normal(len(A))
                for k in range(len(theta))
            ]
        )
        if len(theta)
        else np.empty((0, len(A)))
    )
    return theta @ A.T + SIGMA * noise


def observation(seed: int = 12345) -> np.ndarray:
    return THETA_O @ A.T + SIGMA * np.random.default_rng(seed).standard_normal(len(A))


def posterior_samples(x_o: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Exact draws of the posterior at ``x_o`` (the Gaussian, rejected outside the box)."""
    precision = A.T @ A / SIGMA**2
    cov = np.linalg.inv(precision)
    mean = cov @ A.T @ x_o / SIGMA**2
    rng = np.random.default_rng(seed)
    out = np.empty((0, A.shape[1]))
    while len(out) < n:
        draws = rng.multivariate_normal(mean, cov, size=2 * n)
        out = np.concatenate([out, draws[((draws > LOW) & (draws < HIGH)).all(axis=1)]])
    return out[:n]
