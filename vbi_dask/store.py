"""The Zarr v3 store of a simulation budget: schema, allocation, block writes, validation.

Schema (version 1), one store per budget::

    theta(sim, param)                      float32  drawn parameters (prior.param_names)
    features(sim, feature)                 float32  FeatureSet columns
    bold(sim, time_bold, node)             float32  only with keep_bold
    valid(sim)                             bool     finite features and theta in the prior's support
    checksum(sim)                          uint64   of each written row (see :func:`row_checksums`)
    done(sim)                              bool     block written (set last, after the data)
    round(sim)                             int16    sequential stores only: the round that drew the row
                                                    (-1 until written); proposals in group ``rounds``
    connectome_weights(node, node_from)    float64  (+ connectome_tract_lengths_mm, _centres_mm, _cortical)
    coords: sim (int64 global index), param, feature, node, node_from (str), time_bold (ms)
    attrs:  simulation, prior, featureset (JSON strings of their to_dict()), connectome_hash,
            connectome_name, seed, n_sims, chunk_size, keep_bold, vbi_dask_version,
            schema_version = 1

Every variable with a ``sim`` dim is chunked by ``chunk_size`` simulations; a block is
one chunk, written by one task (chunk-aligned region writes are safe from many
processes; see ``shared/notes/zarr-dask.md``). Completion is the ``done`` variable,
written after the block's data: never zarr attributes, never chunk existence.

Integrity: ``done`` means the block's rows read back exactly as written. Each row's
``checksum`` (8 bytes of BLAKE2b over its index and its stored bytes) is written with the
data; :func:`verify` re-reads every done block and reports the ones that cannot be read
or do not match (a deleted chunk reads as the fill value), and with ``repair=True``
marks them not done, so that the next run recomputes exactly those. Reading for training
(:mod:`vbi_dask.train.data`) raises :class:`StoreDamagedError`, naming the block, rather
than returning damaged rows. Stores written before checksums existed (no ``checksum``
variable) are verified for readability and finite features only.

One writer: drivers that write a store hold its claim (``STORE.lock``, see
:class:`StoreLock`); a second driver is refused with the holder named.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ._claim import LEASE_S, Claim, StoreLock, StoreLockedError, read_claim
from .connectome import Connectome

__all__ = [
    "SCHEMA_VERSION",
    "open_store",
    "connectome_from_store",
    "StoreMismatchError",
    "StoreDamagedError",
    "StoreLock",
    "StoreLockedError",
    "LEASE_S",
    "verify",
    "VerifyReport",
    "row_checksums",
    "status",
    "StoreStatus",
]

SCHEMA_VERSION = 1
# name -> dims; the training code relies on these names.
REQUIRED_VARIABLES = {
    "theta": ("sim", "param"),
    "features": ("sim", "feature"),
    "valid": ("sim",),
    "done": ("sim",),
    "connectome_weights": ("node", "node_from"),
}
REQUIRED_ATTRS = (
    "simulation",
    "prior",
    "featureset",
    "connectome_hash",
    "seed",
    "n_sims",
    "chunk_size",
    "keep_bold",
    "vbi_dask_version",
    "schema_version",
)
JSON_ATTRS = ("simulation", "prior", "featureset", "sequential")
# attributes that must agree for a budget to resume or extend a store ("sequential": the
# rounds' method, observation and training; absent from a one-round store)
CONFIG_ATTRS = (
    "simulation",
    "prior",
    "featureset",
    "connectome_hash",
    "seed",
    "chunk_size",
    "keep_bold",
    "kernel_numerics",
    "sequential",
)
SIM_VARIABLES = ("theta", "features", "bold", "valid", "checksum", "done", "round")
# the variables a row's checksum covers, in this order
CHECKED_VARIABLES = ("theta", "features", "valid", "bold", "round")


class StoreMismatchError(ValueError):
    """A store was made by another budget configuration (the message lists the fields)."""


class StoreDamagedError(RuntimeError):
    """Part of a store cannot be read or holds values its ``done`` rows cannot have (the
    message names the store, variable and simulations, and how to repair)."""


def _repair_hint(store) -> str:
    return f"run 'vbi-dask verify {os.fspath(store)} --repair', then re-run the budget to recompute those blocks"


def read_rows(array, start: int, stop: int, *, store, name: str) -> np.ndarray:
    """``array[start:stop]``, or :class:`StoreDamagedError` naming the chunk that failed."""
    try:
        return array[start:stop]
    except Exception as error:  # noqa: BLE001 - codecs raise many types; all mean a damaged chunk
        raise StoreDamagedError(
            f"store {os.fspath(store)!r}: variable {name!r} at simulations [{start}, {stop}) cannot be read "
            f"({type(error).__name__}: {error}); {_repair_hint(store)}"
        ) from error


def row_checksums(
    start: int,
    *,
    theta: np.ndarray,
    features: np.ndarray,
    valid: np.ndarray,
    bold: np.ndarray | None = None,
    round: np.ndarray | None = None,
) -> np.ndarray:
    """uint64 checksum of each row ``start + k``: 8 bytes of BLAKE2b over the global
    index and the row's stored bytes (float32 theta, features, bold; the valid byte; the
    int16 round of a sequential store)."""
    arrays = [
        np.ascontiguousarray(theta, dtype=np.float32),
        np.ascontiguousarray(features, dtype=np.float32),
        np.ascontiguousarray(valid, dtype=bool),
    ]
    if bold is not None:
        arrays.append(np.ascontiguousarray(bold, dtype=np.float32))
    if round is not None:
        arrays.append(np.ascontiguousarray(round, dtype=np.int16))
    out = np.empty(len(arrays[0]), dtype=np.uint64)
    for k in range(len(out)):
        digest = hashlib.blake2b(np.int64(start + k).tobytes(), digest_size=8)
        for array in arrays:
            digest.update(array[k].tobytes())
        out[k] = np.frombuffer(digest.digest(), dtype="<u8")[0]
    return out


def local_path(store: str | os.PathLike) -> Path:
    """The store's absolute path (``~`` expanded): how every module names a store."""
    return Path(os.fspath(store)).expanduser().absolute()


