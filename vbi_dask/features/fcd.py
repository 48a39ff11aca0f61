"""Functional connectivity dynamics (FCD): how FC changes across sliding windows.

For each simulation the signal is cut into windows of ``window`` samples started every
``step`` samples; each window gives an FC upper triangle, and the FCD is the matrix of
Pearson correlations between those window FCs (window x window). All simulations and
windows are handled by batched matrix products.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ._xp import Array, array_namespace, as_signal, check_positive_int, quantile_last, standardise, upper_triangle

__all__ = ["fcd", "fcd_matrix", "window_fc"]

DEFAULT_WINDOW_MS = 60_000.0
DEFAULT_STEP_MS = 2_000.0
DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
WORKSPACE_BYTES = 16 * 2**20  # the window FCs of a group of simulations (see fcd)


def _samples(samples: Any, ms: Any, default_ms: float, dt_ms: float | None, what: str, minimum: int) -> int:
    """A length in samples, from ``samples`` or else ``ms`` (else ``default_ms``) / dt."""
    if samples is not None:
        if ms is not None:
            raise ValueError(f"give either {what}_samples or {what}_ms, not both")
        return check_positive_int(samples, f"{what}_samples", minimum)
    ms = default_ms if ms is None else float(ms)
    if dt_ms is None:
        raise ValueError(f"{what}_ms={ms} needs the sampling period dt_ms (or give {what}_samples)")
    if not (math.isfinite(ms) and ms > 0):
        raise ValueError(f"{what}_ms must be a positive duration in ms; got {ms}")
    count = int(round(ms / dt_ms))
    if count < minimum:
        raise ValueError(f"{what}_ms={ms} is {count} samples at dt_ms={dt_ms}; at least {minimum} needed")
    return count


def _windows(
    n_time: int, dt_ms: float | None, window_samples, step_samples, window_ms, step_ms
) -> tuple[int, int, int]:
    """(window, step, number of windows), validated against a series of ``n_time`` samples."""
    window = _samples(window_samples, window_ms, DEFAULT_WINDOW_MS, dt_ms, "window", 2)
    step = _samples(step_samples, step_ms, DEFAULT_STEP_MS, dt_ms, "step", 1)
    if window > n_time:
        raise ValueError(f"the FCD window ({window} samples) is longer than the series (time={n_time} samples)")
    count = (n_time - window) // step + 1
    if count < 2:
        raise ValueError(
            f"FCD needs at least 2 windows; window={window} and step={step} samples give {count} "
            f"on a series of time={n_time} samples"
        )
    return window, step, count


def window_fc(
    x: Any,
    dt_ms: float | None = None,
    *,
    window_samples: int | None = None,
    step_samples: int | None = None,
    window_ms: float | None = None,
    step_ms: float | None = None,
) -> Array:
    """FC upper triangle in each sliding window.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals.
    dt_ms : float, optional
        Sampling period in ms (needed when a length is given in ms).
    window_samples, window_ms : int or float, optional
        Window length, in samples or in ms (rounded to the nearest sample); at most one.
        Default 60 000 ms.
    step_samples, step_ms : int or float, optional
        Distance between window starts, in samples or in ms; at most one. Default 2000 ms.

    Returns
    -------
    array, shape (sim, window, node * (node - 1) / 2)
        Window k covers samples ``[k * step, k * step + window)``.
    """
    data, dt_ms, xp = as_signal(x, dt_ms)
    n_sim, n_time, n_nodes = data.shape
    if n_nodes < 2:
        raise ValueError(f"fcd needs at least 2 nodes; the signal has node={n_nodes}")
    window, step, count = _windows(n_time, dt_ms, window_samples, step_samples, window_ms, step_ms)
    index = xp.arange(count)[:, None] * step + xp.arange(window)[None, :]
    framed = data[:, index, :]  # (sim, window index, sample in window, node)
    unit = standardise(xp, framed, axis=2)
    # a contiguous transposed operand keeps the batched product on BLAS
    corr = xp.matmul(xp.ascontiguousarray(xp.swapaxes(unit, 2, 3)), unit)
    rows, cols = upper_triangle(n_nodes)
    return xp.clip(corr[:, :, xp.asarray(rows), xp.asarray(cols)], -1.0, 1.0)


def fcd_matrix(
    x: Any,
    dt_ms: float | None = None,
    *,
    window_samples: int | None = None,
    step_samples: int | None = None,
    window_ms: float | None = None,
    step_ms: float | None = None,
) -> Array:
    """The FCD matrix: Pearson correlation between the FCs of every two windows.

    Parameters are those of :func:`window_fc`.

    Returns
    -------
    array, shape (sim, window, window)
        Symmetric, unit diagonal (unitless).
    """
    stack = window_fc(
        x, dt_ms, window_samples=window_samples, step_samples=step_samples, window_ms=window_ms, step_ms=step_ms
    )
    xp = array_namespace(stack)
    unit = standardise(xp, stack, axis=2)
    out = xp.empty((unit.shape[0], unit.shape[1], unit.shape[1]), dtype=unit.dtype)
    for k in range(unit.shape[0]):  # a @ a.T of a contiguous matrix: BLAS syrk, half a batched product's work
        xp.matmul(unit[k], unit[k].T, out=out[k])
    return xp.clip(out, -1.0, 1.0, out=out)


def _check_quantiles(qs: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in qs)
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1]; got {list(qs)}")
    return qs


def _fcd_names(
    n_nodes: int,
    n_time: int,
    dt_ms: float | None,
    *,
    window_samples: int | None = None,
    step_samples: int | None = None,
    window_ms: float | None = None,
    step_ms: float | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> list[str]:
    if n_nodes < 2:
        raise ValueError(f"fcd needs at least 2 nodes; the signal has node={n_nodes}")
    _windows(n_time, dt_ms, window_samples, step_samples, window_ms, step_ms)
    qs = _check_quantiles(quantiles)
    return ["fcd_var"] + [f"fcd_q{q:g}" for q in qs] + ["fcd_mean", "fcd_fluidity"]


def fcd(
    x: Any,
    dt_ms: float | None = None,
    *,
    window_samples: int | None = None,
    step_samples: int | None = None,
    window_ms: float | None = None,
    step_ms: float | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> tuple[Array, list[str]]:
    """Summary statistics of the FCD matrix.

    Statistics are taken over the strict upper triangle of :func:`fcd_matrix` (every
    pair of distinct windows): its variance (ddof=0), quantiles (linear interpolation,
    as ``numpy.quantile``), and mean. *Fluidity* is the variance of the entries whose two
    windows do not overlap, i.e. windows i < j with ``(j - i) * step >= window``. This is
    the statistic of Lavanga et al. (2023) and VBI, ``var(triu(FCD, k=window/step))``,
    except that the zeros ``numpy.triu`` leaves below the band are not counted in. It is
    NaN when no two windows are disjoint, i.e. when the series is shorter than
    ``window + ceil(window / step) * step`` samples.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals.
    dt_ms : float, optional
        Sampling period in ms (needed when a length is given in ms).
    window_samples, window_ms, step_samples, step_ms
        Window length and step, as in :func:`window_fc` (defaults 60 000 ms and 2000 ms).
    quantiles : sequence of float in [0, 1]
        Quantiles of the FCD upper triangle to report.

    Returns
    -------
    values : array, shape (sim, 3 + len(quantiles))
    names : list of str
        ``fcd_var``, ``fcd_q<q>`` for each quantile, ``fcd_mean``, ``fcd_fluidity``.

    Raises
    ------
    ValueError
        The window is longer than the series, fewer than 2 windows fit, or a window or
        step is not a positive length.

    References
    ----------
    Hansen et al. (2015), NeuroImage 105:525-535 (FCD). Lavanga et al. (2023),
    NeuroImage 283:120403 (fluidity, inter-hemispheric FCD).
    """
    data, dt_ms, xp = as_signal(x, dt_ms)
    lengths = dict(window_samples=window_samples, step_samples=step_samples, window_ms=window_ms, step_ms=step_ms)
    names = _fcd_names(data.shape[2], data.shape[1], dt_ms, quantiles=quantiles, **lengths)
    window, step, count = _windows(data.shape[1], dt_ms, **lengths)
    # a few simulations at a time: the window FCs (window x node x node per simulation)
    # then stay in cache; a whole block's (hundreds of MB) made it ~8x slower
    group = max(1, WORKSPACE_BYTES // (count * data.shape[2] ** 2 * data.dtype.itemsize))
    parts = [
        _fcd_statistics(xp, data[i : i + group], dt_ms, window, step, count, quantiles, lengths)
        for i in range(0, data.shape[0], group)
    ]
    return (parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=0)), names


def _fcd_statistics(xp, data, dt_ms, window, step, count, quantiles, lengths) -> Array:
    matrix = fcd_matrix(data, dt_ms, **lengths)
    rows, cols = upper_triangle(count)
    upper = matrix[:, xp.asarray(rows), xp.asarray(cols)]
    disjoint = (cols - rows) * step >= window
    if disjoint.any():
        fluidity = xp.var(upper[:, xp.asarray(disjoint.nonzero()[0])], axis=1)
    else:
        fluidity = xp.full(upper.shape[:1], xp.nan, dtype=upper.dtype)
    columns = [xp.var(upper, axis=1)[:, None], quantile_last(xp, upper, _check_quantiles(quantiles))]
    columns += [xp.mean(upper, axis=1)[:, None], fluidity[:, None]]
    return xp.concatenate(columns, axis=1)
