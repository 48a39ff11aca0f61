"""How a training uses this process: torch threads from its CPU share, and seeding.

Threads: an OpenMP team that needs every CPU of the process's share stalls whenever one
of those CPUs is taken by anything else (the thread reading the store, another
process): each of the thousands of small parallel regions of a training step then
waits for a descheduled thread. On this project's shared 2-core VM, with the other
core busy, 2 torch threads trained the benchmark's NSF 10-35x slower than 1 thread
(85 against 2,900 samples/s in ``bench/bench_train.py``, row ``train.loaded_vs_quiet``).
So a training takes one CPU less than its share (at least 1) unless told otherwise.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

__all__ = ["cpu_share", "training_threads", "torch_threads", "seeded", "epoch_seed"]

_SEED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def cpu_share() -> int:
    """CPUs this process may use.

    Inside a Dask worker: the worker's threads. Otherwise the CPUs of the process's
    affinity mask (``os.sched_getaffinity``: what SLURM, ``taskset`` or a cgroup cpuset
    give it), capped by a cgroup CPU quota (a container's CPU limit, which leaves the
    affinity mask whole).
    """
    threads = _dask_worker_threads()
    if threads:
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def training_threads(threads: int | None = None, processes: int = 1) -> int:
    """Torch threads of one training process: ``threads`` if given, else one less than
    the process's part of :func:`cpu_share` (``processes`` training processes share it),
    at least 1 (see the module's docstring for why one is left).

    Raises
    ------
    ValueError
        ``threads`` is not a positive integer.
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        return int(threads)
    share = max(1, cpu_share() // max(1, int(processes)))
    return max(1, share - 1)


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """``torch.set_num_threads(training_threads(threads))`` for the block (sampling a
    posterior is as sensitive to oversubscription as training); the previous value is
    restored afterwards. Yields the number used."""
    used = training_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(used)
    try:
        yield used
    finally:
        torch.set_num_threads(previous)


def _dask_worker_threads() -> int | None:
    if "distributed" not in sys.modules:  # not imported: not a worker
        return None
    from distributed import get_worker

    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not inside a worker's task
        return None


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's CFS quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``),
    None if unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a function of (seed, epoch) only, in Lightning's range."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``lightning.seed_everything(seed, workers=True)`` for the block; the global random
    states it sets (Python's, NumPy's, torch's CPU generator) and its environment
    variables are restored afterwards.

    Raises
    ------
    ValueError
        ``seed`` outside [0, 2**32) (Lightning would pick a random seed instead).
    """
    import lightning as L

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    environment = {key: os.environ.get(key) for key in _SEED_ENV}
    try:
        with torch.random.fork_rng(devices=[]):
            L.seed_everything(int(seed), workers=True, verbose=False)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
