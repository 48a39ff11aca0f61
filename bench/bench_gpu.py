"""GPU kernel throughput: MPR on the 84-region connectome, float32, stochastic Heun, dt 0.01 ms.

Simulation-steps/s of the CUDA shell at batch 1e3, 1e4 and 1e5, with and without delays
(10 mm/ms: up to ~2,500 steps of history), against the CPU shell on all cores of the
same machine, end to end through ``Simulation.run_arrays`` (host inputs prepared and
copied, no monitor output). The device's memory bandwidth (device-to-device copy) and
float32 peak (a loop of independent fused multiply-adds) are measured in the same run,
so rates can be read as fractions of what the device can do. Results are appended to
bench.jsonl (name / value / unit).

    python bench/bench_gpu.py            # needs a CUDA GPU (not the simulator)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from numba import cuda  # importable without a GPU; kernels are compiled at their first launch

from _common import mpr84, record, timeit

BATCHES = (1_000, 10_000, 100_000)
TARGET_S = 2.0  # wall time of one timed call


def gpu_or_exit():
    """The current CUDA device, or exit with a message saying why there is none."""
    from numba.core import config

    if config.ENABLE_CUDASIM:
        sys.exit("bench_gpu: NUMBA_ENABLE_CUDASIM=1 runs the CUDA simulator, not a GPU; unset it to benchmark")
    from vbi_dask.backend import cuda_available

    if not cuda_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "numba.cuda finds no device or driver"
        print(f"bench_gpu: no CUDA GPU here ({why}); nothing measured", file=sys.stderr)
        sys.exit(0)
    return cuda.get_current_device()


def _elapsed_s(launch) -> float:
    start, end = cuda.event(), cuda.event()
    start.record()
    launch()
    end.record()
    end.synchronize()
    return cuda.event_elapsed_time(start, end) / 1e3


def copy_bandwidth_gbs(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Device-to-device copy: (read + write) bytes / s, best of ``repeats``."""
    n = n_bytes // 4
    a = cuda.device_array(n, dtype=np.float32)
    b = cuda.device_array(n, dtype=np.float32)
    b.copy_to_device(a)  # warm-up
    best = min(_elapsed_s(lambda: b.copy_to_device(a)) for _ in range(repeats))
    return 2 * n * 4 / best / 1e9


def fp32_peak_gflops(device, n_iter: int = 4096, repeats: int = 5) -> float:
    """A loop of 8 independent float32 FMA chains per thread, enough threads to fill
    every SM: 2 flops per FMA."""

    @cuda.jit(fastmath=True)
    def fma_loop(out, n_iter, b, c):
        i = cuda.grid(1)
        a0 = np.float32(i) * np.float32(1e-9)
        a1, a2, a3 = a0 + np.float32(1), a0 + np.float32(2), a0 + np.float32(3)
        a4, a5, a6, a7 = a0 + np.float32(4), a0 + np.float32(5), a0 + np.float32(6), a0 + np.float32(7)
        for _ in range(n_iter):
            a0 = a0 * b + c
            a1 = a1 * b + c
            a2 = a2 * b + c
            a3 = a3 * b + c
            a4 = a4 * b + c
            a5 = a5 * b + c
            a6 = a6 * b + c
            a7 = a7 * b + c
        out[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7  # keeps the chains alive

    threads, blocks = 256, device.MULTIPROCESSOR_COUNT * 8
    out = cuda.device_array(threads * blocks, dtype=np.float32)
    b, c = np.float32(0.999999), np.float32(1e-6)
    fma_loop[blocks, threads](out, n_iter, b, c)  # compile and warm up
    best = min(_elapsed_s(lambda: fma_loop[blocks, threads](out, n_iter, b, c)) for _ in range(repeats))
    return 2 * 8 * n_iter * threads * blocks / best / 1e9


def steps_per_s(batch: int, delays: bool, backend: str) -> tuple[float, float, int]:
    """(sim-steps/s, spread fraction, steps) with the step count calibrated so one call
    takes about TARGET_S (the first, short call also compiles)."""
    G = np.linspace(0.3, 0.7, batch)
    n = 100
    t0 = time.perf_counter()
    mpr84(n_steps=n, delays=delays).run_arrays({"G": G}, seed=0, backend=backend)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    mpr84(n_steps=n, delays=delays).run_arrays({"G": G}, seed=0, backend=backend)
    short = time.perf_counter() - t0
    n_steps = int(np.clip(n * TARGET_S / max(short, 1e-3), 200, 50_000)) // 100 * 100
    sim = mpr84(n_steps=n_steps, delays=delays)
    median, spread = timeit(lambda: sim.run_arrays({"G": G}, seed=0, backend=backend), repeats=3, warmup=0)
    print(f"  ({backend}: first call {first:.1f} s incl. compilation)", file=sys.stderr)
    return batch * n_steps / median, spread / median, n_steps


def main() -> int:
    device = gpu_or_exit()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    info = {
        "device": name,
        "compute_capability": ".".join(map(str, device.compute_capability)),
        "cpu_threads": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    bandwidth = copy_bandwidth_gbs()
    peak = fp32_peak_gflops(device)
    record("gpu.copy_bandwidth", bandwidth, "GB/s", **info)
    record("gpu.fp32_fma_peak", peak, "GFLOP/s", **info)
    print(
        f"{name} (cc {info['compute_capability']}, {device.MULTIPROCESSOR_COUNT} SMs): "
        f"device-to-device copy {bandwidth:,.0f} GB/s, float32 FMA peak {peak:,.0f} GFLOP/s"
    )
    print(f"MPR-84 float32 Heun, dt 0.01 ms; CPU: {info['cpu_threads']} threads")
    print(f"{'delays':8}{'batch':>8}{'GPU sim-steps/s':>18}{'spread %':>10}{'CPU sim-steps/s':>18}{'speedup':>9}")
    for delays in (False, True):
        for batch in BATCHES:
            tag = f"mpr84.f32.batch{batch}{'.delays' if delays else ''}"
            gpu, gpu_spread, gpu_steps = steps_per_s(batch, delays, "cuda")
            cpu, cpu_spread, cpu_steps = steps_per_s(batch, delays, "cpu")
            record(f"gpu.{tag}", gpu, "sim-steps/s", spread_fraction=gpu_spread, n_steps=gpu_steps, **info)
            record(f"cpu.{tag}", cpu, "sim-steps/s", spread_fraction=cpu_spread, n_steps=cpu_steps, **info)
            record(f"gpu.{tag}.speedup", gpu / cpu, "x", **info)
            print(
                f"{'yes' if delays else 'no':8}{batch:>8}{gpu:>18,.0f}{100 * gpu_spread:>10.1f}{cpu:>18,.0f}"
                f"{gpu / cpu:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
