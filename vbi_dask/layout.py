"""What a configuration's features are computed from: the signals of a simulation (each
one's kind, length, sampling period and channels) and the signals themselves at given
parameters.

A feature set's entries name their signal by its monitor (``bold``, ``temporal_average``,
``raw``, ``eeg``, ``meg``); an entry without one uses the simulation's default signal
(BOLD when monitored, else the first observable of the sampled monitor: ``sampled``).
Each signal is keyed by that name (``"bold"``, ``"sampled"``, ``"eeg"``, ...).

Shared by budgets (which compute rows), the store (which describes itself) and training
(which observes recordings and re-simulates rows) so that none of them rebuilds another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import FeatureSet
from .monitors import EEG, MEG, Bold, Raw, TemporalAverage
from .simulation import Simulation

__all__ = ["Signal", "SignalLayout", "SIGNAL_NAMES", "signal_layout", "feature_signals", "default_key"]

# a monitor's signal name in feature sets (and in YAML, the monitor's own key)
SIGNAL_NAMES = {Bold: "bold", Raw: "raw", TemporalAverage: "temporal_average", EEG: "eeg", MEG: "meg"}
DEFAULT = "sampled"  # the key of the default signal without BOLD: the sampled monitor's first observable


@dataclass(frozen=True)
class Signal:
    """One signal features are computed from: its key (``"bold"``, ``"sampled"``,
    ``"eeg"``, ...), the feature entries' name for it (None: the default signal), its
    number of samples, sampling period (ms), and channels (``n_channels`` along ``dim``:
    the connectome's nodes, or an EEG/MEG monitor's sensors)."""

    key: str
    name: str | None
    n_time: int
    dt_ms: float
    n_channels: int
    dim: str

    def to_dict(self) -> dict[str, Any]:
        """What observing a recording of it needs: ``kind`` (the key), ``n_time``,
        ``dt_ms``, ``n_nodes`` (its channels) and ``dim``."""
        return {
            "kind": self.key,
            "n_time": int(self.n_time),
            "dt_ms": float(self.dt_ms),
            "n_nodes": int(self.n_channels),
            "dim": self.dim,
        }


@dataclass(frozen=True)
class SignalLayout:
    """The signals of a feature set on a simulation (in order of first use), the feature
    columns' names, and the BOLD sample times (ms) when BOLD is monitored."""

    signals: tuple[Signal, ...]
    feature_names: tuple[str, ...]
    time_bold_ms: np.ndarray | None
    column_signals: tuple[str, ...] = ()  # each column's signal key (the store's ``feature_signal`` coordinate)

    @property
    def signal(self) -> str:
        """The signals' keys, comma-separated (the store's ``feature_signal``)."""
        return ",".join(dict.fromkeys(s.key for s in self.signals))

    @property
    def by_name(self) -> dict[str | None, Signal]:
        """The signals by the feature entries' name for them."""
        return {s.name: s for s in self.signals}

    @property
    def named(self) -> bool:
        """Whether an entry names its signal (else every entry uses the default one)."""
        return any(s.name is not None for s in self.signals)

    def to_dict(self) -> dict[str, Any]:
        """The default signal's record (``kind``, ``n_time``, ``dt_ms``, ``n_nodes``) when no
        entry names a signal (as stores have always described themselves), else
        ``{"signals": {key: record}}`` (an entry without a signal uses the default one's
        key: ``"bold"`` with BOLD, else ``"sampled"``)."""
        if not self.named:
            record = self.signals[0].to_dict()
            record.pop("dim")
            return record
        return {"signals": {s.key: s.to_dict() for s in self.signals}}


def default_key(keys) -> str:
    """The key of the default signal among a store's signal keys: BOLD when the
    simulation has it (its record is then there), else the sampled monitor's."""
    return "bold" if "bold" in keys else DEFAULT


def _signal(sim: Simulation, name: str | None) -> tuple[str, Any]:
    """The key and monitor of the signal an entry names (None: the default)."""
    bold, sampled = sim.bold_monitor, sim.sampled_monitor
    if name is None:
        if bold is not None:
            return "bold", bold
        if sampled is not None:
            return DEFAULT, sampled
        raise ValueError("the simulation has no monitor to compute features from; add Bold or TemporalAverage")
    monitors = {SIGNAL_NAMES[type(m)]: m for m in sim.monitors if type(m) in SIGNAL_NAMES}
    if name not in monitors:
        raise ValueError(
            f"a feature names signal {name!r}, which the simulation does not monitor; its signals: "
            f"{', '.join(monitors) or 'none'} (add the monitor, or remove 'signal' for the default)"
        )
    return name, monitors[name]


def signal_layout(sim: Simulation, features: FeatureSet) -> SignalLayout:
    """The signals of ``features`` on ``sim`` and the column names, without running.

    Raises
    ------
    ValueError
        A signal the simulation does not monitor (the message lists those it does), or
        features that do not fit their signal.
    """
    signals = []
    for name in features.signals:
        key, monitor = _signal(sim, name)
        if isinstance(monitor, Bold):
            n_time, dt_ms, n_channels, dim = (
                sim.bold_times_ms().size,
                float(monitor.tr_ms),
                sim.connectome.n_nodes,
                "node",
            )
        elif isinstance(monitor, (EEG, MEG)) and name is not None:
            n_time, dt_ms = sim.sample_times_ms().size, float(monitor.period_ms)
            n_channels, dim = sim.gain(monitor).shape[0], "sensor"
        else:
            n_time, dt_ms, n_channels, dim = (
                sim.sample_times_ms().size,
                float(monitor.period_ms),
                sim.connectome.n_nodes,
                "node",
            )
        signals.append(Signal(key, name, n_time, dt_ms, n_channels, dim))
    shapes = {s.name: (s.n_channels, s.n_time, s.dt_ms) for s in signals}
    keys = {s.name: s.key for s in signals}
    columns = features.columns_of(shapes)
    names = tuple(name for _, name in columns)
    column_keys = tuple(keys[signal] for signal, _ in columns)
    time_bold = sim.bold_times_ms() if sim.bold_monitor is not None else None
    return SignalLayout(tuple(signals), names, time_bold, column_keys)


def feature_signals(
    sim: Simulation,
    features: FeatureSet,
    prior,
    theta: np.ndarray,
    *,
    seed: int,
    first_sim: int,
    threads: int | None = 1,
    backend: str = "cpu",
) -> tuple[dict[str, np.ndarray], dict]:
    """Simulate at parameters ``theta`` (n, param; the prior's columns) with the noise and
    initial conditions of global indices ``first_sim + k``.

    Returns the signals of ``features`` by key, each (sim, time, channel) (an EEG or MEG
    signal float64, projected by its monitor's gain), and the kernel's outputs.
    """
    params = prior.to_params(np.asarray(theta, dtype=np.float64))
    out = sim.run_arrays(
        params, n_sims=len(theta), seed=seed, first_sim=int(first_sim), threads=threads, backend=backend
    )
    signals = {}
    for name in features.signals:
        key, monitor = _signal(sim, name)
        if isinstance(monitor, Bold):
            signals[key] = np.moveaxis(out["bold"], -1, 0)
        elif isinstance(monitor, (EEG, MEG)) and name is not None:
            signals[key] = sim.project(monitor, out["sampled"])
        else:
            signals[key] = np.moveaxis(out["sampled"][:, 0], -1, 0)
    return signals, out
