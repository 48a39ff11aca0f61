"""FeatureSet: an ordered, serialisable list of features computed into one matrix.

A feature is registered once in :data:`FEATURES` with its function and a function that
lists its column names from the signal's size alone; the valid options of a feature
are read from its function's keyword-only parameters, never typed twice. A
:class:`FeatureSet` can be written in code, or in YAML as::

    - {name: fc, fisher_z: true}
    - {name: fcd, window_ms: 60000, step_ms: 2000}
    - {name: psd, bands: {alpha: [8, 13]}, prefix: "eeg."}
    - moments
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr
import yaml

from ._xp import Array, as_signal
from .fc import _fc_corr_names, _fc_distance_names, _fc_names, _homotopic_names, fc, fc_corr, fc_distance, homotopic_fc
from .fcd import _fcd_names, fcd
from .moments import _moments_names, moments
from .raw import _raw_names, raw
from .spectral import _psd_names, psd
from .sync import _kuramoto_names, kuramoto_order

__all__ = ["Feature", "FEATURES", "FeatureSpec", "FeatureSet"]

_RESERVED = ("name", "prefix", "signal")
CPU_WORKSPACE_BYTES = 8 * 2**20  # signal bytes of the simulations FeatureSet.compute takes at once


@dataclass(frozen=True)
class Feature:
    """A registered feature.

    ``compute(x, [dt_ms,] **options) -> (values (sim, k), names)``; ``names(n_nodes,
    n_time, dt_ms, **options) -> names`` gives the same k names without any data.
    """

    name: str
    compute: Callable[..., tuple[Array, list[str]]]
    names: Callable[..., list[str]]

    @property
    def _keywords(self) -> list[inspect.Parameter]:
        parameters = inspect.signature(self.compute).parameters.values()
        return [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @property
    def options(self) -> tuple[str, ...]:
        """Names of the keyword options the feature accepts."""
        return tuple(p.name for p in self._keywords)

    @property
    def required(self) -> tuple[str, ...]:
        """Options without a default."""
        return tuple(p.name for p in self._keywords if p.default is inspect.Parameter.empty)

    @property
    def uses_dt(self) -> bool:
        """Whether the feature needs the sampling period ``dt_ms``."""
        return "dt_ms" in inspect.signature(self.compute).parameters


FEATURES: Mapping[str, Feature] = MappingProxyType(
    {
        f.name: f
        for f in (
            Feature("fc", fc, _fc_names),
            Feature("fc_corr", fc_corr, _fc_corr_names),
            Feature("fc_distance", fc_distance, _fc_distance_names),
            Feature("homotopic_fc", homotopic_fc, _homotopic_names),
            Feature("fcd", fcd, _fcd_names),
            Feature("psd", psd, _psd_names),
            Feature("moments", moments, _moments_names),
            Feature("kuramoto_order", kuramoto_order, _kuramoto_names),
            Feature("raw", raw, _raw_names),
        )
    }
)


def _plain(value: Any) -> Any:
    """``value`` as plain Python data (lists, dicts, str, numbers) that YAML and JSON keep."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class FeatureSpec:
    """One entry of a :class:`FeatureSet`: a registered feature, its options, a prefix.

    Parameters
    ----------
    name : str
        A key of :data:`FEATURES`.
    options : mapping
        Keyword options of the feature function (stored as plain Python data).
    prefix : str
        Prepended to every column name, to use one feature twice (e.g. two FCD windows).
    signal : str, optional
        The monitored signal the feature is computed from, by its monitor's name
        (``"bold"``, ``"temporal_average"``, ``"raw"``, ``"eeg"``, ``"meg"``); its columns
        are then named ``"<signal>.<prefix><column>"`` (e.g. ``eeg.psd_power_alpha``).
        None: the simulation's default signal (BOLD when monitored, else the sampled
        monitor's first observable), columns without a signal name.

    Raises
    ------
    ValueError
        Unknown feature or option, or a required option missing; the message lists the
        valid ones.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    prefix: str = ""
    signal: str | None = None

    def __post_init__(self):
        if not isinstance(self.options, Mapping):
            raise ValueError(f"options of feature {self.name!r} must be a mapping; got {type(self.options).__name__}")
        if self.name not in FEATURES:
            raise ValueError(f"unknown feature {self.name!r}; valid features: {', '.join(FEATURES)}")
        feature = FEATURES[self.name]
        unknown = sorted(set(self.options) - set(feature.options))
        if unknown:
            valid = ", ".join(feature.options + ("prefix", "signal"))
            raise ValueError(f"unknown option(s) {unknown} for feature {self.name!r}; valid options: {valid}")
        missing = [o for o in feature.required if o not in self.options]
        if missing:
            raise ValueError(f"feature {self.name!r} needs option(s) {missing}")
        object.__setattr__(self, "options", {k: _plain(v) for k, v in self.options.items()})
        object.__setattr__(self, "prefix", str(self.prefix))
        if self.signal is not None and (not isinstance(self.signal, str) or not self.signal.isidentifier()):
            raise ValueError(
                f"the signal of feature {self.name!r} must be a monitor's name like 'bold' or 'eeg', "
                f"got {self.signal!r}"
            )

    @property
    def feature(self) -> Feature:
        return FEATURES[self.name]

    @classmethod
    def from_dict(cls, entry: str | Mapping[str, Any]) -> "FeatureSpec":
        """From ``"fc"`` or ``{"name": "fc", "fisher_z": True, "prefix": "...", "signal": "bold"}``."""
        if isinstance(entry, str):
            return cls(entry)
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"a feature entry must be a name or a mapping with a 'name' key; got {entry!r}")
        options = {k: v for k, v in entry.items() if k not in _RESERVED}
        return cls(entry["name"], options, entry.get("prefix", ""), entry.get("signal"))

    def to_dict(self) -> dict[str, Any]:
        entry = {"name": self.name, **self.options}
        if self.prefix:
            entry["prefix"] = self.prefix
        if self.signal is not None:
            entry["signal"] = self.signal
        return entry

    @property
    def column_prefix(self) -> str:
        """What precedes each of its column names: ``"<signal>.<prefix>"``."""
        return (f"{self.signal}." if self.signal is not None else "") + self.prefix

    def names(self, n_nodes: int, n_time: int, dt_ms: float | None) -> list[str]:
        names = self.feature.names(n_nodes, n_time, dt_ms, **self.options)
        return [self.column_prefix + n for n in names]

    def compute(self, data: Array, dt_ms: float | None) -> tuple[Array, list[str]]:
        if self.feature.uses_dt:
            values, names = self.feature.compute(data, dt_ms, **self.options)
        else:
            values, names = self.feature.compute(data, **self.options)
        return values, [self.column_prefix + n for n in names]


def _check_unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})
    if dupes:
        raise ValueError(f"duplicate feature columns {dupes[:5]}; give one of the entries a 'prefix'")
    return names


@dataclass(frozen=True)
class FeatureSet:
    """An ordered list of features whose columns concatenate into one (sim, feature) matrix.

    Parameters
    ----------
    specs : sequence of FeatureSpec, str or mapping
        Entries, in column order; strings and mappings are read by
        :meth:`FeatureSpec.from_dict`.

    Examples
    --------
    >>> fs = FeatureSet(["moments", {"name": "fc", "fisher_z": True}])
    >>> fs.names(n_nodes=3, n_time=100, dt_ms=1.0)[-3:]
    ['fc[0,1]', 'fc[0,2]', 'fc[1,2]']
    """

    specs: tuple[FeatureSpec, ...]

    def __post_init__(self):
        if isinstance(self.specs, (str, Mapping, FeatureSpec)):
            raise ValueError("specs must be a sequence of feature entries, not a single entry")
        specs = tuple(s if isinstance(s, FeatureSpec) else FeatureSpec.from_dict(s) for s in self.specs)
        if not specs:
            raise ValueError(f"a FeatureSet needs at least one feature; valid features: {', '.join(FEATURES)}")
        object.__setattr__(self, "specs", specs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any]) -> "FeatureSet":
        """From ``{"features": [...]}`` (as :meth:`to_dict` writes) or the bare list."""
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {"features"})
            if unknown or "features" not in data:
                raise ValueError(f"a FeatureSet mapping has one key, 'features'; got {sorted(data)}")
            data = data["features"]
        if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
            raise ValueError(f"features must be a list of entries; got {type(data).__name__}")
        return cls(tuple(data))

    @classmethod
    def from_yaml(cls, text_or_path: str | os.PathLike) -> "FeatureSet":
        """From YAML text, or from a file given as a path (``os.PathLike``, or a one-line
        string ending in ``.yaml``/``.yml``)."""
        text = text_or_path
        if isinstance(text_or_path, os.PathLike) or (
            "\n" not in text_or_path and text_or_path.strip().endswith((".yaml", ".yml"))
        ):
            with open(text_or_path, encoding="utf-8") as handle:
                text = handle.read()
        return cls.from_dict(yaml.safe_load(text))

    def to_dict(self) -> dict[str, Any]:
        return {"features": [spec.to_dict() for spec in self.specs]}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def names(self, n_nodes: int, n_time: int, dt_ms: float | None = None) -> list[str]:
        """Column names for signals of ``n_nodes`` nodes and ``n_time`` samples every ``dt_ms`` ms.

        Raises
        ------
        ValueError
            As :meth:`compute` would for such signals (e.g. an FCD window longer than
            the series), or when two entries produce the same column name.
        """
        return _check_unique([n for spec in self.specs for n in spec.names(n_nodes, n_time, dt_ms)])

    def compute(self, x: Any, dt_ms: float | None = None) -> tuple[Array, list[str]]:
        """All features of a batch of signals.

        Parameters
        ----------
        x : array (sim, time, node) or DataArray with dims sim, time, node
            Signals.
        dt_ms : float, optional
            Sampling period in ms (default: a DataArray's time coordinate).

        Returns
        -------
        values : array, shape (sim, feature), float32
        names : list of str, length feature
        """
        data, dt_ms, xp = as_signal(x, dt_ms)
        names = self.names(data.shape[2], data.shape[1], dt_ms)
        # On the CPU, a few simulations at a time: the features' temporaries then stay in
        # cache (a 100-simulation block of 2500 x 84 samples ran ~5x slower at once)
        per_sim = data.shape[1] * data.shape[2] * data.dtype.itemsize
        group = max(1, CPU_WORKSPACE_BYTES // per_sim) if xp is np else data.shape[0]
        rows = []
        for start in range(0, data.shape[0], group):
            part = data[start : start + group]
            rows.append(
                xp.concatenate(
                    [xp.asarray(spec.compute(part, dt_ms)[0], dtype=xp.float32) for spec in self.specs], axis=1
                )
            )
        return (rows[0] if len(rows) == 1 else xp.concatenate(rows, axis=0)), names

    @property
    def signals(self) -> tuple[str | None, ...]:
        """The signals the entries are computed from, in order of first use (None: the
        simulation's default signal)."""
        return tuple(dict.fromkeys(spec.signal for spec in self.specs))

    def names_of(self, shapes: Mapping[str | None, tuple[int, int, float | None]]) -> list[str]:
        """Column names when each signal ``s`` of :attr:`signals` has
        ``shapes[s] = (n_channels, n_time, dt_ms)``."""
        return [name for _, name in self.columns_of(shapes)]

    def columns_of(self, shapes: Mapping[str | None, tuple[int, int, float | None]]) -> list[tuple[str | None, str]]:
        """(signal, name) of each column, in order (see :meth:`names_of`)."""
        columns = [(spec.signal, n) for spec in self.specs for n in spec.names(*shapes[spec.signal])]
        _check_unique([name for _, name in columns])
        return columns

    def compute_signals(
        self, signals: Mapping[str | None, Any], dt_ms: Mapping[str | None, float | None] | None = None
    ) -> tuple[Array, list[str]]:
        """The features of several signals of the same simulations: each entry on
        ``signals[entry.signal]`` (sim, time, channel) sampled every ``dt_ms[entry.signal]``
        ms; the columns in the entries' order (as :meth:`names_of`).

        Raises
        ------
        ValueError
            A signal of :attr:`signals` missing, or signals of different simulation counts.
        """
        dt_ms = dict(dt_ms or {})
        missing = [s for s in self.signals if s not in signals]
        if missing:
            raise ValueError(f"signal(s) {missing} not given; the feature set computes from {list(self.signals)}")
        blocks, widths, shapes, xp = {}, {}, {}, np
        for signal in self.signals:
            specs = tuple(spec for spec in self.specs if spec.signal == signal)
            data, dt, xp = as_signal(signals[signal], dt_ms.get(signal))
            blocks[signal] = FeatureSet(specs).compute(data, dt)[0]
            shapes[signal] = (data.shape[2], data.shape[1], dt)
            widths.update({id(spec): len(spec.names(*shapes[signal])) for spec in specs})
        rows = {len(block) for block in blocks.values()}
        if len(rows) > 1:
            raise ValueError(
                f"the signals hold different numbers of simulations: { {s: len(b) for s, b in blocks.items()} }"
            )
        columns, offset = [], dict.fromkeys(blocks, 0)
        for spec in self.specs:
            start = offset[spec.signal]
            columns.append(blocks[spec.signal][:, start : start + widths[id(spec)]])
            offset[spec.signal] = start + widths[id(spec)]
        return xp.concatenate(columns, axis=1), self.names_of(shapes)

    def compute_dataarray(self, x: Any, dt_ms: float | None = None) -> xr.DataArray:
        """:meth:`compute` as a DataArray with dims (sim, feature).

        The ``feature`` coordinate holds the names (object dtype, which Zarr v3 stores
        without warnings), ``sim`` is copied from ``x`` when it has one, and
        ``attrs["featureset"]`` holds :meth:`to_dict` as JSON.
        """
        values, names = self.compute(x, dt_ms)
        coords: dict[str, Any] = {"feature": np.array(names, dtype=object)}
        if isinstance(x, xr.DataArray) and "sim" in x.coords:
            coords["sim"] = x.coords["sim"].values
        attrs = {"featureset": json.dumps(self.to_dict())}
        return xr.DataArray(values, dims=("sim", "feature"), coords=coords, attrs=attrs, name="features")
