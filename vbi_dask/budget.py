"""A model budget: prior draws -> simulations -> features -> a resumable Zarr store.

>>> budget = Budget(Simulation("mpr", duration_ms=60_000, monitors=(Bold(tr_ms=2000),)),
...                 Prior({"G": (0, 1)}, model="mpr", n_nodes=84), n_sims=10_000,
...                 features=["fc", "fcd", "psd"], chunk_size=64, seed=1)
>>> summary = budget.run("budget.zarr")                  # LocalCluster by default
>>> summary = budget.run("budget.zarr", scheduler="sync")  # resumes: only blocks not done

The budget is a lazy Dask graph with one task per block of ``chunk_size`` simulations
(:meth:`Budget.to_delayed`). A task draws its block's parameters, runs the kernel with
one thread, computes the features, writes its chunk of the store and marks it done,
and returns a small summary. Simulation ``k`` depends only on (configuration, seed, k),
so chunking, worker count and restarts do not change the store's content.

The running machinery (blocks, store lifecycle, graph, scheduler) is
:mod:`vbi_dask.runner`; budgets from YAML are :mod:`vbi_dask.configuration`.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from . import store as _store
from .features import FeatureSet
from .layout import SignalLayout, feature_signals, signal_layout
from .kernels.edges import NUMERICS_VERSION
from .prior import Grid, Prior
from .backend import gpu_annotations
from .runner import BudgetSummary, _BudgetBase
from .simulation import Simulation

__all__ = ["Budget", "BudgetSummary"]


@dataclass(frozen=True)
class Budget(_BudgetBase):
    """``n_sims`` simulations of ``simulation`` at parameters drawn from ``prior``.

    Parameters
    ----------
    simulation : Simulation
        Its BOLD monitor output feeds the features when present, else the first
        observable of its sampled monitor.
    prior : Prior or Grid
        For the simulation's model and number of nodes.
    n_sims : int
        Number of simulations (global indices 0 .. n_sims - 1).
    features : FeatureSet or list of feature entries
        Computed per simulation into ``features(sim, feature)``.
    chunk_size : int
        Simulations per block (one task, one Zarr chunk); default: the
        ``vbi_dask.chunk-size`` setting (64; see :mod:`vbi_dask._config`).
    seed : int
        Keys the prior draws, initial conditions and noise, with the simulation index.
    keep_bold : bool
        Also store the BOLD signal ``bold(sim, time_bold, node)``.
    backend : "cpu" (default), "cuda" or "auto"
        Kernel of each block, resolved on the worker that runs it ("auto": the GPU when
        the worker has one). With "cuda"/"auto" on a cluster whose workers advertise
        ``GPU`` resources, blocks are placed with ``resources={"GPU": 1}``. Not part of
        the store's identity: the backend does not change what a row means.

    Raises
    ------
    ValueError
        Non-positive ``n_sims`` or ``chunk_size``, a prior for another model or number
        of nodes, ``keep_bold`` without a Bold monitor, features that do not fit the
        signal (e.g. an FCD window longer than the series).
    """

    simulation: Simulation
    prior: Prior | Grid
    n_sims: int
    features: FeatureSet | Sequence[Any]
    chunk_size: int | None = None
    seed: int = 0
    keep_bold: bool = False
    backend: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.simulation, Simulation):
            raise TypeError(f"simulation must be a Simulation, got {type(self.simulation).__name__}")
        if not isinstance(self.prior, (Prior, Grid)):
            raise TypeError(f"prior must be a Prior or Grid, got {type(self.prior).__name__}")
        self._check_sizes()
        sim, prior = self.simulation, self.prior
        if prior.model.name != sim.model.name:
            raise ValueError(f"the prior is for model {prior.model.name!r}, the simulation runs {sim.model.name!r}")
        if prior.n_nodes != sim.connectome.n_nodes:
            raise ValueError(f"the prior is for {prior.n_nodes} nodes, the connectome has {sim.connectome.n_nodes}")
        if "stimulus_amplitude" in prior.param_names and sim.stimulus is None:
            raise ValueError("the prior draws 'stimulus_amplitude' but the simulation has no stimulus")
        if not isinstance(self.features, FeatureSet):
            object.__setattr__(self, "features", FeatureSet.from_dict(list(self.features)))
        if self.keep_bold and sim.bold_monitor is None:
            raise ValueError("keep_bold needs a Bold monitor in the simulation")
        object.__setattr__(self, "keep_bold", bool(self.keep_bold))
        if self.backend not in ("cpu", "cuda", "auto"):
            raise ValueError(f"backend must be 'cpu', 'cuda' or 'auto', got {self.backend!r}")
        _ = self.layout  # validates the features against the signal

    # ------------------------------------------------------------------ description
    @cached_property
    def layout(self) -> SignalLayout:
        return signal_layout(self.simulation, self.features)

    @property
    def param_names(self) -> list[str]:
        return self.prior.param_names

    @property
    def feature_names(self) -> list[str]:
        return list(self.layout.feature_names)

    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (JSON-able; built by :func:`vbi_dask.store.attributes`)."""
        return _store.attributes(
            simulation=self.simulation.to_dict(),
            prior=self.prior.to_dict(),
            featureset=self.features.to_dict(),
            connectome=self.simulation.connectome,
            seed=self.seed,
            n_sims=self.n_sims,
            chunk_size=self.chunk_size,
            keep_bold=self.keep_bold,
            feature_signal=self.layout.signal,
            kernel_numerics=NUMERICS_VERSION,
        )

    @classmethod
    def from_store(cls, store: str | os.PathLike) -> "Budget":
        """The budget a store was made by, rebuilt from the store alone.

        Raises
        ------
        ValueError
            The store was made by an external simulator (rebuild it with
            :meth:`vbi_dask.external.ExternalBudget.from_store`) or holds synthetic data.
        """
        attrs = _store.read_attrs(store)
        if _store.is_external(attrs):
            raise ValueError(
                f"store {os.fspath(store)!r} was made by the external simulator "
                f"{attrs['simulation'].get('function')}: rebuild it with ExternalBudget.from_store"
            )
        c = _store.configuration(store)
        return cls(
            c.simulation,
            c.prior,
            n_sims=c.n_sims,
            features=c.featureset,
            chunk_size=c.chunk_size,
            seed=c.seed,
            keep_bold=c.keep_bold,
        )

    # ------------------------------------------------------------------ computing
    def signals(
        self, theta: np.ndarray, *, first_sim: int, threads: int | None = 1
    ) -> tuple[dict[str, np.ndarray], dict]:
        """Simulate at parameters ``theta`` (n, param) with the noise and initial
        conditions of global indices ``first_sim + k`` (below ``n_sims``: the store's rows).

        Returns the features' signals by key (``"bold"``, ``"sampled"``, ``"eeg"``, ...;
        see :mod:`vbi_dask.layout`), each (sim, time, channel), and the kernel's outputs.
        """
        return feature_signals(
            self.simulation,
            self.features,
            self.prior,
            theta,
            seed=self.seed,
            first_sim=first_sim,
            threads=threads,
            backend=self.backend,
        )

    def compute_rows(self, theta: np.ndarray, first_sim: int) -> dict[str, np.ndarray]:
        """Simulations at ``theta`` (float32) for global indices ``first_sim ..``:
        ``theta``, ``features``, ``valid`` (and ``bold`` (sim, time_bold, node) with
        keep_bold). One kernel thread."""
        times = {}
        t0 = time.perf_counter()
        # the kernel gets exactly the stored (float32) values: every row is reproducible
        signals, out = self.signals(theta, first_sim=first_sim, threads=1)
        t1 = time.perf_counter()
        layout = self.layout
        for s in layout.signals:
            if signals[s.key].shape[1] != s.n_time:
                raise RuntimeError(
                    f"the kernel returned {signals[s.key].shape[1]} samples of signal {s.key!r}, the "
                    f"store expects {s.n_time}"
                )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # diverging simulations give NaN
            # float64: float32 statistics of small BOLD fluctuations lose too many digits
            features, _ = self.features.compute_signals(
                {s.name: signals[s.key].astype(np.float64) for s in layout.signals},
                {s.name: s.dt_ms for s in layout.signals},
            )
        features = np.asarray(features, dtype=np.float32)
        valid = np.isfinite(features).all(axis=1) & self.prior.in_bounds(theta)
        times["simulate_s"], times["features_s"] = t1 - t0, time.perf_counter() - t1
        result = {"theta": theta, "features": features, "valid": valid, "timings": times}
        if self.keep_bold:
            result["bold"] = np.moveaxis(out["bold"], -1, 0)
        return result

    def _allocation(self) -> dict[str, Any]:
        layout = self.layout
        return {
            "connectome": self.simulation.connectome,
            "time_bold_ms": layout.time_bold_ms if self.keep_bold else None,
            # each column's signal, when the feature entries name theirs
            "feature_signals": list(layout.column_signals) if layout.named else None,
        }

    def _placement(self, client) -> dict[str, Any]:
        return (gpu_annotations(client) or {}) if self.backend != "cpu" else {}
