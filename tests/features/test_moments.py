"""Moments against numpy and scipy.stats (bias=True, Fisher kurtosis)."""

import numpy as np
import pytest
import scipy.stats

from vbi_dask.features import moments


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_moments_match_scipy(rng, tol, dtype):
    n_time = 400
    x = (rng.exponential(2.0, (3, n_time, 4)) + rng.uniform(-1, 1, (3, 1, 4))).astype(dtype)
    values, names = moments(x)
    assert values.shape == (3, 16) and values.dtype == dtype
    assert names[:2] == ["mean[0]", "mean[1]"] and names[4] == "std[0]" and names[-1] == "kurtosis[3]"
    reference = x.astype(np.float64)
    expected = np.concatenate(
        [
            reference.mean(axis=1),
            reference.std(axis=1),
            scipy.stats.skew(reference, axis=1),
            scipy.stats.kurtosis(reference, axis=1),
        ],
        axis=1,
    )
    # Fourth powers of centred data summed over n_time: allow 8 * n_time roundoffs,
    # relative to each statistic's size (at least 1).
    np.testing.assert_allclose(values, expected, rtol=tol(dtype, 8 * n_time), atol=tol(dtype, 8 * n_time))


def test_known_values_on_a_tiny_input(tol):
    x = np.array([1.0, 2.0, 3.0, 10.0])[None, :, None]
    values, _ = moments(x)
    centred = np.array([-3.0, -2.0, -1.0, 6.0])
    m2, m3, m4 = (centred**2).mean(), (centred**3).mean(), (centred**4).mean()
    expected = [4.0, np.sqrt(m2), m3 / m2**1.5, m4 / m2**2 - 3.0]
    np.testing.assert_allclose(values[0], expected, rtol=tol(np.float64, 32))


def test_constant_node_has_nan_shape_statistics():
    x = np.full((1, 50, 2), 0.3)
    x[0, :, 1] += np.linspace(0, 1, 50)
    values, names = moments(x)
    stats = dict(zip(names, values[0]))
    assert stats["std[0]"] < 1e-15 and np.isnan(stats["skewness[0]"]) and np.isnan(stats["kurtosis[0]"])
    assert np.isfinite(stats["skewness[1]"])


def test_stats_subset_and_unknown_stat():
    x = np.arange(30.0).reshape(1, 10, 3)
    values, names = moments(x, stats=["std"])
    assert names == ["std[0]", "std[1]", "std[2]"] and values.shape == (1, 3)
    with pytest.raises(ValueError, match="unknown moment statistics \\['variance'\\]; valid statistics: mean, std"):
        moments(x, stats=["variance"])