def store_state(store: str | os.PathLike) -> str:
    """``"missing"`` (path absent or an empty folder), ``"zarr"`` (a Zarr group folder).

    Raises
    ------
    ValueError
        The path is a file, or a non-empty folder that is not a Zarr store (nothing is
        overwritten).
    """
    path = local_path(store)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        raise ValueError(f"store path {str(path)!r} is a file, not a Zarr store folder; choose another path")
    if (path / "zarr.json").is_file():
        return "zarr"
    if any(path.iterdir()):
        raise ValueError(
            f"store path {str(path)!r} is a non-empty folder that is not a Zarr v3 store; refusing to write into it"
        )
    return "missing"


def allocate(
    store: str | os.PathLike,
    *,
    n_sims: int,
    chunk_size: int,
    param_names: list[str],
    feature_names: list[str],
    connectome: Connectome | None,
    attrs: Mapping[str, Any],
    time_bold_ms: np.ndarray | None = None,
    rounds: bool = False,
    feature_signals: list[str] | None = None,
) -> None:
    """Create the store with every variable allocated and no simulation written.

    Writes metadata, coordinates and the connectome only (``to_zarr(compute=False)``).
    ``connectome`` is None for an external simulator's store (no ``node`` dim, no
    connectome variables; see :func:`is_external`). ``rounds``: a sequential store, with
    the ``round`` variable (see :mod:`vbi_dask.sequential`). ``feature_signals``: each
    feature column's signal (``"bold"``, ``"eeg"``, ...), the coordinate
    ``feature_signal(feature)``: ``ds.sel(feature=ds.feature_signal == "eeg")``.
    """
    import dask.array as da

    chunks = chunk_size  # also when n_sims < chunk_size: an extended store keeps its blocks

    def lazy(shape, dtype, fill):
        return da.full(shape, fill, dtype=dtype, chunks=(chunks,) + shape[1:])

    data = {
        "theta": (("sim", "param"), lazy((n_sims, len(param_names)), np.float32, np.nan)),
        "features": (("sim", "feature"), lazy((n_sims, len(feature_names)), np.float32, np.nan)),
        "valid": (("sim",), lazy((n_sims,), bool, False)),
        "checksum": (("sim",), lazy((n_sims,), np.uint64, 0)),
        "done": (("sim",), lazy((n_sims,), bool, False)),
    }
    if rounds:
        data["round"] = (("sim",), lazy((n_sims,), np.int16, -1))
    coords = {
        "sim": np.arange(n_sims, dtype=np.int64),
        "param": np.array(param_names, dtype=object),
        "feature": np.array(feature_names, dtype=object),
    }
    if feature_signals is not None:
        coords["feature_signal"] = ("feature", np.array(feature_signals, dtype=object))
    if connectome is not None:
        n, labels = connectome.n_nodes, np.array(connectome.labels, dtype=object)
        data["connectome_weights"] = (("node", "node_from"), connectome.weights)
        coords.update(node=labels, node_from=labels)
    if time_bold_ms is not None:
        data["bold"] = (("sim", "time_bold", "node"), lazy((n_sims, len(time_bold_ms), n), np.float32, np.nan))
        coords["time_bold"] = ("time_bold", np.asarray(time_bold_ms, dtype=np.float64), {"units": "ms"})
    if connectome is not None and connectome.tract_lengths_mm is not None:
        data["connectome_tract_lengths_mm"] = (("node", "node_from"), connectome.tract_lengths_mm)
    if connectome is not None and connectome.centres_mm is not None:
        data["connectome_centres_mm"] = (("node", "xyz"), connectome.centres_mm)
    if connectome is not None and connectome.cortical is not None:
        data["connectome_cortical"] = (("node",), connectome.cortical)
    ds = xr.Dataset(data, coords=coords, attrs=dict(attrs))
    ds["done"].attrs["description"] = "block written; set after the data"
    ds["valid"].attrs["description"] = "finite features and theta inside the prior's support"
    ds["checksum"].attrs["description"] = "BLAKE2b (8 bytes) of the row's index and stored bytes; see verify"
    encoding = {name: {"chunks": (chunks,) + ds[name].shape[1:]} for name in SIM_VARIABLES if name in ds}
    ds.to_zarr(
        os.fspath(local_path(store)), compute=False, zarr_format=3, consolidated=False, mode="w", encoding=encoding
    )


