"""Kernel throughput: MPR on the 84-region default connectome, dt 0.01 ms, stochastic Heun.

Single thread (run through `make bench`, which sets the thread variables), float32 and
float64, batch 1 to 1024, with and without BOLD, with and without delays (10 mm/ms);
simulation-steps/s and node-steps/s (median of repeats, spread = max - min), the
machine's float32 GEMM GFLOP/s measured in the same run, and the 2-core speedup.
"""

from __future__ import annotations

import sys

import numpy as np

from _common import gemm_f32_gflops, mpr84, record, single_thread_env, timeit
from vbi_dask import default_connectome

BATCHES = (1, 16, 64, 256, 1024)
WORK = 300_000  # simulation-steps per timed call (n_steps = WORK / batch, clipped)


def main() -> int:
    if not single_thread_env():
        print("note: run through `make bench` for single-threaded BLAS", file=sys.stderr)
    gemm = gemm_f32_gflops()
    record("machine.gemm_f32_gflops", gemm, "GFLOP/s")
    conn = default_connectome()
    nnz = int(np.count_nonzero(conn.weights))
    print(f"float32 GEMM (1 thread): {gemm:.1f} GFLOP/s; MPR-84: {nnz} edges")
    print(f"{'dtype':8}{'BOLD':6}{'delays':8}{'batch':>6}{'steps':>8}{'sim-steps/s':>14}{'spread %':>10}"
          f"{'node-steps/s':>15}{'coupling GFLOP/s':>18}")
    best: dict[tuple, float] = {}
    for dtype in ("float32", "float64"):
        for bold in (False, True):
            for delays in (False, True):
                for batch in BATCHES:
                    n_steps = int(np.clip(WORK // batch, 200, 20_000))
                    n_steps -= n_steps % 100  # whole BOLD steps
                    sim = mpr84(n_steps=n_steps, dtype=dtype, bold=bold, delays=delays)
                    G = np.linspace(0.3, 0.7, batch)
                    median, spread = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=1), repeats=3)
                    rate = batch * n_steps / median
                    flops = rate * 2 * 2 * nnz / 1e9  # Heun: two coupling sums of nnz multiply-adds
                    key = (dtype, bold, delays)
                    best[key] = max(best.get(key, 0.0), rate)
                    print(f"{dtype:8}{'yes' if bold else 'no':6}{'yes' if delays else 'no':8}{batch:>6}{n_steps:>8}"
                          f"{rate:>14,.0f}{100 * spread / median:>10.1f}{rate * 84:>15,.0f}{flops:>18.1f}")
                    record(f"kernel.mpr84.{dtype[-2:]}.batch{batch}{'.bold' if bold else ''}{'.delays' if delays else ''}",
                           rate, "sim-steps/s", spread_fraction=spread / median)
    record("kernel.mpr84.f32.best", best[("float32", False, False)], "sim-steps/s")
    record("kernel.mpr84.f32.bold.best", best[("float32", True, False)], "sim-steps/s")
    record("kernel.mpr84.f32.delays.best", best[("float32", False, True)], "sim-steps/s")
    record("kernel.mpr84.f64.best", best[("float64", False, False)], "sim-steps/s")

    sim = mpr84(n_steps=400)
    G = np.linspace(0.3, 0.7, 1024)
    one, _ = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=1), repeats=3)
    two, _ = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=2), repeats=3)
    record("kernel.mpr84.f32.2cores.speedup", one / two, "x")
    print(f"\nbest float32: {best[('float32', False, False)]:,.0f} sim-steps/s (target 1,000,000); "
          f"with BOLD {best[('float32', True, False)]:,.0f} (target 800,000); "
          f"with delays {best[('float32', False, True)]:,.0f} (target 300,000); "
          f"float64 {best[('float64', False, False)]:,.0f}")
    print(f"2 threads vs 1 at batch 1024: {one / two:.2f}x (target 1.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
