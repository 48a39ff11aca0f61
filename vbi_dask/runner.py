"""What runs a budget, whatever computes its rows: blocks, the store's identity, prepare /
resume / extend under the store's claim, the Dask graph (one task per block), the run on a
local scheduler or a cluster, and its summary.

A budget (:class:`vbi_dask.Budget`, :class:`vbi_dask.ExternalBudget`, a sequential
store's rounds) subclasses :class:`_BudgetBase` and says what a block is
(:meth:`~_BudgetBase.compute_rows`, :meth:`~_BudgetBase.attrs`); everything else is here.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from . import _config
from . import store as _store
from ._progress import Progress
from .cluster import LOCAL_SCHEDULERS, adaptive_maximum, check_scheduler, scheduler_client
from .kernels.rng import split_seed
from .prior import Grid, Prior

__all__ = ["BudgetSummary"]


@dataclass(frozen=True)
class BudgetSummary:
    """What a :meth:`Budget.run` did. ``done`` and ``invalid`` count the whole store;
    ``ran`` and ``failed`` this run (``failed``: simulations of blocks that raised or kept
    killing workers; their ``done`` stays false and a re-run retries them)."""

    store: str
    n_sims: int
    done: int
    ran: int
    skipped: int
    failed: int
    invalid: int
    wall_s: float
    failed_blocks: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()
    timings_s: Mapping[str, float] = field(default_factory=dict)
    invalid_where: tuple[str, ...] = ()  # where in the prior invalid rows concentrate (invalid_by_prior)

    @property
    def sims_per_s(self) -> float:
        """Simulations run per second of wall time in this run."""
        return self.ran / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.done == self.n_sims

    def __str__(self) -> str:
        rows = [
            ("store", self.store),
            ("simulations done", f"{self.done} / {self.n_sims}"),
            ("run now", f"{self.ran} ({self.skipped} already done)"),
            (
                "failed",
                f"{self.failed}"
                + (f" (blocks starting at {list(self.failed_blocks)[:10]})" if self.failed_blocks else ""),
            ),
            ("invalid (NaN/inf)", f"{self.invalid}"),
            ("wall time", f"{self.wall_s:.2f} s"),
            ("simulations/s", f"{self.sims_per_s:.3g}"),
        ]
        rows += [(f"  {k}", f"{v:.2f} s") for k, v in self.timings_s.items()]
        width = max(len(k) for k, _ in rows)
        text = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
        if self.invalid_where:
            text += "\ninvalid rows:\n" + "\n".join("  " + line for line in self.invalid_where)
        if self.errors:
            text += "\nerrors:\n" + "\n".join("  " + e.strip().splitlines()[-1] for e in self.errors[:5])
        return text


class _BudgetBase:
    """What runs a budget, whatever computes its rows (:class:`Budget`, or
    :class:`vbi_dask.external.ExternalBudget`): blocks, the store's identity (``token``),
    prepare / resume / extend under the store's claim, the Dask graph, the run.

    A subclass is a frozen dataclass with ``prior``, ``n_sims``, ``chunk_size`` and
    ``seed`` and gives :meth:`attrs` (the store's identity), :meth:`compute_block` (the
    rows of one block, a pure function of (configuration, seed, global index)),
    ``param_names``, ``feature_names``, :meth:`_allocation` and :meth:`_placement`.
    """

    prior: Prior | Grid
    n_sims: int
    chunk_size: int
    seed: int

    @property
    def param_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (JSON-able); :data:`vbi_dask.store.CONFIG_ATTRS`
        among them fix every row's content."""
        raise NotImplementedError

    def draw(self, start: int, stop: int) -> np.ndarray:
        """The parameters of rows ``start:stop``, float32 as stored (row ``k`` from
        (seed, k) alone)."""
        return self.prior.sample(stop - start, seed=self.seed, first_sim=start).astype(np.float32)

    def compute_rows(self, theta: np.ndarray, first_sim: int) -> dict[str, np.ndarray]:
        """Rows at parameters ``theta`` (float32, as stored) for global indices
        ``first_sim ..``: ``theta``, ``features``, ``valid`` (optionally ``bold``) and
        ``timings``."""
        raise NotImplementedError

    def compute_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` in memory: :meth:`compute_rows` at :meth:`draw`'s parameters."""
        t0 = time.perf_counter()
        theta = self.draw(start, stop)
        drawn = time.perf_counter() - t0
        result = self.compute_rows(theta, start)
        result["timings"]["simulate_s"] = result["timings"].get("simulate_s", 0.0) + drawn
        return result

    def _allocation(self) -> dict[str, Any]:
        """``connectome`` (or None) and ``time_bold_ms`` (or None) of the store to allocate."""
        raise NotImplementedError

    def _placement(self, client) -> dict[str, Any]:
        """Keyword arguments of ``client.submit`` that place a block (e.g. GPU resources)."""
        raise NotImplementedError

    def _check_sizes(self) -> None:
        """Validate and normalise ``n_sims``, ``chunk_size`` (default: the setting) and ``seed``."""
        if self.chunk_size is None:
            object.__setattr__(self, "chunk_size", _config.get("chunk-size"))
        for name in ("n_sims", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        split_seed(self.seed)  # validates
        object.__setattr__(self, "seed", int(self.seed))

    def blocks(self) -> list[tuple[int, int]]:
        """(start, stop) of every block."""
        c = self.chunk_size
        return [(s, min(s + c, self.n_sims)) for s in range(0, self.n_sims, c)]

    @cached_property
    def token(self) -> str:
        """Hash of the configuration that determines every block's content (n_sims excluded)."""
        from dask.base import tokenize

        return tokenize(json.dumps(_store.config_view(self.attrs()), sort_keys=True))

    def task_name(self, store: str | os.PathLike, start: int, stop: int) -> str:
        from dask.base import tokenize

        return "simulate-" + tokenize(self.token, os.fspath(store), start, stop)

    def prepare(self, store: str | os.PathLike) -> list[tuple[int, int]]:
        """Create, check or extend the store; return the blocks not yet done.

        Raises
        ------
        ValueError
            The path is a file or a folder that is not a Zarr store; the store holds more
            simulations than ``n_sims``.
        StoreMismatchError
            The store was made by another configuration (the message lists the fields).
        """
        path = _store.local_path(store)
        attrs = self.attrs()
        allocation = self._allocation()
        state = _store.store_state(path)
        if state == "zarr":
            stored = _store.check_compatible(path, attrs)
            sizes = _store.sim_sizes(path)
            expected = {"theta", "features", "valid", "done", "sim"} | (
                set() if allocation["time_bold_ms"] is None else {"bold"}
            )
            if not expected <= set(sizes):
                if "done" in sizes and _store.read_done(path).any():
                    raise ValueError(
                        f"store {str(path)!r} lacks variable(s) {sorted(expected - set(sizes))} but holds "
                        "finished simulations; refusing to overwrite it"
                    )
                state = "missing"  # an allocation interrupted before any block could run
            else:
                if stored.get("vbi_dask_version") != attrs["vbi_dask_version"]:
                    warnings.warn(
                        f"store made by vbi-dask {stored.get('vbi_dask_version')}, resumed with "
                        f"{attrs['vbi_dask_version']}",
                        stacklevel=3,
                    )
                n_stored = int(stored["n_sims"])
                if self.n_sims < n_stored:
                    raise ValueError(
                        f"store {str(path)!r} holds {n_stored} simulations and the budget asks for "
                        f"{self.n_sims}: a budget extends a store, it does not shrink it"
                    )
                if self.n_sims != n_stored or any(v != self.n_sims for v in sizes.values()):
                    _store.extend(path, self.n_sims)
        if state == "missing":
            _store.allocate(
                path,
                n_sims=self.n_sims,
                chunk_size=self.chunk_size,
                param_names=self.param_names,
                feature_names=self.feature_names,
                attrs=attrs,
                **allocation,
            )
        done = _store.read_done(path)
        return [(s, e) for s, e in self.blocks() if not done[s:e].all()]

    def to_delayed(self, store: str | os.PathLike) -> list:
        """The lazy graph: one ``dask.delayed`` task per block not yet done, named
        ``"simulate-" + tokenize(configuration, store, start, stop)``.

        Prepares the store first (see :meth:`prepare`): computing the tasks with any
        Dask scheduler fills it. Each task returns a small summary dict.
        """

        path = os.fspath(_store.local_path(store))
        with _store.StoreLock(path, purpose="Budget.to_delayed (preparing the store)"):
            pending = self.prepare(path)
        return self._delayed(path, pending)

    def _delayed(self, path: str, pending: list[tuple[int, int]]) -> list:
        import dask

        shared = dask.delayed(self, name="budget-" + self.token, traverse=False)
        run = dask.delayed(_run_block, pure=True, traverse=False)
        return [run(shared, path, s, e, dask_key_name=self.task_name(path, s, e)) for s, e in pending]

    def run(
        self, store: str | os.PathLike, *, scheduler: Any = None, n_workers: int | None = None, progress: bool = True
    ) -> BudgetSummary:
        """Fill ``store`` with every simulation not yet done; print and return a summary.

        Parameters
        ----------
        store : path of the Zarr store (created, resumed or extended).
        scheduler : None, "sync", "threads", a ``distributed.Client``, or a scheduler
            address (``"tcp://host:8786"``). None: the active ``distributed`` client if
            there is one, else a ``LocalCluster`` of ``n_workers`` single-threaded worker
            processes (``NUMBA_NUM_THREADS=1``), closed at the end.
        n_workers : workers of the LocalCluster, or threads of the "threads" scheduler
            (default: the CPU count).
        progress : show progress on stderr (a tqdm bar in a terminal or notebook; in a
            file or a SLURM log, a line of blocks done, sims/s and ETA at most every 10 s,
            and one at the end; see :mod:`vbi_dask._progress`), the dashboard link of a
            cluster, and print the summary.

        Returns
        -------
        BudgetSummary
            A block that raises or keeps killing workers (``KilledWorker``) is counted as
            failed, its ``done`` left false; the rest of the budget completes.

        Raises
        ------
        StoreLockedError
            Another live driver is writing ``store`` (the message names its host, pid and
            start); the store is not touched. The run holds the store's claim
            (``STORE.lock``, see :class:`vbi_dask.store.StoreLock`) until it returns.
        """
        check_scheduler(scheduler)
        path = os.fspath(_store.local_path(store))
        with _store.StoreLock(path, purpose=f"vbi-dask simulate, {self.n_sims} simulations") as claim:
            return self._run_claimed(path, claim, scheduler=scheduler, n_workers=n_workers, progress=progress)

    def _run_claimed(
        self,
        path: str,
        claim: "_store.StoreLock",
        *,
        scheduler: Any = None,
        n_workers: int | None = None,
        progress: bool = True,
    ) -> BudgetSummary:
        """:meth:`run` for a driver that holds the store's claim already."""
        t0 = time.perf_counter()
        totals = _Totals()
        pending = self.prepare(path)
        totals.skipped = self.n_sims - sum(e - s for s, e in pending)
        if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
            self._run_local(self._delayed(path, pending), LOCAL_SCHEDULERS[scheduler], n_workers, progress, totals)
        elif pending:
            self._run_distributed(path, pending, scheduler, n_workers, progress, totals, claim)
        done = _store.read_done(path)
        valid = _store.read_flags(path, "valid")
        invalid_where = ()
        if (done & ~valid).any():
            from .preflight import invalid_by_prior

            theta = self._stored_theta(path)
            invalid_where = tuple(invalid_by_prior(theta[done], valid[done], self.prior))
        summary = BudgetSummary(
            store=path,
            n_sims=self.n_sims,
            done=int(done.sum()),
            ran=totals.ran,
            skipped=totals.skipped,
            failed=totals.failed,
            invalid=int((done & ~valid).sum()),
            wall_s=time.perf_counter() - t0,
            failed_blocks=tuple(sorted(totals.failed_blocks)),
            errors=tuple(totals.errors),
            timings_s=dict(totals.timings),
            invalid_where=invalid_where,
        )
        if progress:
            print(summary, flush=True)
        return summary

    def _stored_theta(self, path: str) -> np.ndarray:
        """Every row's stored parameters, drawn again (bit-identical, and nothing to read)."""
        return self.draw(0, self.n_sims)

    def _run_local(self, tasks, scheduler: str, n_workers, progress: bool, totals: "_Totals") -> None:
        import dask
        from dask.callbacks import Callback

        kwargs = {"scheduler": scheduler}
        if scheduler == "threads" and n_workers:
            kwargs["num_workers"] = int(n_workers)
        bar = Progress(len(tasks), unit="blocks", work_unit="sims", enabled=progress)

        def block_done(key, result, dsk, state, worker_id):
            if isinstance(result, dict) and "start" in result:  # a block's summary (not the shared budget)
                bar.update(1, result["stop"] - result["start"])

        with Callback(posttask=block_done):
            results = dask.compute(*tasks, **kwargs)
        bar.close()
        for result in results:
            totals.add(result)

    def _run_distributed(
        self, path: str, pending, scheduler, n_workers, progress: bool, totals: "_Totals", claim: "_store.StoreLock"
    ) -> None:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        client, close = scheduler_client(scheduler, n_workers)
        try:
            if progress:
                print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            # tasks in flight: enough to keep every worker (and an adaptive cluster's
            # future workers) busy, few enough that driver and scheduler memory stay flat
            window = lambda: 2 * max(1, sum(client.nthreads().values()), adaptive_maximum(client)) + 2  # noqa: E731
            queue = list(pending)
            bar = Progress(len(queue), unit="blocks", work_unit="sims", enabled=progress)
            sizes = {}
            # the budget travels once, as a task every block depends on (a scattered value
            # would be lost with its worker; a task is recomputed)
            shared = client.submit(_identity, self, key="budget-" + self.token, pure=False)
            placement = self._placement(client)

            def submit():
                start, stop = queue.pop(0)
                key = self.task_name(path, start, stop)
                sizes[key] = (start, stop)
                return client.submit(_run_block, shared, path, start, stop, key=key, retries=0, **placement)

            futures = as_completed([submit() for _ in range(min(window(), len(queue)))])
            for future in futures:
                start, stop = sizes.pop(future.key)
                try:
                    totals.add(future.result())
                except KilledWorker as error:
                    totals.fail(start, stop, f"block [{start}, {stop}) kept killing workers: {error}")
                except Exception as error:  # noqa: BLE001 - report, go on with the rest
                    totals.fail(start, stop, f"block [{start}, {stop}): {type(error).__name__}: {error}")
                future.release()
                bar.update(1, stop - start)
                claim.check()  # another driver took the store over: submit nothing more
                for _ in range(min(len(queue), max(1, window() - futures.count()))):
                    futures.add(submit())
            bar.close()
            shared.release()
        finally:
            close()


class _Totals:
    def __init__(self):
        self.ran = self.skipped = self.failed = 0
        self.failed_blocks: list[int] = []
        self.errors: list[str] = []
        self.timings = {"simulate_s": 0.0, "features_s": 0.0, "write_s": 0.0}

    def add(self, result: Mapping[str, Any]) -> None:
        if result.get("error"):
            self.fail(result["start"], result["stop"], result["error"])
            return
        if result.get("ran"):
            self.ran += result["stop"] - result["start"]
        for key in self.timings:
            self.timings[key] += result.get(key, 0.0)

    def fail(self, start: int, stop: int, message: str) -> None:
        self.failed += stop - start
        self.failed_blocks.append(start)
        self.errors.append(message)


def _identity(value):
    return value


def _run_block(budget: _BudgetBase, store: str, start: int, stop: int) -> dict[str, Any]:
    """One task: skip if done, else compute, write, mark done. Returns a small summary;
    exceptions are returned as ``error`` (the block's ``done`` stays false)."""
    summary: dict[str, Any] = {"start": start, "stop": stop, "ran": False, "error": None}
    try:
        if _store.block_done(store, start, stop):  # a re-delivered task: written already
            return summary
        result = budget.compute_block(start, stop)
        t0 = time.perf_counter()
        _store.write_block(
            store,
            start,
            stop,
            theta=result["theta"],
            features=result["features"],
            valid=result["valid"],
            bold=result.get("bold"),
            round=result.get("round"),
        )
        summary.update(
            result["timings"], write_s=time.perf_counter() - t0, ran=True, invalid=int((~result["valid"]).sum())
        )
    except Exception:  # noqa: BLE001 - one bad block must not stop the budget
        summary["error"] = f"block [{start}, {stop}): {traceback.format_exc()}"
    return summary
