"""Sequential inference in one store: each round draws where the previous ones say the
observation's parameters are (the ``train`` extra).

>>> result = run_sequential(budget, "seq.zarr", x_observed, rounds=5, per_round=1000)   # TSNPE
>>> samples = sample_posterior(result.posterior, x_observed, 2000)
>>> run_sequential(budget, "seq.zarr", x_observed, rounds=7, per_round=1000)             # two more rounds

``budget`` is any budget (:class:`vbi_dask.Budget` or :class:`vbi_dask.ExternalBudget`);
its ``n_sims`` is not used: round ``r`` holds rows ``r * per_round .. (r + 1) * per_round - 1``.

Rounds
------
Round 0 draws from the prior exactly as a one-round budget does (row ``k`` from
(seed, k)). Round ``r >= 1`` draws from a proposal built from the posterior trained on
rounds ``0 .. r - 1``, evaluated at the observation ``x_o``:

- ``"tsnpe"`` (default; truncated sequential NPE, Deistler et al. 2022): the prior
  truncated to the posterior's highest-probability region of mass ``1 - epsilon``. The
  threshold is the ``epsilon`` quantile of the flow's log-density at ``x_o`` over
  10,000 of its draws inside the prior's support (sbi's ``get_density_thresholder``).
  Row ``k`` is the first draw of its own stream of prior candidates, keyed by
  (seed, round, k), whose log-density reaches the threshold. Training pools every round
  with the ordinary NPE loss: rows from the truncated prior are draws of the prior
  restricted to a region that holds the posterior.
- ``"snpe-c"`` (automatic posterior transformation, Greenberg et al. 2019): the posterior
  itself; row ``k`` is the first of its own draws (keyed by (seed, round, k)) inside the
  prior's support. Training after the first round uses sbi's atomic loss on every row
  (valid for draws from any proposal).

Each row depends only on (configuration, seed, round, k) and the round's proposal; the
proposals are evaluated one row at a time with one torch thread, so that chunking,
workers and restarts do not change a row.

The store
---------
A sequential store is a budget store with a ``round(sim)`` variable (the round that
drew each row) and the attribute ``sequential`` (method, per-round size, observation,
epsilon and training settings: part of the store's identity, so a run with another
observation or method is refused). Round ``r``'s proposal is recorded in
``rounds/<r>``: the saved posterior it was built from (the posterior after ``r``
rounds, see :func:`round_posterior`) with its threshold. Proposals are written before
their round's rows, so a run killed at any point resumes where it stopped with the
same proposals and rows; the store alone suffices to retrain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import store as _store
from ._extras import require
from .runner import BudgetSummary, _BudgetBase

__all__ = ["METHODS", "SequentialSettings", "SequentialResult", "run_sequential", "round_posterior"]

METHODS = ("tsnpe", "snpe-c")
CANDIDATES = 256  # prior candidates per evaluation of a truncated prior (a fixed shape: same rounding)
MAX_CANDIDATES = 1 << 22  # per row; its stream spans [k * STRIDE, (k + 1) * STRIDE)
STRIDE = 1 << 24
POSTERIOR_DRAWS = 16  # posterior candidates per evaluation of an SNPE-C proposal
THRESHOLD_DRAWS = 10_000
# train_posterior's keywords that change what a proposal is (stored); the others do not
TRAIN_KEYS = (
    "estimator",
    "features",
    "batch_size",
    "learning_rate",
    "max_epochs",
    "stop_after_epochs",
    "clip_max_norm",
    "validation_fraction",
    "split_seed",
    "seed",
)


def _derived_seed(*parts: Any) -> int:
    """A 64-bit seed from the given parts (BLAKE2b)."""
    digest = hashlib.blake2b(json.dumps([str(p) for p in parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@contextlib.contextmanager
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SequentialSettings:
    """What fixes every round of a sequential store (JSON-able; the store's identity).

    Parameters
    ----------
    observed : the observation's features (the store's raw feature vector).
    per_round : simulations per round (a multiple of the budget's chunk size).
    method : ``"tsnpe"`` or ``"snpe-c"``.
    epsilon : TSNPE: posterior mass left outside the truncated prior.
    train : keyword arguments of :func:`vbi_dask.train.train_posterior` for every
        round's posterior (only :data:`TRAIN_KEYS`).
    """

    observed: Sequence[float]
    per_round: int
    method: str = "tsnpe"
    epsilon: float = 1e-4
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown sequential method {self.method!r}; valid: {', '.join(METHODS)}")
        per_round = self.per_round
        if isinstance(per_round, bool) or not isinstance(per_round, (int, np.integer)) or per_round < 1:
            raise ValueError(f"per_round must be a positive integer, got {per_round!r}")
        object.__setattr__(self, "per_round", int(per_round))
        if not 0 < float(self.epsilon) < 1:
            raise ValueError(f"epsilon must lie in (0, 1), got {self.epsilon!r}")
        object.__setattr__(self, "epsilon", float(self.epsilon))
        observed = np.asarray(self.observed, dtype=np.float64)
        if observed.ndim != 1 or observed.size == 0:
            raise ValueError(f"observed must be one feature vector, got shape {observed.shape}")
        object.__setattr__(self, "observed", tuple(float(v) for v in observed))
        _check_train_keys(self.train)
        train = json.loads(json.dumps(dict(self.train), default=_jsonable))
        object.__setattr__(self, "train", train)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "per_round": self.per_round,
            "epsilon": self.epsilon,
            "observed": list(self.observed),
            "train": dict(self.train),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SequentialSettings":
        return cls(
            data["observed"],
            data["per_round"],
            method=data["method"],
            epsilon=data["epsilon"],
            train=data.get("train", {}),
        )


def _check_train_keys(train: Mapping[str, Any]) -> None:
    """Refuse training settings outside :data:`TRAIN_KEYS`, listing the valid ones."""
    unknown = sorted(set(train) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown} for sequential rounds; valid: {', '.join(TRAIN_KEYS)}")


def _round_training(train: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of :data:`TRAIN_KEYS` that differ from
    :class:`~vbi_dask.train.config.TrainConfig`'s defaults (the estimator: the fields of
    its architecture that differ from :class:`~vbi_dask.train.config.EstimatorConfig`'s):
    a training spelled two ways (a default given or left out) is one store identity, and
    a field added later with a default leaves it unchanged."""
    from dataclasses import fields

    from .train.config import EstimatorConfig, TrainConfig

    _check_train_keys(train)
    config, default = TrainConfig.of(dict(train)), TrainConfig()
    out = {
        key: getattr(config, key)
        for key in TRAIN_KEYS
        if key != "estimator" and getattr(config, key) != getattr(default, key)
    }
    architecture, plain = config.estimator_config, EstimatorConfig()
    changed = {
        f.name: getattr(architecture, f.name)
        for f in fields(EstimatorConfig)
        if getattr(architecture, f.name) != getattr(plain, f.name)
    }
    if changed:
        out["estimator"] = changed
    return out


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"training setting {value!r} is not JSON-able")


