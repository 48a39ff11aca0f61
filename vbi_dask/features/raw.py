"""The signal itself as feature columns, for training an embedding network on raw
signals (:class:`vbi_dask.train.embedding.SignalCNN`): the samples of every channel,
optionally cropped to a window and decimated (every ``decimate``-th sample of the window;
average first when the signal holds power above the new Nyquist frequency, e.g. with a
TemporalAverage monitor of the decimated period).

Columns are ``raw[t,c]`` (time index within the kept samples, then channel), time-major:
the store then keeps each simulation's signal as one row of the features, chunked along
``sim`` like every other column, so that streaming a block of simulations is one read.
"""

from __future__ import annotations

from typing import Any

from ._xp import Array, as_signal

__all__ = ["raw"]


def _window(n_time: int, start: int, stop: int | None, decimate: int) -> range:
    if isinstance(decimate, bool) or not isinstance(decimate, int) or decimate < 1:
        raise ValueError(f"decimate must be a positive integer, got {decimate!r}")
    stop = n_time if stop is None else stop
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < stop <= n_time:
        raise ValueError(f"the window [start, stop) = [{start}, {stop}) must lie within the signal's {n_time} samples")
    return range(start, stop, decimate)


def _raw_names(
    n_nodes: int,
    n_time: int,
    dt_ms: float | None,
    *,
    decimate: int = 1,
    start: int = 0,
    stop: int | None = None,
    **_: Any,
) -> list[str]:
    kept = _window(n_time, start, stop, decimate)
    return [f"raw[{t},{c}]" for t in range(len(kept)) for c in range(n_nodes)]


def raw(x: Any, *, decimate: int = 1, start: int = 0, stop: int | None = None) -> tuple[Array, list[str]]:
    """The samples ``start, start + decimate, ... < stop`` of every channel.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals (nodes, or the sensors of an EEG/MEG signal).
    decimate : int
        Keep every ``decimate``-th sample (no filtering: see the module docstring).
    start, stop : int
        The window of samples kept (default the whole signal).

    Returns
    -------
    values : array, shape (sim, kept_time * node)
    names : list of str
        ``"raw[<t>,<c>]"``, time-major.
    """
    data, _, xp = as_signal(x)
    kept = _window(data.shape[1], start, stop, decimate)
    values = data[:, kept.start : kept.stop : kept.step, :]
    return xp.reshape(values, (values.shape[0], -1)), _raw_names(
        data.shape[2], data.shape[1], None, decimate=decimate, start=start, stop=stop
    )