def attributes(
    *,
    simulation: Mapping[str, Any] | None,
    prior: Mapping[str, Any],
    featureset: Mapping[str, Any] | None,
    connectome: Connectome | None,
    seed: int,
    n_sims: int,
    chunk_size: int,
    keep_bold: bool,
    feature_signal: str,
    kernel_numerics: int | None,
) -> dict[str, Any]:
    """A store's root attributes (JSON-able; the JSON ones as strings), built here only.

    ``simulation``, ``prior`` and ``featureset`` are their ``to_dict()``;
    ``feature_signal`` says what the features were computed from ("bold", "sampled",
    the keys of several signals comma-separated, e.g. "bold,eeg", "external" or
    "synthetic"); ``kernel_numerics`` the kernels' rounding version (None
    without vbi-dask kernels).
    """
    from . import __version__

    return {
        "simulation": json.dumps(simulation),
        "prior": json.dumps(prior),
        "featureset": json.dumps(featureset),
        "connectome_hash": None if connectome is None else connectome.hash(),
        "connectome_name": None if connectome is None else connectome.name,
        "seed": int(seed),
        "n_sims": int(n_sims),
        "chunk_size": int(chunk_size),
        "keep_bold": bool(keep_bold),
        "feature_signal": feature_signal,
        "vbi_dask_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "kernel_numerics": kernel_numerics,
    }


