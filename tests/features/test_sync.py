"""Analytic signal against scipy.signal.hilbert; Kuramoto order on hand-built phases."""

import numpy as np
import pytest
import scipy.signal

from vbi_dask.features import analytic_signal, kuramoto_order


@pytest.mark.parametrize("n_time", [256, 255])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_analytic_signal_matches_scipy_hilbert(rng, tol, dtype, n_time):
    x = rng.standard_normal((3, n_time, 4)).astype(dtype)
    got = analytic_signal(x)
    expected = scipy.signal.hilbert(x.astype(np.float64), axis=1)
    # Forward and inverse FFT: error ~ log2(n) eps each; allow 4 * log2(n) roundoffs of the scale.
    atol = np.abs(expected).max() * tol(dtype, 4 * np.log2(n_time))
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


def reference_order(x, demean=True):
    if demean:
        x = x - x.mean(axis=1, keepdims=True)
    phases = np.angle(scipy.signal.hilbert(x, axis=1))
    order = np.abs(np.exp(1j * phases).mean(axis=2))
    return np.stack([order.mean(axis=1), order.std(axis=1)], axis=1)


@pytest.mark.parametrize("demean", [True, False])
def test_kuramoto_matches_reference(rng, tol, demean):
    t = np.arange(500) * 1e-3
    phase_noise = np.cumsum(rng.standard_normal((2, 500, 5)) * 0.05, axis=1)
    x = np.cos(2 * np.pi * 10 * t[None, :, None] + phase_noise) + 0.5
    values, names = kuramoto_order(x, demean=demean)
    assert names == ["kuramoto_mean", "kuramoto_std"]
    np.testing.assert_allclose(values, reference_order(x, demean), rtol=0, atol=tol(np.float64, 64 * np.log2(500)))


def test_identical_phases_give_order_one(tol):
    t = np.arange(400) * 1e-3
    amplitudes = np.array([0.5, 1.0, 2.0, 3.0])
    x = (np.sin(2 * np.pi * 5 * t)[:, None] * amplitudes + 4.0)[None]  # same phase, different amplitude and offset
    values, _ = kuramoto_order(x)
    assert values[0, 0] == pytest.approx(1.0, abs=tol(np.float64, 64))
    assert values[0, 1] == pytest.approx(0.0, abs=tol(np.float64, 64))


def test_antiphase_pair_gives_order_zero(tol):
    t = np.arange(400) * 1e-3
    wave = np.sin(2 * np.pi * 5 * t)
    values, _ = kuramoto_order(np.stack([wave, -wave], axis=1)[None])
    assert values[0, 0] == pytest.approx(0.0, abs=tol(np.float64, 64))
