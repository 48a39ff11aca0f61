"""Kernel backend selection: run a chunk on the GPU when its worker has one.

The choice is made where the chunk runs (on the Dask worker), not on the client: a
cluster may mix CPU and GPU workers, and ``CUDA_VISIBLE_DEVICES`` is set per worker by
dask-cuda. ``"auto"`` picks ``"cuda"`` when a device is usable, else ``"cpu"``; results
agree to floating-point rounding (the same equations and the same noise on both).

>>> resolve_backend("auto")  # doctest: +SKIP
'cpu'
"""

from __future__ import annotations

import os
from functools import lru_cache

__all__ = ["BACKENDS", "cuda_available", "gpu_count", "resolve_backend", "gpu_annotations"]

BACKENDS = ("auto", "cpu", "cuda")
_NO_DEVICES = ("", "-1")


def _hidden_by_env() -> bool:
    """``CUDA_VISIBLE_DEVICES`` set to "" or "-1" hides every GPU (CUDA's convention)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return value is not None and value.strip() in _NO_DEVICES


@lru_cache(maxsize=None)
def _probe_device_count() -> int:
    """CUDA devices usable by Numba in this process (the simulator counts as one).

    Cached: the probe initialises the driver once. Any failure (no driver, no library,
    a broken installation) means no device.
    """
    try:
        from numba import cuda

        if not cuda.is_available():
            return 0
        return len(cuda.gpus)
    except Exception:  # CudaSupportError, missing libraries, NVML errors...
        return 0


def gpu_count() -> int:
    """Number of GPUs this process can use: 0 when hidden by ``CUDA_VISIBLE_DEVICES``."""
    if _hidden_by_env():
        return 0
    return _probe_device_count()


def cuda_available() -> bool:
    """Whether the CUDA kernels can run here: a visible GPU, or the CUDA simulator
    (``NUMBA_ENABLE_CUDASIM=1`` set before Numba was imported)."""
    return gpu_count() > 0


def resolve_backend(backend: str = "auto") -> str:
    """``"cpu"`` or ``"cuda"`` for a requested backend.

    Parameters
    ----------
    backend : "auto" (CUDA when available, else CPU), "cpu" or "cuda".

    Raises
    ------
    ValueError
        Unknown backend.
    RuntimeError
        ``"cuda"`` requested where no GPU is usable.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {list(BACKENDS)}")
    if backend == "cpu":
        return "cpu"
    available = cuda_available()
    if backend == "cuda" and not available:
        reason = (
            "CUDA_VISIBLE_DEVICES hides all devices" if _hidden_by_env() else "Numba finds no CUDA device or driver"
        )
        raise RuntimeError(
            f"backend 'cuda' requested but no GPU is usable here ({reason}); use backend='auto' or 'cpu'"
        )
    return "cuda" if available else "cpu"


def gpu_annotations(client=None) -> dict | None:
    """Placement of GPU chunks: ``{"resources": {"GPU": 1}}`` or None.

    With a client: the annotation when some worker advertises a ``GPU`` resource (the
    workers of :func:`vbi_dask.cluster.make_cluster` on GPUs do), else None, because a
    task asking for a resource no worker has would never run. Without a client: the
    annotation when this process sees a GPU. Use as
    ``with dask.annotate(**(gpu_annotations(client) or {})): ...``.
    """
    if client is None:
        has_gpu = cuda_available()
    else:
        workers = client.scheduler_info().get("workers", {})
        has_gpu = any((w.get("resources") or {}).get("GPU", 0) > 0 for w in workers.values())
    return {"resources": {"GPU": 1}} if has_gpu else None
