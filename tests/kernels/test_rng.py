"""The counter-based generator: known answers, distribution, independence of counters."""

import numpy as np
import pytest
from numba import njit
from scipy import stats

from vbi_dask.kernels import rng


@njit
def _philox(c0, c1, c2, c3, k0, k1):
    return rng.philox4x32(c0, c1, c2, c3, k0, k1)


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # Random123 known-answer vectors for Philox4x32-10 (kat_vectors)
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(v) for v in _philox(*counter, *key)) == expected


def test_normals_are_standard_normal():
    z = rng.normals_numpy(123, np.arange(100_000), 7, 3).ravel().astype(np.float64)
    n = z.size
    # 5-sigma bands of the sample moments
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the tails exist (P(|z| > 4) ~ 6e-5: ~25 expected in 4e5 draws)
    assert 5 < np.sum(np.abs(z) > 4) < 60


def test_counters_and_streams_are_independent():
    a = rng.normals_numpy(1, np.arange(50_000), 0, 0)[..., 0].astype(np.float64)
    for other in (
        rng.normals_numpy(1, np.arange(50_000), 1, 0)[..., 0],  # next node
        rng.normals_numpy(1, np.arange(50_000), 0, 1)[..., 0],  # next simulation
        rng.normals_numpy(2, np.arange(50_000), 0, 0)[..., 0],  # next seed
        rng.normals_numpy(1, np.arange(50_000), 0, 0, stream=rng.STREAM_INIT)[..., 0],
        rng.normals_numpy(1, np.arange(50_000), 0, 0)[..., 1],  # the pair's second variate
    ):
        r = np.corrcoef(a, other.astype(np.float64))[0, 1]
        assert abs(r) < 5 / np.sqrt(a.size)


def test_pure_function_of_counters():
    full = rng.normals_numpy(9, np.arange(10)[:, None], np.arange(4)[None, :], 5)
    piece = rng.normals_numpy(9, 7, 2, 5)
    np.testing.assert_array_equal(full[7, 2], piece)


def test_uniforms_in_open_interval():
    u = rng.uniforms_numpy(5, np.arange(20_000), 0, 0, stream=rng.STREAM_PRIOR)
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


def test_seed_validation():
    with pytest.raises(ValueError, match="seed"):
        rng.split_seed(-1)