# ---------------------------------------------------------------------- proposals
_LOADED: dict[str, Any] = {}
# torch's thread count and global RNG are per process: one block draws at a time (the
# "threads" scheduler runs blocks side by side)
_DRAW_LOCK = threading.Lock()


def _load(payload: bytes):
    """The posterior saved in ``payload`` (loaded once per process)."""
    key = hashlib.blake2b(payload, digest_size=16).hexdigest()
    if key not in _LOADED:
        from .train import load_posterior

        with tempfile.TemporaryDirectory(prefix="vbi-dask-proposal-") as folder:
            path = Path(folder) / "posterior.pt"
            path.write_bytes(payload)
            _LOADED.clear()  # one proposal at a time per process
            _LOADED[key] = load_posterior(path)
    return _LOADED[key]


def _serialised(posterior) -> bytes:
    from .train import save_posterior

    with tempfile.TemporaryDirectory(prefix="vbi-dask-proposal-") as folder:
        return save_posterior(posterior, Path(folder) / "posterior.pt").read_bytes()


@dataclass(frozen=True)
class _Proposal:
    """Round ``round``'s proposal: the saved posterior ``payload`` at ``observed``."""

    method: str
    round: int
    seed: int
    payload: bytes
    observed: tuple[float, ...]
    threshold: float | None = None

    @cached_property
    def _parts(self):
        import torch

        from .train import check_observation

        posterior = _load(self.payload)
        x, _ = check_observation(np.asarray(self.observed), posterior.info)
        return posterior, x.to(torch.float32)

    def draw(self, prior, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (float32), row ``k`` from (seed, round, k) alone."""
        import torch

        posterior, x = self._parts
        flow = posterior.posterior_estimator
        out = np.empty((stop - start, len(prior.param_names)), dtype=np.float32)
        with _DRAW_LOCK, _one_thread(), torch.no_grad(), torch.random.fork_rng(devices=[]):
            for k in range(start, stop):
                out[k - start] = (self._truncated if self.method == "tsnpe" else self._posterior)(prior, flow, x, k)
        return out

    def _truncated(self, prior, flow, x, k: int) -> np.ndarray:
        import torch

        stream = _derived_seed("tsnpe", self.seed, self.round)
        for first in range(0, MAX_CANDIDATES, CANDIDATES):
            candidates = prior.sample(CANDIDATES, seed=stream, first_sim=k * STRIDE + first).astype(np.float32)
            log_prob = flow.log_prob(torch.from_numpy(candidates)[:, None, :], condition=x)[:, 0].numpy()
            hits = np.flatnonzero(log_prob >= self.threshold)
            if hits.size:
                return candidates[hits[0]]
        raise RuntimeError(
            f"round {self.round}: none of {MAX_CANDIDATES} prior draws for simulation {k} lies in the "
            f"truncated region (log-density >= {self.threshold:.4g}): the posterior's region holds "
            "almost none of the prior's mass; use fewer simulations per round or more epsilon"
        )

    def _posterior(self, prior, flow, x, k: int) -> np.ndarray:
        import torch

        for attempt in range(MAX_CANDIDATES // POSTERIOR_DRAWS):
            torch.manual_seed(_derived_seed("snpe-c", self.seed, self.round, k, attempt) >> 1)
            candidates = flow.sample(torch.Size((POSTERIOR_DRAWS,)), condition=x)[:, 0].numpy().astype(np.float32)
            inside = np.flatnonzero(prior.in_bounds(candidates))
            if inside.size:
                return candidates[inside[0]]
        raise RuntimeError(
            f"round {self.round}: none of {MAX_CANDIDATES} posterior draws for simulation {k} lies "
            "inside the prior's support: the observation lies outside what the model produces"
        )


@dataclass(frozen=True)
class _Rounds(_BudgetBase):
    """The budget of a sequential store up to ``n_sims`` rows, running the blocks of
    round ``active`` only."""

    inner: _BudgetBase
    settings: SequentialSettings
    proposals: tuple  # index r: round r's _Proposal (None for round 0: the prior)
    n_sims: int
    active: int

    @property
    def prior(self):
        return self.inner.prior

    @property
    def chunk_size(self) -> int:
        return self.inner.chunk_size

    @property
    def seed(self) -> int:
        return self.inner.seed

    @property
    def param_names(self) -> list[str]:
        return self.inner.param_names

    @property
    def feature_names(self) -> list[str]:
        return self.inner.feature_names

    def attrs(self) -> dict[str, Any]:
        return _store.sequential_attributes(self.inner.attrs(), n_sims=self.n_sims, settings=self.settings.to_dict())

    def round_of(self, start: int) -> int:
        return start // self.settings.per_round

    def draw(self, start: int, stop: int) -> np.ndarray:
        proposal = self.proposals[self.round_of(start)]
        if proposal is None:  # a sequential store's round 0: the prior, as a one-round budget
            return self.inner.draw(start, stop)
        return proposal.draw(self.prior, start, stop)

    def compute_rows(self, theta: np.ndarray, first_sim: int) -> dict[str, np.ndarray]:
        result = self.inner.compute_rows(theta, first_sim)
        result["round"] = np.full(len(theta), self.round_of(first_sim), dtype=np.int16)
        return result

    def prepare(self, store) -> list[tuple[int, int]]:
        return [(s, e) for s, e in super().prepare(store) if self.round_of(s) == self.active]

    def _allocation(self) -> dict[str, Any]:
        return {**self.inner._allocation(), "rounds": True}

    def _placement(self, client) -> dict[str, Any]:
        return self.inner._placement(client)

    def _stored_theta(self, path: str) -> np.ndarray:
        return _store.open_store(path)["theta"].values


# ---------------------------------------------------------------------- running
@dataclass(frozen=True)
class SequentialResult:
    """What :func:`run_sequential` returns.

    ``posterior``: trained on every round (a :class:`vbi_dask.train.StorePosterior`);
    ``rounds``: one record per round (its proposal's threshold and prior mass, rows,
    invalid rows, seconds simulating and training); ``store``: the store's path.
    """

    posterior: Any
    rounds: tuple[dict[str, Any], ...]
    store: str

    def __str__(self) -> str:
        lines = [f"sequential store {self.store}: {len(self.rounds)} round(s)"]
        for r in self.rounds:
            truncation = ""
            if r.get("threshold") is not None:
                truncation = f", truncated prior holds {r['prior_mass']:.3g} of the prior"
            lines.append(f"  round {r['round']}: {r['n_sims']} simulations ({r['invalid']} invalid){truncation}")
        return "\n".join(lines)


def _train_method(settings: SequentialSettings, n_rounds: int) -> str:
    """The loss of a posterior trained on ``n_rounds`` rounds."""
    return "snpe-c" if settings.method == "snpe-c" and n_rounds > 1 else "npe"


def _train(path: str, settings: SequentialSettings, n_rounds: int, *, log_dir, progress: bool, threads):
    from .train import train_posterior

    kwargs = dict(settings.train)
    method = _train_method(settings, n_rounds)
    if method != "npe":
        kwargs["method"] = method
    folder = None if log_dir is None else Path(log_dir) / f"posterior_after_round_{n_rounds - 1}"
    return train_posterior(path, log_dir=folder, progress=progress, threads=threads, **kwargs)


def _threshold(posterior, observed: Sequence[float], prior, epsilon: float, seed: int) -> tuple[float, float]:
    """The TSNPE threshold (``epsilon`` quantile of the flow's log-density at x_o over its
    draws inside the prior) and the share of prior draws above it."""
    import torch

    from .train import check_observation

    x, _ = check_observation(np.asarray(observed), posterior.info)
    flow = posterior.posterior_estimator
    with _one_thread(), torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derived_seed("threshold", seed) >> 1)
        theta = flow.sample(torch.Size((THRESHOLD_DRAWS,)), condition=x)[:, 0]
        theta = theta[torch.as_tensor(prior.in_bounds(theta.numpy()))]
        if len(theta) == 0:
            raise RuntimeError(
                "no draw of the posterior lies inside the prior's support: the observation lies "
                "outside what the model produces"
            )
        threshold = float(np.quantile(flow.log_prob(theta[:, None, :], condition=x)[:, 0].numpy(), epsilon))
        draws = torch.from_numpy(prior.sample(THRESHOLD_DRAWS, seed=_derived_seed("mass", seed)).astype(np.float32))
        mass = float((flow.log_prob(draws[:, None, :], condition=x)[:, 0].numpy() >= threshold).mean())
    return threshold, mass


def round_posterior(store: str | os.PathLike, index: int):
    """The posterior trained on rounds ``0 .. index - 1`` of a sequential store (the one
    round ``index``'s proposal was built from), loaded from the store.

    Raises
    ------
    ValueError
        The store has no complete record of round ``index`` (``index >= 1``).
    """
    record = _store.read_round(store, index)
    if record is None:
        raise ValueError(f"store {os.fspath(store)!r} has no record of round {index}'s proposal")
    posterior = _load(record[0])
    _LOADED.clear()  # the caller owns it now
    return posterior


def run_sequential(
    budget: _BudgetBase,
    store: str | os.PathLike,
    observed: Any,
    *,
    rounds: int,
    per_round: int,
    method: str = "tsnpe",
    epsilon: float = 1e-4,
    train: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    n_workers: int | None = None,
    progress: bool = True,
    log_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> SequentialResult:
    """Run ``rounds`` rounds of ``per_round`` simulations into one store, each from the
    previous rounds' posterior at ``observed``; return the posterior trained on all.

    Parameters
    ----------
    budget : the simulator, prior, chunk size and seed (:class:`vbi_dask.Budget` or
        :class:`vbi_dask.ExternalBudget`; its ``n_sims`` is not used).
    store : path of the sequential store (created, resumed, or continued with more rounds).
    observed : the observation's features (the store's raw feature vector).
    rounds, per_round : number of rounds (round 0 from the prior) and simulations per
        round (a multiple of the chunk size).
    method, epsilon : see :class:`SequentialSettings` and the module docstring.
    train : :func:`vbi_dask.train.train_posterior` settings for every round's posterior.
    scheduler, n_workers, progress : as :meth:`vbi_dask.Budget.run`.
    log_dir : training logs per round (``posterior_after_round_<r>``); None: none kept.
    threads : torch threads while training (as ``train_posterior``).

    Raises
    ------
    ValueError
        Bad settings, ``per_round`` not a multiple of the chunk size, an observation with
        the wrong number of features or NaN in a used column.
    StoreMismatchError
        The store was made by another budget or sequential configuration.
    RuntimeError
        Simulations of a round failed (their blocks stay not done; run again to retry
        them before the next round is built), or a proposal cannot be drawn from.
    """
    require("train", "vbi_dask.sequential")
    settings = SequentialSettings(
        np.asarray(observed, dtype=np.float64).ravel(),
        per_round,
        method=method,
        epsilon=epsilon,
        train=_round_training(train or {}),
    )
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if settings.per_round % budget.chunk_size:
        raise ValueError(
            f"per_round ({settings.per_round}) must be a multiple of the chunk size "
            f"({budget.chunk_size}): every block lies in one round"
        )
    if len(settings.observed) != len(budget.feature_names):
        raise ValueError(
            f"the observation has {len(settings.observed)} features; the budget computes "
            f"{len(budget.feature_names)} ({budget.feature_names[:3]} ...)"
        )
    path = os.fspath(_store.local_path(store))
    if _store.store_state(path) == "zarr":
        stored = int(_store.read_attrs(path).get("n_sims", 0))
        if stored > rounds * settings.per_round:
            raise ValueError(
                f"store {path!r} holds {stored} simulations ({-(-stored // settings.per_round)} rounds of "
                f"{settings.per_round}) and {rounds} round(s) were asked for: a run resumes or continues "
                "a sequential store, it does not shrink it"
            )
    records: list[dict[str, Any]] = []
    proposals: list[_Proposal | None] = [None]
    with _store.StoreLock(path, purpose=f"vbi-dask sequential, {rounds} rounds of {settings.per_round}") as claim:
        for r in range(int(rounds)):
            record: dict[str, Any] = {
                "round": r,
                "n_sims": settings.per_round,
                "threshold": None,
                "prior_mass": None,
                "train_s": 0.0,
            }
            if r >= 1:
                proposal, made = _proposal(
                    path, r, settings, budget, log_dir=log_dir, progress=progress, threads=threads
                )
                proposals.append(proposal)
                record.update(made)
            stored = int(_store.read_attrs(path)["n_sims"]) if _store.store_state(path) == "zarr" else 0
            work = _Rounds(
                budget, settings, tuple(proposals), n_sims=max(stored, (r + 1) * settings.per_round), active=r
            )
            if progress:
                print(
                    f"round {r}: simulations {r * settings.per_round} .. {(r + 1) * settings.per_round - 1}", flush=True
                )
            summary: BudgetSummary = work._run_claimed(
                path, claim, scheduler=scheduler, n_workers=n_workers, progress=progress
            )
            if summary.failed:
                raise RuntimeError(
                    f"round {r}: {summary.failed} simulation(s) failed ({summary.errors[0][:500]}); "
                    f"run again to retry them before round {r + 1} is built"
                )
            done, valid = _store.read_done(path), _store.read_flags(path, "valid")
            rows = slice(r * settings.per_round, (r + 1) * settings.per_round)
            record.update(invalid=int((done[rows] & ~valid[rows]).sum()), simulate_s=summary.wall_s)
            records.append(record)
            claim.check()
        t0 = time.perf_counter()
        posterior = _train(path, settings, int(rounds), log_dir=log_dir, progress=progress, threads=threads)
        records[-1]["final_train_s"] = time.perf_counter() - t0
    result = SequentialResult(posterior, tuple(records), path)
    if progress:
        print(result, flush=True)
    return result


def _proposal(
    path: str, r: int, settings: SequentialSettings, budget: _BudgetBase, *, log_dir, progress: bool, threads
) -> tuple[_Proposal, dict[str, Any]]:
    """Round ``r``'s proposal: read from the store, or trained on rounds ``< r`` and
    recorded there first."""
    made: dict[str, Any] = {}
    record = _store.read_round(path, r)
    if record is None:
        done = _store.read_done(path)
        if len(done) < r * settings.per_round or not done[: r * settings.per_round].all():
            raise RuntimeError(f"rounds before {r} are not complete in {path!r}: run them first")
        t0 = time.perf_counter()
        posterior = _train(path, settings, r, log_dir=log_dir, progress=progress, threads=threads)
        attrs = {
            "method": settings.method,
            "trained_on_rounds": r,
            "train_loss": _train_method(settings, r),
            "threshold": None,
            "prior_mass": None,
        }
        if settings.method == "tsnpe":
            threshold, mass = _threshold(
                posterior, settings.observed, budget.prior, settings.epsilon, _derived_seed(budget.seed, r)
            )
            attrs.update(threshold=threshold, prior_mass=mass)
        _store.write_round(path, r, _serialised(posterior), attrs)
        made["train_s"] = time.perf_counter() - t0
        record = _store.read_round(path, r)
    payload, attrs = record
    made.update(threshold=attrs.get("threshold"), prior_mass=attrs.get("prior_mass"))
    proposal = _Proposal(settings.method, r, budget.seed, payload, settings.observed, attrs.get("threshold"))
    return proposal, made
