"""Shared helpers of the benchmarks: timing with warm-up, JSON lines, tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_FILE = ROOT / "bench.jsonl"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def record(name: str, value: float, unit: str, **extra) -> dict:
    """Append one measurement to bench.jsonl (git-ignored) and return it."""
    row = {
        "name": name,
        "value": float(value),
        "unit": unit,
        "commit": commit(),
        "time": time.time(),
        "machine": platform.node(),
        **extra,
    }
    with open(BENCH_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def timeit(fn, repeats: int = 5, warmup: int = 1) -> tuple[float, float]:
    """Median and spread (max - min) of wall times in seconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.max(times) - np.min(times))


def gemm_f32_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Single-threaded float32 GEMM rate of this machine (threads set by the caller's env)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    median, _ = timeit(lambda: a @ b, repeats=repeats)
    return 2 * n**3 / median / 1e9


def stream_read_gbs(n_bytes: int = 256 << 20, repeats: int = 5) -> float:
    """Single-threaded streaming read bandwidth (GB/s): a vectorised sum over an array
    far larger than the caches, median of ``repeats``."""
    import numba

    @numba.njit(fastmath=True, nogil=True)
    def total(a):
        s = np.float32(0.0)
        for k in range(a.size):
            s += a[k]
        return s

    a = np.ones(n_bytes // 4, dtype=np.float32)
    median, _ = timeit(lambda: total(a), repeats=repeats)
    return n_bytes / median / 1e9


def single_thread_env() -> bool:
    return all(os.environ.get(k) == "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))


SPEED_MM_PER_MS = 10.0  # conduction speed of the delayed workload


def mpr84(
    *,
    n_steps: int,
    dtype: str = "float32",
    bold: bool = False,
    delays: bool = False,
    speed_mm_per_ms: float = SPEED_MM_PER_MS,
):
    """The benchmarks' workload: MPR on the default 84-region connectome, Heun, dt 0.01 ms,
    ``n_steps`` steps; optionally BOLD and delays at ``speed_mm_per_ms``."""
    from vbi_dask import Bold, Simulation, default_connectome

    return Simulation(
        "mpr",
        connectome=default_connectome().normalised("max"),
        dt_ms=0.01,
        duration_ms=n_steps * 0.01,
        integrator="heun",
        speed_mm_per_ms=speed_mm_per_ms if delays else None,
        # BOLD cost per step does not depend on the TR; a short TR keeps the runs short
        monitors=(Bold(tr_ms=1.0, dt_ms=1.0),) if bold else (),
        dtype=dtype,
    )
