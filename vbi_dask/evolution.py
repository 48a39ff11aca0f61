"""Evolutionary fitting: CMA-ES over a budget's parameters, every generation a block of
the store (resumable like any budget).

>>> loss = FeatureLoss(x_subject, budget.feature_names, fc=1.0, fcd=1.0)
>>> fit = evolve(budget, "cma.zarr", loss, generations=30, popsize=16, seed=0)
>>> fit.best_theta, fit.best_loss, fit.history          # and every evaluation in the store

The optimiser is ``cma`` (N. Hansen's CMA-ES), over the prior's box scaled to [0, 1]
per parameter (its bound handling), started at the box's centre with step ``sigma0``.
Its normal draws come from its own generator seeded by ``seed``, so the candidates of a
generation depend only on the settings and the losses of the generations before.

The store is a sequential store (see :mod:`vbi_dask.sequential`): generation ``g`` holds
rows ``g * popsize .. (g + 1) * popsize - 1``, its ``round`` is ``g``, and its
candidates are recorded in ``rounds/<g>`` before they are simulated. A run killed at any
point resumes: the optimiser is replayed from the stored losses (checking that it asks
the recorded candidates again), and only the blocks not done run. The attribute
``sequential`` holds the optimiser's settings and the loss (its observation included):
a run with others is refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from . import store as _store
from .runner import _BudgetBase

__all__ = ["FeatureLoss", "EvolutionSettings", "Evolution", "evolve"]


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the vector ``b``."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b))


@dataclass(frozen=True)
class FeatureLoss:
    """A distance between simulated features and an observation (lower is better).

    ``fc * (1 - r_FC) + fcd * mean |q_sim - q_obs|``: ``r_FC`` is the Pearson correlation
    of the simulated and observed FC (the columns ``fc[i,j]``, the upper triangle), ``q``
    the FCD's quantile columns (``fcd...``). A term whose weight is 0 is left out; its
    columns must exist otherwise.

    Parameters
    ----------
    observed : the observation's feature vector (the budget's columns).
    feature_names : the budget's feature names.
    fc, fcd : weights of the two terms.
    signal : the signal whose FC and FCD columns are used, for features named by signal
        (``"bold"``: the columns ``bold.fc[i,j]``, ``bold.fcd...``); None: the columns
        without a signal name.
    """

    observed: Sequence[float]
    feature_names: Sequence[str]
    fc: float = 1.0
    fcd: float = 0.0
    signal: str | None = None

    def __post_init__(self):
        observed = np.asarray(self.observed, dtype=np.float64)
        names = tuple(str(n) for n in self.feature_names)
        if observed.shape != (len(names),):
            raise ValueError(f"the observation has shape {observed.shape}; the budget has {len(names)} features")
        if self.fc < 0 or self.fcd < 0 or self.fc + self.fcd == 0:
            raise ValueError(f"weights fc={self.fc}, fcd={self.fcd}: non-negative, at least one positive")
        head = "" if self.signal is None else f"{self.signal}."
        prefixes = {"fc": head + "fc[", "fcd": head + "fcd"}
        for term, prefix in prefixes.items():
            if getattr(self, term) and not any(n.startswith(prefix) for n in names):
                named = sorted(
                    {
                        n.split(".", 1)[0]
                        for n in names
                        if "." in n and n.split(".", 1)[1].startswith("fc[" if term == "fc" else "fcd")
                    }
                )
                hint = f"; the signals {named} have them: pass signal=" if named else f" (add the '{term}' feature)"
                raise ValueError(
                    f"the loss term {term!r} needs feature columns '{prefix}...'; the budget computes none{hint}"
                )
        index = {
            term: np.array([k for k, n in enumerate(names) if n.startswith(prefix)], dtype=np.int64)
            for term, prefix in prefixes.items()
        }
        bad = [names[k] for term in index if getattr(self, term) for k in index[term] if not np.isfinite(observed[k])]
        if bad:
            raise ValueError(f"the observation has NaN or inf in {len(bad)} column(s) the loss uses: {bad[:5]}")
        object.__setattr__(self, "observed", tuple(float(v) for v in observed))
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "_index", index)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """The loss of each row of ``features`` (sim, feature); NaN where a used column is not finite."""
        features = np.asarray(features, dtype=np.float64)
        observed = np.asarray(self.observed)
        out = np.zeros(len(features))
        if self.fc:
            k = self._index["fc"]
            out += self.fc * (1.0 - _pearson_rows(features[:, k], observed[k]))
        if self.fcd:
            k = self._index["fcd"]
            out += self.fcd * np.abs(features[:, k] - observed[k]).mean(axis=1)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "feature_loss", "fc": self.fc, "fcd": self.fcd, "observed": list(self.observed)}
        if self.signal is not None:
            out["signal"] = self.signal
        return out


@dataclass(frozen=True)
class EvolutionSettings:
    """The optimiser's settings and loss (JSON-able; the store's identity)."""

    per_round: int  # the population size
    loss: Mapping[str, Any]
    sigma0: float = 0.3
    seed: int = 0
    method: str = "cma"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "per_round": self.per_round,
            "sigma0": self.sigma0,
            "seed": self.seed,
            "loss": dict(self.loss),
        }


@dataclass(frozen=True)
class _Candidates:
    """A generation's candidates (float32, rows ``first ..``), as a proposal of the store."""

    theta: np.ndarray
    first: int

    def draw(self, prior, start: int, stop: int) -> np.ndarray:
        return self.theta[start - self.first : stop - self.first]


