"""Pick and start a Dask cluster: one worker per GPU when there are GPUs, else CPU workers.

>>> client = get_client()          # doctest: +SKIP  (the current client, or a new local cluster)
>>> cluster = make_cluster("auto") # doctest: +SKIP  (LocalCUDACluster on GPUs, else LocalCluster)

dask-cuda is an optional extra (``pip install "vbi-dask[cuda]"``); it is imported only
when a CUDA cluster is started. CPU workers are single-threaded processes with
``NUMBA_NUM_THREADS=1``: parallelism comes from the workers, and the kernel's threads do
not oversubscribe the cores.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["CLUSTER_KINDS", "make_cluster", "get_client", "cluster_gpu_count"]

CLUSTER_KINDS = ("auto", "local", "cuda")


def cluster_gpu_count() -> int:
    """GPUs on this machine for a CUDA cluster, counted through NVML (no CUDA context is
    created in the client process); 0 when ``CUDA_VISIBLE_DEVICES`` is "" or "-1" or
    NVML is missing or fails."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no pynvml, no driver, NVML errors
        return 0
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count


def _local_cuda_cluster_class():
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as err:
        raise ImportError("a CUDA cluster needs dask-cuda: pip install 'vbi-dask[cuda]'") from err
    return LocalCUDACluster


def _dask_cuda_importable() -> bool:
    try:
        _local_cuda_cluster_class()
    except ImportError:
        return False
    return True


def make_cluster(kind: str = "auto", n_workers: int | None = None, threads_per_worker: int = 1, **kw: Any):
    """Start a local cluster.

    Parameters
    ----------
    kind : "auto" (CUDA when this machine has GPUs and dask-cuda is installed, else
        local), "local" (CPU worker processes) or "cuda" (``dask_cuda.LocalCUDACluster``,
        one worker per GPU, each advertising the worker resource ``GPU=1``).
    n_workers : number of workers; default: one per GPU (cuda) or per core (local).
    threads_per_worker : threads per worker (1: one kernel call per worker at a time).
    **kw : passed to the cluster class (``memory_limit``, ``dashboard_address``, ...);
        ``env`` entries are added to the CPU workers' environment.

    Returns
    -------
    ``distributed.LocalCluster`` or ``dask_cuda.LocalCUDACluster``.

    Raises
    ------
    ValueError
        Unknown kind.
    ImportError
        ``kind="cuda"`` without dask-cuda installed.
    """
    if kind not in CLUSTER_KINDS:
        raise ValueError(f"unknown cluster kind {kind!r}; valid: {list(CLUSTER_KINDS)}")
    if kind == "auto":
        kind = "cuda" if cluster_gpu_count() > 0 and _dask_cuda_importable() else "local"
    if kind == "cuda":
        cls = _local_cuda_cluster_class()
        kw.setdefault("resources", {"GPU": 1})
        return cls(n_workers=n_workers, threads_per_worker=threads_per_worker, **kw)
    from distributed import LocalCluster

    env = {"NUMBA_NUM_THREADS": "1", **kw.pop("env", {})}
    kw.setdefault("processes", True)
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, env=env, **kw)


def get_client(scheduler=None, **kw: Any):
    """A ``distributed.Client``.

    Parameters
    ----------
    scheduler : a ``Client`` (returned as is), a scheduler address (``"tcp://host:8786"``)
        to connect to, or None: the current client if there is one, else a new client on
        ``make_cluster(**kw)`` (close both with ``client.close(); client.cluster.close()``).
    **kw : passed to :func:`make_cluster` when a cluster is started.
    """
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler
    if scheduler is not None:
        if kw:
            raise TypeError(f"cluster options {sorted(kw)} given with an existing scheduler address")
        return Client(scheduler)
    try:
        return Client.current()
    except ValueError:  # no current client
        return Client(make_cluster(**kw))
