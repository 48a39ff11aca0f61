"""Moments of each node's signal over time: mean, standard deviation, skewness, kurtosis.

Conventions follow ``scipy.stats`` with ``bias=True``: central moments are averaged over
the n samples (ddof=0), skewness is ``m3 / m2**1.5`` and kurtosis is Fisher's excess
``m4 / m2**2 - 3``. A node whose standard deviation is below the rounding level of an
n-sample mean, ``n * eps * |mean|``, is constant up to roundoff and gets a NaN skewness
and kurtosis. (scipy's test, ``std <= eps * |mean|``, is the same idea but depends on
the summation order of the mean, which differs between a strided batch and a 1-d array.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._xp import Array, as_signal

__all__ = ["moments", "MOMENT_STATS"]

MOMENT_STATS = ("mean", "std", "skewness", "kurtosis")


def _moments_names(
    n_nodes: int, n_time: int, dt_ms: float | None, *, stats: tuple[str, ...] | list[str] = MOMENT_STATS, **_: Any
) -> list[str]:
    stats = _check_stats(stats)
    return [f"{stat}[{node}]" for stat in stats for node in range(n_nodes)]


def _check_stats(stats) -> tuple[str, ...]:
    if isinstance(stats, str):
        stats = (stats,)
    stats = tuple(stats)
    unknown = [s for s in stats if s not in MOMENT_STATS]
    if unknown or not stats:
        raise ValueError(f"unknown moment statistics {unknown}; valid statistics: {', '.join(MOMENT_STATS)}")
    return stats


def moments(x: Any, *, stats: tuple[str, ...] | list[str] = MOMENT_STATS) -> tuple[Array, list[str]]:
    """Per-node mean, standard deviation, skewness and excess kurtosis over time.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals, in some unit U.
    stats : sequence of str
        Which statistics, in order; any of ``mean``, ``std``, ``skewness``, ``kurtosis``
        (default all four).

    Returns
    -------
    values : array, shape (sim, len(stats) * node)
        Mean (U), standard deviation (U, ddof=0), skewness and excess kurtosis
        (unitless), grouped by statistic then node.
    names : list of str
        ``"<stat>[<node>]"``, e.g. ``"std[3]"``.

    Notes
    -----
    Matches ``scipy.stats.skew(x, axis=1)`` and ``scipy.stats.kurtosis(x, axis=1)``
    (``bias=True``, ``fisher=True``).
    """
    data, _, xp = as_signal(x)
    stats = _check_stats(stats)
    names = _moments_names(data.shape[2], data.shape[1], None, stats=stats)
    mean = xp.mean(data, axis=1)
    centred = data - mean[:, None, :]
    squared = centred * centred
    m2 = xp.mean(squared, axis=1)
    m3 = xp.mean(squared * centred, axis=1)
    m4 = xp.mean(squared * squared, axis=1)
    eps = xp.finfo(data.dtype).eps
    constant = m2 <= (data.shape[1] * eps * mean) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        skewness = xp.where(constant, xp.nan, m3 / m2**1.5)
        kurtosis = xp.where(constant, xp.nan, m4 / (m2 * m2) - 3.0)
    table = {"mean": mean, "std": xp.sqrt(m2), "skewness": skewness, "kurtosis": kurtosis}
    return xp.concatenate([table[stat] for stat in stats], axis=1), names
