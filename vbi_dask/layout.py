"""What a configuration's features are computed from: the feature signal of a simulation
(its kind, length and sampling period) and the signal itself at given parameters.

Shared by budgets (which compute rows), the store (which describes itself) and training
(which observes recordings and re-simulates rows) so that none of them rebuilds another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import FeatureSet
from .simulation import Simulation

__all__ = ["SignalLayout", "signal_layout", "feature_signal"]


@dataclass(frozen=True)
class SignalLayout:
    """The feature signal of a simulation: ``signal`` ("bold" or "sampled": the BOLD
    monitor when present, else the first observable of the sampled monitor), its number
    of samples ``n_time``, sampling period ``dt_ms``, the feature columns' names, and the
    BOLD sample times (ms) when the signal is BOLD."""

    signal: str
    n_time: int
    dt_ms: float
    n_nodes: int
    feature_names: tuple[str, ...]
    time_bold_ms: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        """``kind``, ``n_time``, ``dt_ms``, ``n_nodes`` (what observing a recording needs)."""
        return {"kind": self.signal, "n_time": int(self.n_time), "dt_ms": float(self.dt_ms),
                "n_nodes": int(self.n_nodes)}


def signal_layout(sim: Simulation, features: FeatureSet) -> SignalLayout:
    """Sizes of the feature signal, without running.

    Raises
    ------
    ValueError
        The simulation has no monitor, or the features do not fit the signal.
    """
    bold, sampled = sim.bold_monitor, sim.sampled_monitor
    time_bold = None
    if bold is not None:
        time_bold = sim.bold_times_ms()
        signal, n_time, dt_ms = "bold", time_bold.size, float(bold.tr_ms)
    elif sampled is not None:
        signal, n_time, dt_ms = "sampled", sim.sample_times_ms().size, float(sampled.period_ms)
    else:
        raise ValueError("the simulation has no monitor to compute features from; add Bold or TemporalAverage")
    n_nodes = sim.connectome.n_nodes
    names = tuple(features.names(n_nodes, n_time, dt_ms))
    return SignalLayout(signal, n_time, dt_ms, n_nodes, names, time_bold)


def feature_signal(sim: Simulation, prior, theta: np.ndarray, *, seed: int, first_sim: int,
                   threads: int | None = 1, backend: str = "cpu") -> tuple[np.ndarray, dict]:
    """Simulate at parameters ``theta`` (n, param; the prior's columns) with the noise and
    initial conditions of global indices ``first_sim + k``.

    Returns the feature signal (sim, time, node) (BOLD when monitored, else the first
    observable of the sampled monitor) and the kernel's outputs.
    """
    params = prior.to_params(np.asarray(theta, dtype=np.float64))
    out = sim.run_arrays(params, n_sims=len(theta), seed=seed, first_sim=int(first_sim), threads=threads,
                         backend=backend)
    raw = out["bold"] if sim.bold_monitor is not None else out["sampled"][:, 0]
    return np.moveaxis(raw, -1, 0), out
