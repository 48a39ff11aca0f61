"""Welch PSD against scipy.signal.welch per simulation and node; band powers by hand."""

import numpy as np
import pytest
import scipy.signal
import xarray as xr

from vbi_dask.features import DEFAULT_BANDS, psd, welch_psd


def scipy_welch(x, dt_ms, nperseg):
    """scipy.signal.welch on each (sim, node) series: (freqs, psd (sim, freq, node))."""
    fs = 1000.0 / dt_ms
    out = np.empty((x.shape[0], nperseg // 2 + 1, x.shape[2]), dtype=x.dtype)
    for s in range(x.shape[0]):
        for n in range(x.shape[2]):
            freqs, out[s, :, n] = scipy.signal.welch(x[s, :, n], fs=fs, nperseg=nperseg)
    return freqs, out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_time, nperseg", [(1000, 128), (1000, 101), (300, None), (200, 256)])
def test_welch_matches_scipy(signals, rng, tol, dtype, n_time, nperseg):
    x = signals(rng, 3, n_time, 4, dtype)
    freqs, density = welch_psd(x, 0.5, nperseg=nperseg)
    used = min(nperseg or 256, n_time)
    expected_freqs, expected = scipy_welch(x, 0.5, used)
    assert density.shape == expected.shape and density.dtype == dtype
    np.testing.assert_allclose(freqs, expected_freqs, rtol=tol(dtype, 4))
    # An FFT of n points has relative error ~ log2(n) eps; the segment mean adds n terms.
    scale = np.max(expected)
    np.testing.assert_allclose(density, expected, rtol=0, atol=scale * tol(dtype, 4 * used))


def test_pure_10hz_sine_peaks_at_10hz_with_alpha_dominant(tol):
    dt_ms = 1.0
    t_s = np.arange(4000) * dt_ms / 1000.0
    x = np.sin(2 * np.pi * 10.0 * t_s)[None, :, None] * np.ones((2, 1, 3))
    values, names = psd(x, dt_ms, nperseg=1000)
    stats = dict(zip(names, values[0]))
    assert stats["psd_peak_hz"] == pytest.approx(10.0, abs=tol(np.float64, 16))
    powers = {band: stats[f"psd_power_{band}"] for band in DEFAULT_BANDS}
    assert max(powers, key=powers.get) == "alpha"
    # Hann leakage reaches one bin either side of 10 Hz; all of it lies in 8-13 Hz.
    assert stats["psd_relpower_alpha"] > 1 - 1e3 * np.finfo(np.float64).eps
    # Parseval: a unit sine carries power 1/2.
    assert stats["psd_power_alpha"] == pytest.approx(0.5, rel=1e3 * np.finfo(np.float64).eps)


def test_band_powers_are_rectangle_sums_of_scipy_psd(signals, rng, tol):
    x = signals(rng, 2, 2048, 3)
    dt_ms, nperseg = 2.0, 256  # fs 500 Hz, df ~1.95 Hz
    values, names = psd(x, dt_ms, nperseg=nperseg, per_node=True)
    freqs, expected = scipy_welch(x, dt_ms, nperseg)
    df = freqs[1] - freqs[0]
    total = expected.sum(axis=1) * df
    table = dict(zip(names, values.T))
    for band, (lo, hi) in DEFAULT_BANDS.items():
        power = expected[:, (freqs >= lo) & (freqs < hi), :].sum(axis=1) * df  # (sim, node)
        atol = np.max(power) * tol(np.float64, 4 * nperseg)
        np.testing.assert_allclose(table[f"psd_power_{band}"], power.mean(axis=1), rtol=0, atol=atol)
        np.testing.assert_allclose(table[f"psd_power_{band}[2]"], power[:, 2], rtol=0, atol=atol)
        np.testing.assert_allclose(
            table[f"psd_relpower_{band}"], (power / total).mean(axis=1), rtol=0, atol=tol(np.float64, 4 * nperseg)
        )
    peaks = freqs[1:][np.argmax(expected[:, 1:, :], axis=1)]
    np.testing.assert_array_equal(table["psd_peak_hz[0]"], peaks[:, 0])
    np.testing.assert_allclose(table["psd_peak_hz"], peaks.mean(axis=1), rtol=tol(np.float64, 4))
    assert len(names) == 11 * (1 + 3)


def test_bands_above_nyquist_are_dropped(signals, rng):
    x = signals(rng, 1, 1000, 2)
    _, names = psd(x, 10.0, nperseg=200)  # fs 100 Hz: Nyquist 50 Hz excludes gamma 30-80
    assert "psd_power_beta" in names and not any("gamma" in n for n in names)
    _, names = psd(x, 10.0, nperseg=200, bands={"slow": [0.5, 2.0], "fast": [40, 60]})
    assert names == ["psd_power_slow", "psd_relpower_slow", "psd_peak_hz"]


def test_psd_errors_name_the_problem(signals, rng):
    x = signals(rng, 1, 500, 2)
    with pytest.raises(ValueError, match="psd needs the sampling period"):
        psd(x)
    with pytest.raises(ValueError, match=r"band 'narrow' \[10.1, 10.2\) Hz holds no frequency bin"):
        psd(x, 1.0, bands={"narrow": (10.1, 10.2)})
    with pytest.raises(ValueError, match=r"band 'inverted' must satisfy 0 <= low < high"):
        psd(x, 1.0, bands={"inverted": (8, 4)})
    with pytest.raises(ValueError, match="nperseg must be an integer >= 2"):
        psd(x, 1.0, nperseg=1)


def test_dt_from_dataarray_time_coordinate(signals, rng):
    x = signals(rng, 2, 600, 3)
    da = xr.DataArray(x, dims=("sim", "time", "node"), coords={"time": 5.0 + 2.0 * np.arange(600)})
    np.testing.assert_array_equal(psd(da)[0], psd(x, 2.0)[0])
    with pytest.raises(ValueError, match="disagrees with the time coordinate"):
        psd(da, 1.0)
    seconds = da.assign_coords(time=da.time.assign_attrs(units="s"))
    with pytest.raises(ValueError, match="must be in ms"):
        psd(seconds)
    uneven = da.assign_coords(time=np.cumsum(rng.uniform(1, 2, 600)))
    with pytest.raises(ValueError, match="uniformly spaced"):
        psd(uneven)