@dataclass(frozen=True)
class Evolution:
    """What :func:`evolve` returns: the best evaluation and the history per generation
    (best and median loss, invalid rows); every evaluation is in ``store``."""

    best_theta: dict[str, float]
    best_loss: float
    best_sim: int
    history: tuple[dict[str, Any], ...]
    store: str
    n_sims: int
    wall_s: float = field(default=0.0)

    def __str__(self) -> str:
        theta = ", ".join(f"{k} = {v:.4g}" for k, v in self.best_theta.items())
        return (
            f"CMA-ES: {len(self.history)} generations, {self.n_sims} simulations in {self.store}; best loss "
            f"{self.best_loss:.4g} (simulation {self.best_sim}): {theta}"
        )


class _Optimiser:
    """cma's CMA-ES on [0, 1]^d with its normal draws from its own seeded generator."""

    def __init__(self, dim: int, settings: EvolutionSettings):
        import cma

        rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 0xC3A]))
        options = {
            "popsize": settings.per_round,
            "bounds": [0.0, 1.0],
            "verbose": -9,
            "seed": settings.seed + 1,
            "randn": lambda *shape: rng.standard_normal(shape),
        }
        self.es = cma.CMAEvolutionStrategy(np.full(dim, 0.5), settings.sigma0, options)

    def ask(self) -> np.ndarray:
        return np.asarray(self.es.ask(), dtype=np.float64)

    def tell(self, x: np.ndarray, losses: np.ndarray) -> None:
        self.es.tell(list(x), list(losses))


def _penalised(losses: np.ndarray) -> np.ndarray:
    """Invalid evaluations (NaN) rank last: twice the worst finite loss, at least 10."""
    finite = losses[np.isfinite(losses)]
    worst = max(10.0, 2.0 * float(finite.max())) if finite.size else 10.0
    return np.where(np.isfinite(losses), losses, worst)