def sequential_attributes(attrs: Mapping[str, Any], *, n_sims: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A budget's root attributes as those of a sequential store of ``n_sims`` rows with
    rounds drawn under ``settings`` (see :mod:`vbi_dask.sequential`)."""
    return {**attrs, "n_sims": int(n_sims), "sequential": json.dumps(dict(settings))}


@dataclass(frozen=True)
class StoreConfiguration:
    """What made a model budget's store, rebuilt from the store alone
    (:func:`configuration`): the simulation, prior, feature set, seed and sizes."""

    simulation: Any  # vbi_dask.Simulation
    prior: Any  # Prior or Grid
    featureset: Any  # FeatureSet
    seed: int
    n_sims: int
    chunk_size: int
    keep_bold: bool

    @property
    def layout(self):
        """The features' signals (:class:`~vbi_dask.layout.SignalLayout`)."""
        from .layout import signal_layout

        return signal_layout(self.simulation, self.featureset)


def configuration(store: str | os.PathLike) -> StoreConfiguration:
    """The configuration a model budget's store was made by (no budget is built).

    Raises
    ------
    ValueError
        Not a vbi-dask store, or a store of an external simulator or of synthetic data
        (no simulation to rebuild: the message says which).
    """
    from .features import FeatureSet
    from .prior import prior_from_dict
    from .simulation import Simulation

    ds = open_store(store)
    attrs = read_attrs(store)
    kind = attrs.get("feature_signal")
    if is_external(attrs) or kind == "synthetic":
        what = (
            f"the external simulator {attrs['simulation'].get('function')}" if is_external(attrs) else "synthetic data"
        )
        raise ValueError(f"store {os.fspath(store)!r} holds {what}: it has no vbi-dask simulation to rebuild")
    return StoreConfiguration(
        Simulation.from_dict(attrs["simulation"], connectome_from_store(ds)),
        prior_from_dict(attrs["prior"]),
        FeatureSet.from_dict(attrs["featureset"]),
        seed=int(attrs["seed"]),
        n_sims=int(attrs["n_sims"]),
        chunk_size=int(attrs["chunk_size"]),
        keep_bold=bool(attrs["keep_bold"]),
    )


def signal_layout(store: str | os.PathLike) -> dict[str, Any]:
    """What a store's features were computed from (see
    :meth:`vbi_dask.layout.SignalLayout.to_dict`): ``kind``, ``n_time``, ``dt_ms`` and
    ``n_nodes`` of its one default signal, or ``{"signals": {key: record}}`` when its
    feature entries name their signals; {} for an external simulator's or synthetic store
    (no signal)."""
    attrs = read_attrs(store)
    if is_external(attrs) or attrs.get("feature_signal") == "synthetic":
        return {}
    return configuration(store).layout.to_dict()


def open_arrays(store: str | os.PathLike, names: tuple[str, ...] = ("theta", "features", "done", "valid")) -> dict:
    """Read-only handles of ``names`` (Zarr arrays, by name) for repeated block reads."""
    group = _group(store)
    return {name: group[name] for name in names}


def read_block(
    store: str | os.PathLike, start: int, stop: int, names: tuple[str, ...] = ("theta", "features", "valid", "done")
) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of ``names``; a damaged chunk raises :class:`StoreDamagedError`."""
    group = _group(store)
    return {name: np.asarray(read_rows(group[name], start, stop, store=store, name=name)) for name in names}


def _group(store: str | os.PathLike, mode: str = "r"):
    import zarr

    return zarr.open_group(os.fspath(local_path(store)), mode=mode, zarr_format=3)


def is_external(attrs: Mapping[str, Any]) -> bool:
    """Whether a store's attributes (raw or decoded) describe an external simulator's
    budget (:mod:`vbi_dask.external`): no model, no connectome."""
    simulation = attrs.get("simulation")
    if isinstance(simulation, str):
        simulation = json.loads(simulation)
    return isinstance(simulation, Mapping) and simulation.get("kind") == "external"


def read_attrs(store: str | os.PathLike) -> dict[str, Any]:
    """Root attributes with the JSON ones decoded."""
    attrs = dict(_group(store).attrs)
    for key in JSON_ATTRS:
        if isinstance(attrs.get(key), str):
            attrs[key] = json.loads(attrs[key])
    return attrs


def read_done(store: str | os.PathLike) -> np.ndarray:
    """The ``done`` flags as a bool array (n_sims,).

    Raises
    ------
    StoreDamagedError
        A chunk of ``done`` cannot be read (the message names its simulations).
    """
    return read_flags(store, "done")


def read_flags(store: str | os.PathLike, name: str, group=None) -> np.ndarray:
    """A bool ``sim`` variable (``done`` or ``valid``); a damaged chunk raises
    :class:`StoreDamagedError` naming its simulations (found chunk by chunk)."""
    array = (group if group is not None else _group(store))[name]
    try:
        return np.asarray(array[:], dtype=bool)
    except Exception:  # noqa: BLE001 - find the chunk and name it
        size = array.chunks[0]
        return np.concatenate(
            [
                np.asarray(read_rows(array, s, min(s + size, array.shape[0]), store=store, name=name), dtype=bool)
                for s in range(0, array.shape[0], size)
            ]
        )


def sim_sizes(store: str | os.PathLike) -> dict[str, int]:
    """Length along ``sim`` of each variable that has it (they differ only after an
    interrupted :func:`extend`)."""
    group = _group(store)
    out = {}
    for name in SIM_VARIABLES + ("sim",):
        if name in group:
            out[name] = int(group[name].shape[0])
    return out


def _diff(old: Any, new: Any, prefix: str, out: list[str]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}.{key}", out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old != new:
        items: list[str] = []
        for k, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{prefix}[{k}]", items)
        out.extend(items[:5])
        if len(items) > 5:
            out.append(f"{prefix}: ... and {len(items) - 5} more differing element(s)")
    elif old != new:
        show = lambda v: json.dumps(v) if not isinstance(v, str) else repr(v)  # noqa: E731
        out.append(f"{prefix}: store {show(old)}, budget {show(new)}")


def config_view(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that fix every simulation's content, decoded; the connectome's
    name (not part of its hash) is left out."""
    view = {}
    for key in CONFIG_ATTRS:
        value = attrs.get(key, "<absent>")
        view[key] = json.loads(value) if key in JSON_ATTRS and isinstance(value, str) and key in attrs else value
    view = json.loads(json.dumps(view))
    connectome = view["simulation"].get("connectome") if isinstance(view["simulation"], dict) else None
    if isinstance(connectome, dict):
        connectome.pop("name", None)
    return view


def check_compatible(store: str | os.PathLike, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``store`` was made by the same configuration as ``attrs``.

    Returns the store's decoded attributes.

    Raises
    ------
    StoreMismatchError
        Listing every differing field (``simulation.duration_ms: store 2000.0, budget
        1000.0``), or the store's schema version is not :data:`SCHEMA_VERSION`.
    """
    stored = read_attrs(store)
    _check_schema_attrs(store, stored)
    differences: list[str] = []
    old, new = config_view(stored), config_view(attrs)
    for key in CONFIG_ATTRS:
        _diff(old.get(key, "<absent>"), new[key], key, differences)
    if differences:
        hint = "use a new store path, or the store's own configuration (Budget.from_store)"
        if old.get("kernel_numerics") != new["kernel_numerics"]:
            hint = (
                f"the store's simulations were computed by kernels that round differently (vbi-dask "
                f"{stored.get('vbi_dask_version')}); finish it with that version, or use a new store path"
            )
        raise StoreMismatchError(
            f"store {os.fspath(store)!r} was made by another budget configuration; differing fields:\n  "
            + "\n  ".join(differences)
            + "\n"
            + hint
        )
    return stored


def _check_schema_attrs(store, attrs: Mapping[str, Any]) -> None:
    version = attrs.get("schema_version")
    if version is None:
        raise ValueError(f"{os.fspath(store)!r} is not a vbi-dask budget store: no 'schema_version' attribute")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"store {os.fspath(store)!r} has schema version {version}; this vbi-dask reads version {SCHEMA_VERSION}"
        )
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"store {os.fspath(store)!r} lacks attribute(s) {missing}")


def write_block(
    store: str | os.PathLike,
    start: int,
    stop: int,
    *,
    theta: np.ndarray,
    features: np.ndarray,
    valid: np.ndarray,
    bold: np.ndarray | None = None,
    round: np.ndarray | None = None,
) -> None:
    """Write simulations ``start:stop`` (one chunk) and then mark them done.

    Raises
    ------
    ValueError
        The region is not one whole chunk (or the last, shorter one).
    """
    group = _group(store, "r+")
    done = group["done"]
    chunk, n_sims = done.chunks[0], done.shape[0]
    if start % chunk or not (stop - start == chunk or stop == n_sims) or not 0 <= start < stop <= n_sims:
        raise ValueError(f"region [{start}, {stop}) is not one chunk of {chunk} simulations of {n_sims}")
    rows = {
        "theta": np.asarray(theta, dtype=np.float32),
        "features": np.asarray(features, dtype=np.float32),
        "valid": np.asarray(valid, dtype=bool),
    }
    if bold is not None:
        rows["bold"] = np.asarray(bold, dtype=np.float32)
    if round is not None:
        if "round" not in group:
            raise ValueError(f"store {os.fspath(store)!r} is not a sequential store (no 'round' variable)")
        rows["round"] = np.asarray(round, dtype=np.int16)
    for name, values in rows.items():
        group[name][start:stop] = values
    if "checksum" in group:  # stores from before checksums have none
        group["checksum"][start:stop] = row_checksums(start, **rows)
    done[start:stop] = True  # last: the block counts only once its data is in


def write_round(store: str | os.PathLike, index: int, payload: bytes, attrs: Mapping[str, Any]) -> None:
    """Record round ``index``'s proposal in a sequential store: ``payload`` (a saved
    posterior) as the uint8 array ``rounds/<index>`` with JSON-able ``attrs``, marked
    ``complete`` last (an interrupted write reads as absent)."""
    group = _group(store, "r+").require_group("rounds")
    data = np.frombuffer(payload, dtype=np.uint8)
    array = group.create_array(
        str(int(index)), shape=data.shape, dtype=np.uint8, chunks=(max(1, len(data)),), overwrite=True
    )
    array[:] = data
    array.attrs.update({**json.loads(json.dumps(dict(attrs))), "complete": False})
    array.attrs["complete"] = True


def read_round(store: str | os.PathLike, index: int) -> tuple[bytes, dict[str, Any]] | None:
    """Round ``index``'s proposal ``(payload, attrs)`` (see :func:`write_round`), or None
    when it was never completely written."""
    group = _group(store)
    name = f"rounds/{int(index)}"
    try:
        array = group[name]
    except KeyError:
        return None
    attrs = dict(array.attrs)
    if not attrs.pop("complete", False):
        return None
    return np.asarray(read_rows(array, 0, array.shape[0], store=store, name=name), dtype=np.uint8).tobytes(), attrs


def block_done(store: str | os.PathLike, start: int, stop: int) -> bool:
    return bool(np.all(read_rows(_group(store)["done"], start, stop, store=store, name="done")))


def extend(store: str | os.PathLike, n_sims: int) -> None:
    """Grow every ``sim`` variable to ``n_sims`` (new simulations not done), then the
    ``sim`` coordinate, then the ``n_sims`` attribute. Idempotent: re-running it after an
    interruption completes it; nothing written is touched."""
    group = _group(store, "r+")
    for name in SIM_VARIABLES:
        if name in group and group[name].shape[0] != n_sims:
            array = group[name]
            array.resize((n_sims,) + array.shape[1:])
    sim = group["sim"]
    if sim.shape[0] != n_sims:
        sim.resize((n_sims,))
    sim[:] = np.arange(n_sims, dtype=np.int64)
    group.attrs["n_sims"] = int(n_sims)


def open_store(store: str | os.PathLike) -> xr.Dataset:
    """Open a budget store lazily (dask-backed), after validating its schema.

    Raises
    ------
    FileNotFoundError
        No store at ``store``.
    ValueError
        The path is a file or not a vbi-dask store, a variable or attribute is missing or
        has other dims, or the schema version differs from :data:`SCHEMA_VERSION`.
    """
    path = local_path(store)
    if not path.exists():
        raise FileNotFoundError(f"no store at {str(path)!r}")
    if store_state(path) != "zarr":
        raise ValueError(f"{str(path)!r} is an empty folder, not a vbi-dask store")
    attrs = dict(_group(path).attrs)
    _check_schema_attrs(path, attrs)
    ds = xr.open_zarr(os.fspath(path), consolidated=False, zarr_format=3)
    for name, dims in REQUIRED_VARIABLES.items():
        if name == "connectome_weights" and is_external(attrs):
            continue  # an external simulator's store has no connectome
        if name not in ds.variables:
            raise ValueError(f"store {str(path)!r} lacks variable {name!r} {dims}")
        if ds[name].dims != dims:
            raise ValueError(f"store {str(path)!r}: variable {name!r} has dims {ds[name].dims}, expected {dims}")
    for name in ("param", "feature"):
        if name not in ds.coords:
            raise ValueError(f"store {str(path)!r} lacks the {name!r} coordinate")
    if ds.attrs.get("keep_bold") and "bold" not in ds:
        raise ValueError(f"store {str(path)!r} was made with keep_bold but lacks variable 'bold'")
    return ds


def connectome_from_store(ds: xr.Dataset) -> Connectome:
    """The budget's connectome, rebuilt from a store (checked against its hash)."""

    def values(name):
        return ds[name].values if name in ds else None

    connectome = Connectome(
        weights=values("connectome_weights"),
        tract_lengths_mm=values("connectome_tract_lengths_mm"),
        labels=tuple(str(label) for label in ds["node"].values),
        centres_mm=values("connectome_centres_mm"),
        cortical=values("connectome_cortical"),
        name=str(ds.attrs.get("connectome_name", "connectome")),
    )
    if connectome.hash() != ds.attrs["connectome_hash"]:
        raise ValueError("the connectome stored in the variables does not match the store's connectome_hash")
    return connectome


# ---------------------------------------------------------------------- integrity
@dataclass(frozen=True)
class BlockProblem:
    """A done block that does not read back as written."""

    block: int
    start: int
    stop: int
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found. ``ok``: every done block reads back as written."""

    store: str
    n_sims: int
    n_blocks: int
    checked_blocks: int
    checksums: bool
    problems: tuple[BlockProblem, ...] = ()
    repaired: bool = False
    done_after: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_blocks(self) -> list[int]:
        return sorted({p.block for p in self.problems})

    def __str__(self) -> str:
        kind = (
            "checksums, readability and finite features"
            if self.checksums
            else "readability and finite features (the store has no checksums: written before they existed)"
        )
        lines = [f"store {self.store}: {self.checked_blocks} done block(s) of {self.n_blocks} checked ({kind})"]
        if self.ok:
            lines.append("no damage found")
            return "\n".join(lines)
        lines.append(f"{len(self.damaged_blocks)} damaged block(s):")
        lines += [f"  block {p.block} (simulations [{p.start}, {p.stop})): {p.problem}" for p in self.problems]
        if self.repaired:
            lines.append(
                f"marked not done ({self.done_after} of {self.n_sims} simulations done now); re-run the "
                "budget (same configuration and store) to recompute exactly these blocks"
            )
        else:
            lines.append(f"repair: vbi-dask verify {self.store} --repair, then re-run the budget")
        return "\n".join(lines)


def _fill_rows(values: np.ndarray, fill) -> np.ndarray:
    """Rows entirely equal to the fill value (how a missing chunk reads)."""
    flat, fill = values.reshape(len(values), -1), np.asarray(fill).item()
    if isinstance(fill, float) and np.isnan(fill):
        return np.isnan(flat).all(axis=1)
    return (flat == fill).all(axis=1)


def _check_block(group, store, start: int, stop: int, done: np.ndarray) -> str | None:
    """The problem of block ``[start, stop)`` (``done``: its flags, some true), or None
    when it reads back as written."""
    rows, failed = {}, []
    for name in CHECKED_VARIABLES + ("checksum",):
        if name not in group:
            continue
        try:
            rows[name] = np.asarray(read_rows(group[name], start, stop, store=store, name=name))
        except StoreDamagedError as error:
            failed.append(f"{name!r} cannot be read ({error.__cause__.__class__.__name__}: {error.__cause__})")
    if failed:
        return "; ".join(failed)
    problems = []
    if not done.all():
        problems.append(f"only {int(done.sum())} of its {stop - start} rows are marked done")
    valid = rows["valid"].astype(bool)
    bad = np.flatnonzero(done & valid & ~np.isfinite(rows["features"]).all(axis=1))
    if bad.size:
        problems.append(
            f"non-finite features in done and valid rows {(start + bad[:8]).tolist()}"
            + (" ..." if bad.size > 8 else "")
        )
    if "checksum" in rows:
        expected = row_checksums(start, **{k: rows[k] for k in CHECKED_VARIABLES if k in rows})
        wrong = np.flatnonzero(done & (expected != rows["checksum"]))
        if wrong.size:
            missing = [
                name
                for name in CHECKED_VARIABLES + ("checksum",)
                if name in rows and _fill_rows(rows[name], group[name].fill_value)[wrong].all()
            ]
            problems.append(
                f"{wrong.size} row(s) do not match their checksums"
                + (
                    f" ({', '.join(map(repr, missing))} read as the fill value: chunk missing)"
                    if missing
                    else " (altered data)"
                )
            )
    return "; ".join(problems) or None


def verify(store: str | os.PathLike, *, repair: bool = False, lease_s: float | None = None) -> VerifyReport:
    """Check that every done block of ``store`` reads back as written.

    Reads each done block's ``theta``, ``features``, ``valid`` (and ``bold``), recomputes
    the row checksums and compares them with the stored ones; also flags unreadable
    chunks and non-finite features in done and valid rows.

    Parameters
    ----------
    repair : mark the damaged blocks not done (holding the store's claim, so never beside
        a running driver); the next run of the budget recomputes exactly those blocks,
        bit-identical to what was lost.

    Raises
    ------
    FileNotFoundError, ValueError
        No vbi-dask store at ``store`` (see :func:`open_store`).
    StoreLockedError
        With ``repair``, another driver is writing the store.
    """
    path = local_path(store)
    open_store(path)  # validates
    group = _group(path)
    n_sims, size = int(group["done"].shape[0]), int(group["done"].chunks[0])
    blocks = [(s, min(s + size, n_sims)) for s in range(0, n_sims, size)]
    problems, checked = [], 0
    for index, (start, stop) in enumerate(blocks):
        try:
            done = np.asarray(read_rows(group["done"], start, stop, store=path, name="done"), dtype=bool)
        except StoreDamagedError as error:
            cause = error.__cause__
            problem = f"'done' cannot be read ({type(cause).__name__}: {cause})"
        else:
            if not done.any():
                continue
            problem = _check_block(group, path, start, stop, done)
        checked += 1
        if problem is not None:
            problems.append(BlockProblem(index, start, stop, problem))
    report = VerifyReport(str(path), n_sims, len(blocks), checked, "checksum" in group, tuple(problems))
    if repair and problems:
        with StoreLock(path, purpose="vbi-dask verify --repair", lease_s=lease_s):
            writable = _group(path, "r+")
            for problem in problems:  # a whole chunk: written without reading the damaged one
                writable["done"][problem.start : problem.stop] = False
        report = VerifyReport(
            str(path),
            n_sims,
            len(blocks),
            checked,
            report.checksums,
            report.problems,
            repaired=True,
            done_after=int(read_done(path).sum()),
        )
    return report


# ---------------------------------------------------------------------- status
def _number(value: Any) -> str:
    """A prior argument: ``0.5``, or ``lo..hi`` for per-node values that differ."""
    values = np.asarray(value, dtype=np.float64).ravel()
    lo, hi = f"{values.min():g}", f"{values.max():g}"
    return lo if lo == hi else f"{lo}..{hi}"


def _prior_lines(prior: Mapping[str, Any]) -> list[str]:
    """One line per factor of a stored prior (``Prior.to_dict`` or ``Grid.to_dict``)."""
    if prior.get("kind") == "grid":
        return [
            f"{name}: grid of {len(values)} value(s) in [{_number(min(values))}, {_number(max(values))}]"
            for name, values in prior.get("axes", {}).items()
        ]
    lines = []
    for factor in prior.get("params", []):
        nodes = factor.get("nodes")
        if nodes is None:
            where = ""
        else:
            where = f" at node(s) {', '.join(map(str, nodes))}" if len(nodes) <= 6 else f" at {len(nodes)} nodes"
        args = ", ".join(f"{key}={_number(value)}" for key, value in factor.get("args", {}).items())
        lines.append(f"{factor['name']}{where}: {factor.get('dist', 'Uniform')}({args})")
    return lines


@dataclass(frozen=True)
class StoreStatus:
    """A budget store's configuration and progress (:func:`status`; ``vbi-dask status``).

    A store records which blocks are done, not which failed: a block that failed (or was
    never reached) is not done. ``invalid``: done rows whose ``valid`` flag is false (a
    diverged simulation, or theta outside the prior's support).
    """

    store: str
    schema_version: int
    vbi_dask_version: str
    kernel_numerics: int | None
    simulation: Mapping[str, Any]
    prior: Mapping[str, Any]
    param_names: tuple[str, ...]
    n_features: int
    n_sims: int
    chunk_size: int
    seed: int
    n_blocks: int
    blocks_done: int
    done: int
    invalid: int
    claim: Claim | None
    sequential: Mapping[str, Any] | None = None  # a sequential store's settings
    rounds: tuple[tuple[int, int, int, float | None, bool], ...] = ()  # (round, done, rows, prior mass, proposal)

    @property
    def not_done(self) -> int:
        return self.n_sims - self.done

    @property
    def complete(self) -> bool:
        return self.done == self.n_sims

    def next_step(self) -> str:
        """What to do next, in one line."""
        from . import __version__
        from .kernels.edges import NUMERICS_VERSION

        if self.claim is not None and self.claim.stale is None:
            return (
                f"a driver is writing this store ({self.claim.holder.get('host')}, pid "
                f"{self.claim.holder.get('pid')}); run 'vbi-dask status {self.store}' again to follow it"
            )
        if self.sequential is not None:
            return (
                f"resume (or continue with more --rounds): 'vbi-dask sequential CONFIG --store {self.store} "
                f"--observed FILE --rounds R --per-round {self.sequential['per_round']} --method "
                f"{self.sequential['method']}' with the observation and settings that made it"
            )
        if self.complete:
            return (
                f"complete: 'vbi-dask verify {self.store}' checks that every block reads back as written; "
                f"'vbi-dask train {self.store}' trains on its {self.done - self.invalid} valid simulations"
            )
        if self.kernel_numerics is not None and self.kernel_numerics != NUMERICS_VERSION:
            return (
                f"its kernels rounded differently from this vbi-dask's ({__version__}, kernel numerics "
                f"{NUMERICS_VERSION}): finish it with vbi-dask {self.vbi_dask_version}, or use a new store"
            )
        return (
            f"resume with 'vbi-dask simulate CONFIG --store {self.store}' (CONFIG: the configuration that made "
            f"it): only the {self.n_blocks - self.blocks_done} block(s) not done run"
        )

    def __str__(self) -> str:
        sim = self.simulation
        connectome = sim.get("connectome") or {}
        numerics = "" if self.kernel_numerics is None else f", kernel numerics {self.kernel_numerics}"
        prior = _prior_lines(self.prior)
        names = self.param_names if len(self.param_names) <= 8 else (*self.param_names[:4], "...", self.param_names[-1])
        if is_external({"simulation": sim}):
            what = ("simulator", f"{sim.get('function')} (external, version {sim.get('version')!r})")
        else:
            what = (
                "model",
                f"{sim.get('model')} on {connectome.get('n_nodes')} nodes (connectome "
                f"{connectome.get('name')!r}), dt {_number(sim.get('dt_ms'))} ms, "
                f"{_number(sim.get('duration_ms'))} ms per simulation, {sim.get('integrator')} integrator",
            )
        rows = [
            ("store", self.store),
            ("schema", f"version {self.schema_version}, written by vbi-dask {self.vbi_dask_version}{numerics}"),
            what,
            ("parameters", f"{len(self.param_names)}: {', '.join(names)}"),
            *(("", line) for line in prior),
            ("features", str(self.n_features)),
            ("budget", f"{self.n_sims} simulations in blocks of {self.chunk_size}, seed {self.seed}"),
            ("blocks done", f"{self.blocks_done} / {self.n_blocks}"),
            (
                "simulations done",
                f"{self.done} / {self.n_sims} ({self.done - self.invalid} valid, {self.invalid} "
                "invalid: diverged or outside the prior)",
            ),
            (
                "not done",
                f"{self.not_done}" + (" (failed or not yet run: run the budget again)" if self.not_done else ""),
            ),
            ("claim", str(self.claim) if self.claim is not None else "none (no driver is writing it)"),
        ]
        if self.sequential is not None:
            seq = self.sequential
            rows.insert(
                -3,
                (
                    "sequential",
                    f"{seq['method']}, {seq['per_round']} simulations per round"
                    + (f", epsilon {seq['epsilon']:g}" if seq["method"] == "tsnpe" else ""),
                ),
            )
            for index, done, total, mass, proposal in self.rounds:
                drawn = (
                    "the prior"
                    if index == 0
                    else (
                        (
                            "its proposal"
                            + (f" (truncated prior: {mass:.3g} of the prior's mass)" if mass is not None else "")
                        )
                        if proposal
                        else "no proposal recorded yet"
                    )
                )
                rows.insert(-3, ("", f"round {index}: {done} / {total} done, drawn from {drawn}"))
        return "\n".join(f"{label:<17} {text}".rstrip() for label, text in rows) + f"\nnext: {self.next_step()}"


def status(store: str | os.PathLike) -> StoreStatus:
    """The configuration and progress of the budget store ``store``; reads only (the store
    and its claim file are left as they are).

    Raises
    ------
    FileNotFoundError, ValueError
        No vbi-dask store at ``store``, or one of another schema version.
    StoreDamagedError
        The ``done`` or ``valid`` flags cannot be read.
    """
    path = local_path(store)
    if not path.exists():
        raise FileNotFoundError(f"no store at {str(path)!r}")
    if store_state(path) != "zarr":
        raise ValueError(f"{str(path)!r} is an empty folder, not a vbi-dask store")
    attrs = read_attrs(path)
    _check_schema_attrs(path, attrs)
    group = _group(path)
    done = read_flags(path, "done", group)
    n_sims, size = len(done), int(attrs["chunk_size"])
    valid = read_flags(path, "valid", group)[:n_sims]
    blocks = [(s, min(s + size, n_sims)) for s in range(0, n_sims, size)]
    sequential, rounds = attrs.get("sequential"), []
    if sequential is not None:
        per_round = int(sequential["per_round"])
        for index in range(-(-n_sims // per_round)):
            record = read_round(path, index) if index else None
            rows = slice(index * per_round, min((index + 1) * per_round, n_sims))
            rounds.append(
                (
                    index,
                    int(done[rows].sum()),
                    rows.stop - rows.start,
                    None if record is None else record[1].get("prior_mass"),
                    record is not None,
                )
            )
    return StoreStatus(
        store=str(path),
        schema_version=int(attrs["schema_version"]),
        vbi_dask_version=str(attrs["vbi_dask_version"]),
        kernel_numerics=attrs.get("kernel_numerics"),
        simulation=attrs["simulation"],
        prior=attrs["prior"],
        param_names=tuple(str(name) for name in group["param"][:]),
        n_features=int(group["feature"].shape[0]),
        n_sims=n_sims,
        chunk_size=size,
        seed=int(attrs["seed"]),
        n_blocks=len(blocks),
        blocks_done=sum(bool(done[s:e].all()) for s, e in blocks),
        done=int(done.sum()),
        invalid=int((done & ~valid).sum()),
        claim=read_claim(path),
        sequential=sequential,
        rounds=tuple(rounds),
    )
