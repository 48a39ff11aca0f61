"""Shared helpers: the array namespace, signal validation, and small array-API kernels.

Feature code is written against a namespace ``xp`` taken from its input (NumPy here,
CuPy when given a CuPy array), using only functions both provide, so a GPU path can
reuse it unchanged. CuPy is imported only when a CuPy array is seen.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any, NamedTuple, Sequence

import numpy as np
import xarray as xr

__all__ = ["array_namespace", "Signal", "as_signal", "upper_triangle", "standardise", "quantile_last"]

Array = Any  # numpy.ndarray, or cupy.ndarray on the GPU path

SIGNAL_DIMS = ("sim", "time", "node")


def array_namespace(x: Array) -> ModuleType:
    """The array module that ``x`` belongs to: ``cupy`` for a CuPy array, else ``numpy``.

    Parameters
    ----------
    x : array
        Any array; lists and scalars count as NumPy.

    Returns
    -------
    module
        ``cupy`` (imported on first use) or ``numpy``.
    """
    if type(x).__module__.split(".")[0] == "cupy":
        return importlib.import_module("cupy")
    return np


class Signal(NamedTuple):
    """A validated signal: data shaped (sim, time, node), its sampling period and namespace."""

    data: Array
    dt_ms: float | None
    xp: ModuleType


def _dt_from_time_coord(time: xr.DataArray) -> tuple[float, float] | None:
    """(sampling period in ms, its tolerance) of a ``time`` coordinate; None if too short."""
    if time.size < 2:
        return None
    units = str(time.attrs.get("units", "ms")).strip().lower()
    if units not in ("ms", "msec", "millisecond", "milliseconds"):
        raise ValueError(f"the time coordinate must be in ms; its units attribute says {units!r}")
    if time.dtype.kind not in "iuf":
        raise ValueError(f"the time coordinate must hold numbers of ms; got dtype {time.dtype}")
    values = np.asarray(time.values, dtype=np.float64)
    steps = np.diff(values)
    dt_ms = float(np.mean(steps))
    # A uniform grid stored in floats is uniform to a few ulps (of its own dtype) of its
    # largest value; 64 ulps leaves room for grids built by repeated addition.
    eps = np.finfo(time.dtype if time.dtype.kind == "f" else np.float64).eps
    tolerance = 64 * eps * max(abs(values[0]), abs(values[-1]), abs(dt_ms))
    if dt_ms <= 0 or np.max(np.abs(steps - dt_ms)) > tolerance:
        raise ValueError("the time coordinate must be increasing and uniformly spaced (ms)")
    return dt_ms, tolerance


def as_signal(x: Any, dt_ms: float | None = None) -> Signal:
    """Validate a signal and return it as (sim, time, node) floating data.

    Parameters
    ----------
    x : array or xarray.DataArray
        A NumPy/CuPy array shaped (sim, time, node), or a DataArray with dims ``sim``,
        ``time`` (or ``time_bold``, as BOLD from :meth:`Simulation.run`) and ``node`` in
        any order (transposed here).
    dt_ms : float, optional
        Sampling period in ms. For a DataArray it defaults to the spacing of its ``time``
        coordinate (in ms); when both are given they must agree.

    Returns
    -------
    Signal
        ``data`` (float32 stays float32, float64 stays float64, anything else becomes
        float64), ``dt_ms`` (None when unknown) and the namespace ``xp``.

    Raises
    ------
    ValueError
        Wrong dims or number of dimensions, non-real data, non-positive ``dt_ms``, or a
        ``dt_ms`` that disagrees with the time coordinate.
    """
    coord_dt = None
    if isinstance(x, xr.DataArray):
        if "time_bold" in x.dims and "time" not in x.dims:  # Simulation.run's BOLD
            x = x.rename(time_bold="time")
        if set(x.dims) != set(SIGNAL_DIMS) or x.ndim != 3:
            raise ValueError(f"signal dims must be {SIGNAL_DIMS} (any order); got {x.dims}")
        if "time" in x.coords:
            coord_dt = _dt_from_time_coord(x.coords["time"])
        x = x.transpose(*SIGNAL_DIMS)
        data = x.data
        if type(data).__module__.split(".")[0] == "dask":
            data = x.compute().data
    else:
        data = x
    xp = array_namespace(data)
    data = xp.asarray(data)
    if data.ndim != 3:
        raise ValueError(
            f"signal must be shaped (sim, time, node); got {data.ndim} dimensions, shape {tuple(data.shape)}"
        )
    if data.dtype.kind == "c":
        raise ValueError(f"signal must be real; got dtype {data.dtype}")
    if data.dtype not in (xp.float32, xp.float64):
        data = xp.asarray(data, dtype=xp.float32 if data.dtype == xp.float16 else xp.float64)
    if dt_ms is not None:
        dt_ms = float(dt_ms)
        if not (math.isfinite(dt_ms) and dt_ms > 0):
            raise ValueError(f"dt_ms must be a positive number of ms; got {dt_ms}")
        if coord_dt is not None and abs(dt_ms - coord_dt[0]) > coord_dt[1]:
            raise ValueError(f"dt_ms={dt_ms} disagrees with the time coordinate's spacing {coord_dt[0]} ms")
        return Signal(data, dt_ms, xp)
    return Signal(data, None if coord_dt is None else coord_dt[0], xp)


def require_dt(dt_ms: float | None, feature: str) -> float:
    """``dt_ms``, or a ValueError saying that ``feature`` needs the sampling period."""
    if dt_ms is None:
        raise ValueError(f"{feature} needs the sampling period: pass dt_ms (ms) or a DataArray with a time coordinate")
    return float(dt_ms)


def upper_triangle(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the strict upper triangle of an n x n matrix, row-major."""
    return np.triu_indices(n, k=1)


def standardise(xp: ModuleType, x: Array, axis: int) -> Array:
    """Centre ``x`` along ``axis`` and scale it to unit Euclidean norm.

    The Pearson correlation of two series is then the sum of their products. A series
    whose spread is below the rounding level of its mean (``n * eps * |mean|``) is
    treated as constant and becomes NaN, as its correlations are undefined.
    """
    n = x.shape[axis]
    mean = xp.mean(x, axis=axis, keepdims=True)
    centred = x - mean
    norm = xp.sqrt(xp.sum(centred * centred, axis=axis, keepdims=True))
    eps = xp.finfo(x.dtype).eps
    flat = norm <= n * eps * xp.abs(mean)
    flat = flat | (norm == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = centred / xp.where(flat, xp.nan, norm)
    return unit


def quantile_last(xp: ModuleType, a: Array, qs: Sequence[float]) -> Array:
    """Quantiles along the last axis with linear interpolation (NumPy's default method).

    Parameters
    ----------
    a : array, shape (..., n)
    qs : sequence of float in [0, 1]

    Returns
    -------
    array, shape (..., len(qs))
        NaN for rows holding any NaN.
    """
    n = a.shape[-1]
    ordered = xp.sort(a, axis=-1)
    out = []
    for q in qs:
        position = q * (n - 1)
        lo = int(math.floor(position))
        hi = min(lo + 1, n - 1)
        frac = position - lo
        out.append(ordered[..., lo] + (ordered[..., hi] - ordered[..., lo]) * frac)
    result = xp.stack(out, axis=-1) if out else xp.zeros(a.shape[:-1] + (0,), dtype=a.dtype)
    has_nan = xp.any(xp.isnan(a), axis=-1, keepdims=True)
    return xp.where(has_nan, xp.nan, result)


def check_positive_int(value: Any, what: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``what``."""
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return int(value)