def evolve(
    budget: _BudgetBase,
    store: str | os.PathLike,
    loss: FeatureLoss,
    *,
    generations: int,
    popsize: int,
    sigma0: float = 0.3,
    seed: int = 0,
    scheduler: Any = None,
    n_workers: int | None = None,
    progress: bool = True,
) -> Evolution:
    """Minimise ``loss`` over the budget's parameters by CMA-ES, ``generations`` of
    ``popsize`` simulations, every evaluation written to ``store``.

    Parameters
    ----------
    budget : simulator, prior (its box: every factor bounded), chunk size and seed
        (its ``n_sims`` is not used).
    store : the store (created, resumed, or continued with more generations).
    loss : a :class:`FeatureLoss` for the budget's features.
    generations, popsize : generations and candidates per generation (a multiple of
        the chunk size).
    sigma0 : CMA-ES's initial step, in units of the box's width.
    seed : the optimiser's seed.
    scheduler, n_workers, progress : as :meth:`vbi_dask.Budget.run`.

    Raises
    ------
    ValueError
        An unbounded prior, ``popsize`` not a multiple of the chunk size (or below 2),
        a loss for other features, a store with more generations than asked for.
    StoreMismatchError
        The store was made with other settings, loss or budget.
    RuntimeError
        Simulations of a generation failed (run again to retry them), or the optimiser
        replayed from the store asks other candidates than those recorded.
    """
    from ._extras import require
    from .sequential import _Rounds

    require("fit", "evolutionary fitting")
    for name, value in (("generations", generations), ("popsize", popsize)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < (2 if name == "popsize" else 1)
        ):
            raise ValueError(f"{name} must be an integer of at least {2 if name == 'popsize' else 1}, got {value!r}")
    if popsize % budget.chunk_size:
        raise ValueError(
            f"popsize ({popsize}) must be a multiple of the chunk size ({budget.chunk_size}): every block "
            "lies in one generation"
        )
    if not 0 < sigma0 <= 1:
        raise ValueError(f"sigma0 must lie in (0, 1] (a share of the box), got {sigma0!r}")
    if tuple(loss.feature_names) != tuple(budget.feature_names):
        raise ValueError("the loss was made for other feature columns than the budget's")
    low, high = (np.asarray(b, dtype=np.float64) for b in budget.prior.bounds())
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        names = [n for n, lo, hi in zip(budget.param_names, low, high) if not (np.isfinite(lo) and np.isfinite(hi))]
        raise ValueError(
            f"evolutionary fitting searches the prior's box: {names} are unbounded; give them Uniform priors"
        )
    settings = EvolutionSettings(int(popsize), loss.to_dict(), sigma0=float(sigma0), seed=int(seed))
    path = os.fspath(_store.local_path(store))
    if _store.store_state(path) == "zarr":
        stored = int(_store.read_attrs(path).get("n_sims", 0))
        if stored > generations * popsize:
            raise ValueError(
                f"store {path!r} holds {stored} simulations ({-(-stored // popsize)} generations of "
                f"{popsize}) and {generations} generation(s) were asked for: a run resumes or continues "
                "the store, it does not shrink it"
            )
    t0 = time.perf_counter()
    optimiser = _Optimiser(len(low), settings)
    proposals: list = []
    history: list[dict[str, Any]] = []
    best = (np.inf, -1)
    with _store.StoreLock(path, purpose=f"vbi-dask evolve, {generations} generations of {popsize}") as claim:
        for g in range(int(generations)):
            x = optimiser.ask()
            theta = (low + x * (high - low)).astype(np.float32)
            first = g * popsize
            record = _store.read_round(path, g) if _store.store_state(path) == "zarr" else None
            if record is not None:
                recorded = np.frombuffer(record[0], dtype=np.float32).reshape(theta.shape)
                if not np.array_equal(recorded, theta):
                    raise RuntimeError(
                        f"generation {g}: the optimiser replayed from the store asks other candidates "
                        "than those recorded (another cma version?); use a new store"
                    )
            proposals.append(_Candidates(theta, first))
            stored = int(_store.read_attrs(path)["n_sims"]) if _store.store_state(path) == "zarr" else 0
            work = _Rounds(budget, settings, tuple(proposals), n_sims=max(stored, first + popsize), active=g)
            if record is None:
                work.prepare(path)  # creates the store on the first generation
                _store.write_round(path, g, theta.tobytes(), {"method": "cma", "generation": g})
            summary = work._run_claimed(path, claim, scheduler=scheduler, n_workers=n_workers, progress=progress)
            if summary.failed:
                raise RuntimeError(
                    f"generation {g}: {summary.failed} simulation(s) failed "
                    f"({summary.errors[0][:500]}); run again to retry them"
                )
            features = _store.read_block(path, first, first + popsize, ("features",))["features"]
            losses = loss(features)
            optimiser.tell(x, _penalised(losses))
            k = int(np.nanargmin(losses)) if np.isfinite(losses).any() else -1
            if k >= 0 and losses[k] < best[0]:
                best = (float(losses[k]), first + k)
            history.append(
                {
                    "generation": g,
                    "best_loss": float(np.nanmin(losses)) if k >= 0 else float("nan"),
                    "median_loss": float(np.nanmedian(losses)) if k >= 0 else float("nan"),
                    "invalid": int((~np.isfinite(losses)).sum()),
                    "sigma": float(optimiser.es.sigma),
                }
            )
            if progress:
                print(
                    f"generation {g}: best loss {history[-1]['best_loss']:.4g}, median "
                    f"{history[-1]['median_loss']:.4g}, overall best {best[0]:.4g}",
                    flush=True,
                )
            claim.check()
    if best[1] < 0:
        raise RuntimeError("no evaluation gave a finite loss")
    theta_best = _store.read_block(path, best[1], best[1] + 1, ("theta",))["theta"][0]
    result = Evolution(
        {n: float(v) for n, v in zip(budget.param_names, theta_best)},
        best[0],
        best[1],
        tuple(history),
        path,
        int(generations) * int(popsize),
        time.perf_counter() - t0,
    )
    if progress:
        print(result, flush=True)
    return result
