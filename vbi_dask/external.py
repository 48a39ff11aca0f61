"""Budgets of an external simulator: a user's vectorised Python function instead of a
:class:`~vbi_dask.simulation.Simulation`, with the same store and the same guarantees
(resume, extend, exactly-once blocks, one writer, checksums and ``verify``).

>>> simulator = ExternalSimulator("mypackage.toys:simulate", version="1", feature_names=["x0", "x1"])
>>> budget = ExternalBudget(simulator, Prior({"a": (0, 1), "b": (-1, 1)}), n_sims=10_000, chunk_size=256, seed=1)
>>> summary = budget.run("toy.zarr")                     # LocalCluster by default, or scheduler="sync"

The function
------------
``simulate(theta, seed, first_sim) -> features``: ``theta`` is a (n, param) float64 array
(the stored float32 draws, columns in the prior's order), ``seed`` the budget's seed and
``first_sim`` the global simulation index of ``theta[0]``; it returns (n, feature)
numbers. Row ``k`` must depend only on ``(theta[k], seed, first_sim + k)``: then chunking,
workers and restarts do not change the store. Draw each row's noise from its own
generator keyed by (seed, global index), never from a global or per-call state::

    def simulate(theta, seed, first_sim):
        out = np.empty((len(theta), 2))
        for k, row in enumerate(theta):
            rng = np.random.default_rng(np.random.SeedSequence([seed, first_sim + k]))
            out[k] = A @ row + 0.1 * rng.standard_normal(2)
        return out

Non-finite features mark a row invalid (``valid`` false), as a diverging simulation does.

Identity
--------
Dask workers import the function, and :meth:`ExternalBudget.from_store` rebuilds the
budget from the store alone, so the function must be importable by name: a module-level
function (``module:qualname``), not a lambda, a local function or one defined in
``__main__``. The store records that name, the user's ``version`` string and the feature
names (attribute ``simulation``), with the prior and seed; resuming or extending with
another name, version, features, prior, seed or chunk size is refused, listing the fields
(``simulation.version: store '1', budget '2'``). Changing what the function computes
without changing ``version`` is not detected: bump ``version`` whenever its output changes.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import store as _store
from .runner import _BudgetBase
from .prior import Prior, prior_from_dict

__all__ = ["ExternalSimulator", "ExternalBudget", "external_budget_from_config"]


def _name_of(function: Callable) -> str:
    """``module:qualname`` of an importable function, or ValueError saying why not."""
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    if not module or not qualname:
        raise ValueError(
            f"external simulator {function!r} has no module and qualified name: give a module-level "
            "function (or its 'module:qualname')"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ValueError(
            f"external simulator {module}.{qualname} is a lambda or a local function: Dask workers and "
            "ExternalBudget.from_store must import it; define it at module level in an importable module"
        )
    if module == "__main__":
        raise ValueError(
            f"external simulator {qualname} is defined in __main__ (a script or notebook): Dask "
            "workers and ExternalBudget.from_store must import it; move it to an importable module"
        )
    return f"{module}:{qualname}"


@lru_cache(maxsize=32)
def _import(name: str) -> Callable:
    """The function named ``module:qualname`` (ValueError with the reason if it cannot be imported)."""
    module_name, _, qualname = name.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"external simulator {name!r}: expected 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"external simulator {name!r} cannot be imported ({type(error).__name__}: {error})") from None
    if not callable(target):
        raise ValueError(f"external simulator {name!r} is a {type(target).__name__}, not a function")
    return target


@dataclass(frozen=True)
class ExternalSimulator:
    """A user's vectorised simulator ``simulate(theta, seed, first_sim) -> (n, feature)``.

    Parameters
    ----------
    function : callable or str
        A module-level function, or its ``"package.module:function"`` name (stored as
        the name; see the module docstring for the contract).
    version : str
        The user's version of what the function computes; part of the store's identity.
    feature_names : sequence of str, optional
        Names of the feature columns.
    n_features : int, optional
        Number of columns instead of names (named ``x[0]``, ``x[1]``, ...).

    Raises
    ------
    ValueError
        A lambda, local or ``__main__`` function, a name that cannot be imported (or
        imports another object), neither or both of ``feature_names`` and ``n_features``,
        repeated feature names.
    """

    function: Callable | str
    version: str
    feature_names: Sequence[str] | None = None
    n_features: int | None = None

    def __post_init__(self):
        name = self.function if isinstance(self.function, str) else _name_of(self.function)
        if not isinstance(self.function, str) and _import(name) is not self.function:
            raise ValueError(
                f"external simulator {name!r} imports as another object than the function given "
                "(decorated or redefined?): give the importable function itself"
            )
        _import(name)  # validates
        object.__setattr__(self, "function", name)
        if not isinstance(self.version, str) or not self.version:
            raise ValueError(f"version must be a non-empty string, got {self.version!r}")
        if (self.feature_names is None) == (self.n_features is None):
            raise ValueError("give the feature columns as feature_names=[...] or n_features=N (one of them)")
        if self.feature_names is None:
            count = self.n_features
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
                raise ValueError(f"n_features must be a positive integer, got {count!r}")
            names = tuple(f"x[{k}]" for k in range(int(count)))
        else:
            names = tuple(str(n) for n in self.feature_names)
            dupes = sorted({n for n in names if names.count(n) > 1})
            if not names or dupes:
                raise ValueError(f"feature_names must be a non-empty list of distinct names; repeated: {dupes}")
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "n_features", len(names))

    def __call__(self, theta: np.ndarray, *, seed: int, first_sim: int) -> np.ndarray:
        """The function's features at ``theta`` (n, param) for global indices
        ``first_sim ..``, as a float64 (n, feature) array (shape checked)."""
        theta = np.asarray(theta, dtype=np.float64)
        out = np.asarray(_import(self.function)(theta, int(seed), int(first_sim)), dtype=np.float64)
        expected = (len(theta), self.n_features)
        if out.shape != expected:
            raise ValueError(
                f"external simulator {self.function} returned shape {out.shape} for {len(theta)} rows; "
                f"expected (sim, feature) = {expected}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"kind": "external", "function", "version", "feature_names"}``."""
        return {
            "kind": "external",
            "function": self.function,
            "version": self.version,
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExternalSimulator":
        return cls(data["function"], version=data["version"], feature_names=data["feature_names"])


@dataclass(frozen=True)
class ExternalBudget(_BudgetBase):
    """``n_sims`` runs of an external simulator at parameters drawn from ``prior``.

    Parameters
    ----------
    simulator : ExternalSimulator
    prior : Prior
        Over free names, without a model (``Prior({"a": (0, 1), "b": (-1, 1)})``); row
        ``k``'s draw depends only on (seed, k), as in a model budget.
    n_sims, chunk_size, seed
        As in :class:`vbi_dask.Budget`.

    The store has the budget store's schema without connectome variables; ``valid`` is
    finite features and theta inside the prior's support. :meth:`run`, :meth:`prepare`,
    :meth:`to_delayed` are those of :class:`vbi_dask.Budget`.
    """

    simulator: ExternalSimulator
    prior: Prior
    n_sims: int
    chunk_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.simulator, ExternalSimulator):
            raise TypeError(f"simulator must be an ExternalSimulator, got {type(self.simulator).__name__}")
        if not isinstance(self.prior, Prior) or self.prior.model is not None:
            raise TypeError(
                "an external simulator's prior is a Prior over free names, without a model: "
                "Prior({'a': (0, 1), 'b': (-1, 1)})"
            )
        self._check_sizes()

    @property
    def param_names(self) -> list[str]:
        return self.prior.param_names

    @property
    def feature_names(self) -> list[str]:
        return list(self.simulator.feature_names)

    def attrs(self) -> dict[str, Any]:
        """The store's root attributes: the simulator's description as ``simulation``; no
        feature set, connectome or kernel numerics (null)."""
        return _store.attributes(
            simulation=self.simulator.to_dict(),
            prior=self.prior.to_dict(),
            featureset=None,
            connectome=None,
            seed=self.seed,
            n_sims=self.n_sims,
            chunk_size=self.chunk_size,
            keep_bold=False,
            feature_signal="external",
            kernel_numerics=None,
        )

    @classmethod
    def from_store(cls, store: str | os.PathLike) -> "ExternalBudget":
        """The budget a store was made by, rebuilt from the store alone (the function is
        imported by its recorded name)."""
        _store.open_store(store)  # validates the schema
        attrs = _store.read_attrs(store)
        if not _store.is_external(attrs):
            raise ValueError(
                f"store {os.fspath(store)!r} was made by a vbi-dask Simulation, not an external "
                "simulator: rebuild it with Budget.from_store"
            )
        return cls(
            ExternalSimulator.from_dict(attrs["simulation"]),
            prior_from_dict(attrs["prior"]),
            n_sims=int(attrs["n_sims"]),
            chunk_size=int(attrs["chunk_size"]),
            seed=int(attrs["seed"]),
        )

    def compute_rows(self, theta: np.ndarray, first_sim: int) -> dict[str, np.ndarray]:
        """Rows at ``theta`` (float32) for global indices ``first_sim ..``: ``theta``,
        ``features``, ``valid``, ``timings``."""
        t0 = time.perf_counter()
        # the function gets exactly the stored (float32) values: every row is reproducible
        features = self.simulator(theta, seed=self.seed, first_sim=first_sim)
        with np.errstate(over="ignore", invalid="ignore"):
            features = features.astype(np.float32)
        valid = np.isfinite(features).all(axis=1) & self.prior.in_bounds(theta)
        timings = {"simulate_s": time.perf_counter() - t0, "features_s": 0.0}
        return {"theta": theta, "features": features, "valid": valid, "timings": timings}

    def _allocation(self) -> dict[str, Any]:
        return {"connectome": None, "time_bold_ms": None}

    def _placement(self, client) -> dict[str, Any]:
        return {}


