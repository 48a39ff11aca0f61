"""Power spectra: Welch PSD per node, band powers, relative band powers, peak frequency.

:func:`welch_psd` reproduces ``scipy.signal.welch`` with its defaults (periodic Hann
window, 50 % overlap, constant detrend, one-sided density scaling, mean over segments)
for every simulation and node at once: segments are framed by indexing and transformed
with one batched ``rfft`` along the sample axis.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ._xp import Array, as_signal, check_positive_int, require_dt

__all__ = ["DEFAULT_BANDS", "welch_psd", "psd"]

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 80.0),
}
DEFAULT_NPERSEG = 256


def _segment_length(nperseg: int | None, n_time: int) -> int:
    """Samples per segment: ``nperseg`` (default 256) capped at the series length, as scipy."""
    wanted = DEFAULT_NPERSEG if nperseg is None else check_positive_int(nperseg, "nperseg", 2)
    if n_time < 2:
        raise ValueError(f"a spectrum needs at least 2 samples; the signal has time={n_time}")
    return min(wanted, n_time)


def _frequencies(nperseg: int, dt_ms: float) -> np.ndarray:
    """Frequencies (Hz) of the one-sided spectrum of ``nperseg`` samples taken every ``dt_ms``."""
    return np.fft.rfftfreq(nperseg, d=dt_ms / 1000.0)


def welch_psd(x: Any, dt_ms: float | None = None, *, nperseg: int | None = None) -> tuple[Array, Array]:
    """Welch power spectral density of every node of every simulation.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals, in some unit U.
    dt_ms : float, optional
        Sampling period in ms (default: from a DataArray's time coordinate).
    nperseg : int, optional
        Samples per segment; default 256, capped at the series length (as scipy).

    Returns
    -------
    freqs_hz : array, shape (freq,)
        Frequencies in Hz, ``k * fs / nperseg`` with ``fs = 1000 / dt_ms``.
    psd : array, shape (sim, freq, node)
        One-sided power spectral density in U**2 / Hz.
    """
    data, dt_ms, xp = as_signal(x, dt_ms)
    dt_ms = require_dt(dt_ms, "psd")
    n_time = data.shape[1]
    nperseg = _segment_length(nperseg, n_time)
    step = nperseg - nperseg // 2
    count = (n_time - nperseg) // step + 1
    index = xp.arange(count)[:, None] * step + xp.arange(nperseg)[None, :]
    segments = data[:, index, :]  # (sim, segment, sample, node)
    segments = segments - xp.mean(segments, axis=2, keepdims=True)
    # Periodic Hann window, scipy.signal.get_window("hann", nperseg).
    phase = xp.arange(nperseg, dtype=data.dtype) * (2.0 * math.pi / nperseg)
    window = 0.5 - 0.5 * xp.cos(phase)
    spectrum = xp.fft.rfft(segments * window[:, None], axis=2)
    power = xp.real(spectrum) ** 2 + xp.imag(spectrum) ** 2
    fs_hz = 1000.0 / dt_ms
    power = xp.mean(power, axis=1) / (fs_hz * xp.sum(window * window))
    # One-sided: double every bin but DC and, for even nperseg, the Nyquist bin.
    doubled = np.ones(power.shape[1])
    doubled[1 : (power.shape[1] if nperseg % 2 else power.shape[1] - 1)] = 2.0
    psd = power * xp.asarray(doubled, dtype=power.dtype)[:, None]
    return xp.asarray(_frequencies(nperseg, dt_ms), dtype=data.dtype), psd


def _band_table(
    bands: Mapping[str, Sequence[float]] | None, freqs: np.ndarray, dt_ms: float
) -> dict[str, tuple[float, float]]:
    """Validated bands (Hz) that lie below Nyquist, each holding at least one frequency bin."""
    bands = DEFAULT_BANDS if bands is None else bands
    if not isinstance(bands, Mapping):
        raise ValueError(f"bands must map a band name to (low_hz, high_hz); got {type(bands).__name__}")
    nyquist_hz = 500.0 / dt_ms
    kept = {}
    for name, edges in bands.items():
        try:
            low, high = (float(edge) for edge in edges)
        except (TypeError, ValueError):
            raise ValueError(f"band {name!r} must be a pair (low_hz, high_hz); got {edges!r}") from None
        if not 0.0 <= low < high:
            raise ValueError(f"band {name!r} must satisfy 0 <= low < high (Hz); got ({low}, {high})")
        if high > nyquist_hz * (1 + np.finfo(np.float64).eps):
            continue
        if not np.any((freqs >= low) & (freqs < high)):
            resolution = float(freqs[1] - freqs[0])
            raise ValueError(
                f"band {name!r} [{low}, {high}) Hz holds no frequency bin at a resolution of "
                f"{resolution:g} Hz; lengthen nperseg"
            )
        kept[str(name)] = (low, high)
    return kept


def _psd_names(
    n_nodes: int,
    n_time: int,
    dt_ms: float | None,
    *,
    nperseg: int | None = None,
    bands: Mapping[str, Sequence[float]] | None = None,
    per_node: bool = False,
) -> list[str]:
    dt_ms = require_dt(dt_ms, "psd")
    table = _band_table(bands, _frequencies(_segment_length(nperseg, n_time), dt_ms), dt_ms)
    stats = [f"power_{b}" for b in table] + [f"relpower_{b}" for b in table] + ["peak_hz"]
    names = [f"psd_{stat}" for stat in stats]
    if per_node:
        names += [f"psd_{stat}[{node}]" for stat in stats for node in range(n_nodes)]
    return names


def psd(
    x: Any,
    dt_ms: float | None = None,
    *,
    nperseg: int | None = None,
    bands: Mapping[str, Sequence[float]] | None = None,
    per_node: bool = False,
) -> tuple[Array, list[str]]:
    """Band powers, relative band powers and peak frequency of the Welch PSD.

    Band power is the rectangle-rule integral ``sum(psd[f] * df)`` over bins with
    ``low <= f < high``. Relative power divides it by the power over all bins, DC to
    Nyquist. The peak frequency is the bin of largest PSD, DC excluded. Bands whose upper
    edge exceeds the Nyquist frequency are dropped.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals, in some unit U.
    dt_ms : float, optional
        Sampling period in ms (default: from a DataArray's time coordinate).
    nperseg : int, optional
        Welch segment length in samples (default 256, capped at the series length).
    bands : mapping of str to (low_hz, high_hz), optional
        Frequency bands in Hz; default :data:`DEFAULT_BANDS` (delta 1-4, theta 4-8,
        alpha 8-13, beta 13-30, gamma 30-80).
    per_node : bool
        Also return each node's values after the node averages.

    Returns
    -------
    values : array, shape (sim, k)
        Node means of band power (U**2), relative band power (unitless) and peak
        frequency (Hz); then, if ``per_node``, the same per node.
    names : list of str
        ``psd_power_<band>``, ``psd_relpower_<band>``, ``psd_peak_hz``; per node with a
        ``[node]`` suffix, grouped by statistic.

    Raises
    ------
    ValueError
        Missing ``dt_ms``, a malformed band, or a band holding no frequency bin.
    """
    data, dt_ms, xp = as_signal(x, dt_ms)
    names = _psd_names(data.shape[2], data.shape[1], dt_ms, nperseg=nperseg, bands=bands, per_node=per_node)
    freqs, density = welch_psd(data, dt_ms, nperseg=nperseg)
    freqs_np = _frequencies(_segment_length(nperseg, data.shape[1]), dt_ms)
    table = _band_table(bands, freqs_np, dt_ms)
    df_hz = float(freqs_np[1] - freqs_np[0])
    masks = np.array([(freqs_np >= lo) & (freqs_np < hi) for lo, hi in table.values()], dtype=np.float64)
    masks = xp.asarray(masks.reshape(len(table), freqs_np.size), dtype=density.dtype)
    band_power = xp.matmul(masks, density) * df_hz  # (sim, band, node)
    total = xp.sum(density, axis=1, keepdims=True) * df_hz
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = band_power / total
    peak = freqs[1:][xp.argmax(density[:, 1:, :], axis=1)][:, None, :]  # (sim, 1, node)
    per_stat = xp.concatenate([band_power, relative, peak], axis=1)  # (sim, stat, node)
    values = xp.mean(per_stat, axis=2)
    if per_node:
        values = xp.concatenate([values, xp.reshape(per_stat, (per_stat.shape[0], -1))], axis=1)
    return values, names
