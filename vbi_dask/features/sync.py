"""Phase synchrony: analytic signal and the Kuramoto order parameter.

The analytic signal is computed as in ``scipy.signal.hilbert`` (zero the negative
frequencies, double the positive ones) but with real FFTs: the imaginary part, the
Hilbert transform, is ``irfft(-1j * sign(f) * rfft(x))`` with DC and, for an even
length, the Nyquist bin set to zero. This halves the transform size and keeps the
arithmetic real.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._xp import Array, array_namespace, as_signal

__all__ = ["hilbert_transform", "analytic_signal", "kuramoto_order"]


def hilbert_transform(x: Array, axis: int = 1) -> Array:
    """Hilbert transform along ``axis`` (the imaginary part of the analytic signal).

    Parameters
    ----------
    x : array
        Real signal, any shape; ``axis`` is time.
    axis : int
        The time axis.

    Returns
    -------
    array, same shape and real dtype as ``x``
        ``scipy.signal.hilbert(x, axis=axis).imag``.
    """
    xp = array_namespace(x)
    n = x.shape[axis]
    spectrum = xp.fft.rfft(x, axis=axis)
    sign = np.ones(spectrum.shape[axis])
    sign[0] = 0.0
    if n % 2 == 0:
        sign[-1] = 0.0
    shape = [1] * x.ndim
    shape[axis] = sign.size
    rotate = xp.asarray(-1j * sign, dtype=spectrum.dtype).reshape(shape)
    return xp.asarray(xp.fft.irfft(spectrum * rotate, n=n, axis=axis), dtype=x.dtype)


def analytic_signal(x: Any) -> Array:
    """Analytic signal ``x + i H[x]`` of every node, along time.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Real signals.

    Returns
    -------
    array, shape (sim, time, node), complex
        Equal to ``scipy.signal.hilbert(x, axis=1)``.
    """
    data, _, xp = as_signal(x)
    return data + 1j * hilbert_transform(data, axis=1)


def _kuramoto_names(n_nodes: int, n_time: int, dt_ms: float | None, **_: Any) -> list[str]:
    if n_time < 2:
        raise ValueError(f"kuramoto_order needs at least 2 samples; the signal has time={n_time}")
    return ["kuramoto_mean", "kuramoto_std"]


def kuramoto_order(x: Any, *, demean: bool = True) -> tuple[Array, list[str]]:
    """Kuramoto order parameter of the nodes' Hilbert phases: mean and std over time.

    ``R(t) = |mean_nodes exp(i phase_n(t))|`` with ``phase_n`` the angle of the
    analytic signal of node n. Phases are meaningful for narrow-band signals:
    band-pass the signal first where it is broadband. The transform treats the series
    as periodic, so the first and last samples carry edge effects.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Real signals.
    demean : bool
        Subtract each node's mean over time first (an offset, as in BOLD, otherwise
        pulls every phase towards zero).

    Returns
    -------
    values : array, shape (sim, 2)
        Mean and standard deviation (ddof=0) of R over time, unitless in [0, 1].
        R is NaN at samples where a node's amplitude is zero.
    names : list of str
        ``["kuramoto_mean", "kuramoto_std"]``.

    References
    ----------
    Kuramoto (1984), Chemical Oscillations, Waves, and Turbulence, Springer.
    """
    data, _, xp = as_signal(x)
    names = _kuramoto_names(data.shape[2], data.shape[1], None)
    if demean:
        data = data - xp.mean(data, axis=1, keepdims=True)
    imag = hilbert_transform(data, axis=1)
    amplitude = xp.sqrt(data * data + imag * imag)
    with np.errstate(divide="ignore", invalid="ignore"):
        amplitude = xp.where(amplitude == 0, xp.nan, amplitude)
        cos_mean = xp.mean(data / amplitude, axis=2)
        sin_mean = xp.mean(imag / amplitude, axis=2)
    order = xp.clip(xp.sqrt(cos_mean * cos_mean + sin_mean * sin_mean), 0.0, 1.0)
    values = xp.stack([xp.mean(order, axis=1), xp.std(order, axis=1)], axis=1)
    return values, names