_CONFIG_KEYS = ("simulator", "prior", "n_sims", "chunk_size", "seed", "cluster")
_SIMULATOR_KEYS = ("function", "version", "features", "n_features")


def external_budget_from_config(config: Mapping[str, Any]) -> ExternalBudget:
    """An :class:`ExternalBudget` from a configuration mapping (e.g. read from YAML)::

        simulator: {function: "package.module:simulate", version: "1", features: [x0, x1]}  # or n_features: 2
        prior: {a: [0, 1], b: {dist: Normal, loc: 0, scale: 1}}
        n_sims: 10000
        chunk_size: 256
        seed: 1

    ``cluster`` (where it runs) is read by :func:`vbi_dask.cluster.cluster_from_config`.

    Raises
    ------
    ValueError
        Unknown or missing keys (the message lists the valid ones), and anything the
        objects reject.
    """
    config = dict(config)
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in an external simulator's configuration; valid keys: {', '.join(_CONFIG_KEYS)}"
        )
    missing = [k for k in ("simulator", "prior", "n_sims") if k not in config]
    if missing:
        raise ValueError(f"configuration lacks {', '.join(missing)}")
    spec = config["simulator"]
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"simulator must be a mapping like {{function: 'package.module:simulate', version: '1', "
            f"features: [x0, x1]}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - set(_SIMULATOR_KEYS))
    if unknown or "function" not in spec or "version" not in spec:
        raise ValueError(
            f"simulator: unknown key(s) {unknown} or missing function/version; valid keys: {', '.join(_SIMULATOR_KEYS)}"
        )
    simulator = ExternalSimulator(
        spec["function"],
        version=str(spec["version"]),
        feature_names=spec.get("features"),
        n_features=spec.get("n_features"),
    )
    if not isinstance(config["prior"], Mapping):
        raise ValueError(f"prior must be a mapping of parameter -> spec, got {config['prior']!r}")
    return ExternalBudget(
        simulator,
        Prior(dict(config["prior"])),
        n_sims=config["n_sims"],
        chunk_size=config.get("chunk_size"),
        seed=config.get("seed", 0),
    )
