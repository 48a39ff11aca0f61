"""Example external simulators (importable by name, as budgets need): vectorised, and
deterministic in (seed, global simulation index) through one generator per row."""

from __future__ import annotations

import numpy as np

# x = A theta + SIGMA * noise: 2 parameters, 3 features
A = np.array([[1.0, 0.5], [-0.3, 1.0], [0.2, -0.7]])
SIGMA = 0.1


def _normals(seed: int, first_sim: int, n: int, size: int) -> np.ndarray:
    """(n, size) standard normals; row k from its own generator keyed by (seed, first_sim + k)."""
    return (
        np.stack(
            [
                np.random.default_rng(np.random.SeedSequence([seed, first_sim + k])).standard_normal(size)
                for k in range(n)
            ]
        )
        if n
        else np.empty((0, size))
    )


def linear_gaussian(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """x = A theta + SIGMA * noise(seed, sim)."""
    return theta @ A.T + SIGMA * _normals(seed, first_sim, len(theta), A.shape[0])


def linear_gaussian_v2(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """Another function with the same signature (for identity tests)."""
    return 2.0 * linear_gaussian(theta, seed, first_sim)


def two_moons(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """The "two moons" simulator of the sbi benchmark (Greenberg et al. 2019;
    Lueckmann et al. 2021): a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2),
    x = (r cos a + 0.25, r sin a) + (-|t1 + t2| / sqrt 2, (-t1 + t2) / sqrt 2)."""
    u = _normals(seed, first_sim, len(theta), 2)
    from scipy.special import ndtr

    a = np.pi * (ndtr(u[:, 0]) - 0.5)  # uniform on (-pi/2, pi/2) from the row's first normal
    r = 0.1 + 0.01 * u[:, 1]
    t1, t2 = theta[:, 0], theta[:, 1]
    return np.stack(
        [r * np.cos(a) + 0.25 - np.abs(t1 + t2) / np.sqrt(2), r * np.sin(a) + (-t1 + t2) / np.sqrt(2)], axis=1
    )


def nan_above(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """linear_gaussian, NaN where the first parameter exceeds 0.5 (a 'diverging' region)."""
    x = linear_gaussian(theta, seed, first_sim)
    x[theta[:, 0] > 0.5] = np.nan
    return x


def wrong_shape(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    return np.zeros((len(theta), 7))


# a toy "FC": 6 pair correlations shaped by 2 parameters, with a little noise
FC_NAMES = ["fc[0,1]", "fc[0,2]", "fc[0,3]", "fc[1,2]", "fc[1,3]", "fc[2,3]"]
_FC_FREQUENCIES = np.array([0.7, 1.3, 2.1, 0.4, 1.8, 2.6])


def toy_fc(theta: np.ndarray, seed: int, first_sim: int) -> np.ndarray:
    """fc_k = tanh(theta_0 * sin(f_k) + theta_1 * cos(2 f_k)) + 0.01 * noise(seed, sim)."""
    clean = np.tanh(theta[:, :1] * np.sin(_FC_FREQUENCIES) + theta[:, 1:2] * np.cos(2 * _FC_FREQUENCIES))
    return clean + 0.01 * _normals(seed, first_sim, len(theta), len(_FC_FREQUENCIES))
