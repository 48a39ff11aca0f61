"""Kernel throughput: MPR on the 84-region default connectome, dt 0.01 ms, stochastic Heun.

Single thread (run through `make bench`, which sets the thread variables), float32 and
float64, batch 1 to 1024, with and without BOLD, with and without delays (10 mm/ms, and
5 mm/ms for the realistic rows); simulation-steps/s (median of repeats, spread = max -
min). In the same run: the machine's float32 GEMM rate and streaming read bandwidth, so
that rates can be read as fractions of what the core can do, and the 2-core speedup.

What bounds the kernel is estimated from the same numbers: the coupling's arithmetic
(multiply-adds over the edges: Heun sums every delay-free edge twice per step, a long
delayed edge once per coupling time) against the GEMM rate, and the history the long
edges stream (one value per long edge per simulation-step) against the read bandwidth.
"""

from __future__ import annotations

import sys

import numpy as np

from _common import gemm_f32_gflops, mpr84, record, single_thread_env, stream_read_gbs, timeit

BATCHES = (1, 16, 64, 256, 1024)
WORK = 300_000  # simulation-steps per timed call (n_steps = WORK / batch, clipped)


def _rate(sim, batch: int, repeats: int = 3) -> tuple[float, float]:
    G = np.linspace(0.3, 0.7, batch)
    median, spread = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=1), repeats=repeats)
    return batch * sim.n_steps / median, spread / median


def _steps(batch: int, delays: bool = False) -> int:
    """Steps of one timed call; with delays at least 3,000 (a run should be long against
    its ~2,500-step history, whose constant initial values every block of lanes writes)."""
    n_steps = int(np.clip(WORK // batch, 3000 if delays else 200, 20_000))
    return n_steps - n_steps % 100  # whole BOLD steps


def _coupling_flops_per_sim_step(sim) -> float:
    """Multiply-adds x 2 of the coupling per simulation-step (Heun)."""
    plan = sim._graph
    if sim.speed_mm_per_ms is None:
        return 2 * 2 * plan.indices.size
    return 2 * (plan.n_long * (plan.block + 1) / plan.block + 2 * plan.n_short)


def main() -> int:
    if not single_thread_env():
        print("note: run through `make bench` for single-threaded BLAS", file=sys.stderr)
    gemm = gemm_f32_gflops()
    bandwidth = stream_read_gbs()
    record("machine.gemm_f32_gflops", gemm, "GFLOP/s")
    record("machine.stream_read_gbs", bandwidth, "GB/s")
    print(f"float32 GEMM (1 thread): {gemm:.1f} GFLOP/s; streaming read (1 thread): {bandwidth:.1f} GB/s")
    print(
        f"{'dtype':8}{'BOLD':6}{'delays':8}{'batch':>6}{'steps':>8}{'sim-steps/s':>14}{'spread %':>10}"
        f"{'coupling GFLOP/s':>18}"
    )
    best: dict[tuple, tuple[float, int]] = {}
    for dtype in ("float32", "float64"):
        tag = "f" + dtype[-2:]
        for bold in (False, True):
            for delays in (False, True):
                for batch in BATCHES:
                    sim = mpr84(n_steps=_steps(batch, delays), dtype=dtype, bold=bold, delays=delays)
                    rate, spread = _rate(sim, batch)
                    flops = rate * _coupling_flops_per_sim_step(sim) / 1e9
                    key = (dtype, bold, delays)
                    if rate > best.get(key, (0.0, 0))[0]:
                        best[key] = (rate, batch)
                    print(
                        f"{dtype:8}{'yes' if bold else 'no':6}{'yes' if delays else 'no':8}{batch:>6}{sim.n_steps:>8}"
                        f"{rate:>14,.0f}{100 * spread:>10.1f}{flops:>18.1f}"
                    )
                    record(
                        f"kernel.mpr84.{tag}.batch{batch}{'.bold' if bold else ''}{'.delays' if delays else ''}",
                        rate,
                        "sim-steps/s",
                        spread_fraction=spread,
                        coupling_gflops=flops,
                    )
    nodelay, delayed = best[("float32", False, False)], best[("float32", False, True)]
    record("kernel.mpr84.f32.best", nodelay[0], "sim-steps/s", batch=nodelay[1], gemm_gflops=gemm)
    record("kernel.mpr84.f32.bold.best", best[("float32", True, False)][0], "sim-steps/s", gemm_gflops=gemm)
    record("kernel.mpr84.f32.delays.best", delayed[0], "sim-steps/s", batch=delayed[1], speed_mm_per_ms=10.0)
    record("kernel.mpr84.f32.delays_vs_nodelay", delayed[0] / nodelay[0], "ratio")
    record("kernel.mpr84.f64.best", best[("float64", False, False)][0], "sim-steps/s")
    record("kernel.mpr84.f64.delays.best", best[("float64", False, True)][0], "sim-steps/s")

    # the realistic conduction speed: 5 mm/ms, up to ~5,000 steps of history
    print("\ndelays at 5 mm/ms (float32):")
    slow_best = 0.0
    for batch in (1, 16, 256):
        sim = mpr84(n_steps=max(_steps(batch, True), 6000), delays=True, speed_mm_per_ms=5.0)
        rate, spread = _rate(sim, batch)
        slow_best = max(slow_best, rate)
        print(f"  batch {batch:>4}: {rate:>12,.0f} sim-steps/s (spread {100 * spread:.1f} %)")
        record(f"kernel.mpr84.f32.batch{batch}.delays5", rate, "sim-steps/s", spread_fraction=spread)
    record("kernel.mpr84.f32.delays5.best", slow_best, "sim-steps/s", speed_mm_per_ms=5.0)

    # what bounds the kernel: fractions of the GEMM rate and of the read bandwidth
    sim = mpr84(n_steps=100)
    flops_nodelay = nodelay[0] * _coupling_flops_per_sim_step(sim) / 1e9
    delayed_sim = mpr84(n_steps=100, delays=True)
    plan = delayed_sim._graph
    history_gbs = delayed[0] * plan.n_long * (plan.block + 1) / plan.block * 4 / 1e9
    record("kernel.mpr84.f32.coupling_fraction_of_gemm", flops_nodelay / gemm, "fraction")
    record(
        "kernel.mpr84.f32.delays.history_fraction_of_bandwidth",
        history_gbs / bandwidth,
        "fraction",
        history_gbs=history_gbs,
        block_steps=plan.block,
        long_edges=plan.n_long,
        short_edges=plan.n_short,
    )

    G = np.linspace(0.3, 0.7, 1024)
    sim = mpr84(n_steps=400)
    one, _ = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=1), repeats=3)
    two, _ = timeit(lambda: sim.run_arrays({"G": G}, seed=0, threads=2), repeats=3)
    record("kernel.mpr84.f32.2cores.speedup", one / two, "x")
    print(
        f"\nbest float32: {nodelay[0]:,.0f} sim-steps/s (target 1,000,000); "
        f"with BOLD {best[('float32', True, False)][0]:,.0f} (target 800,000); "
        f"with delays {delayed[0]:,.0f} (target 300,000), {delayed[0] / nodelay[0]:.2f} of the delay-free rate "
        f"(target 0.5); float64 {best[('float64', False, False)][0]:,.0f}"
    )
    print(
        f"coupling without delays: {flops_nodelay:.1f} GFLOP/s = {flops_nodelay / gemm:.2f} of GEMM; "
        f"history read with delays: {history_gbs:.1f} GB/s = {history_gbs / bandwidth:.2f} of the read bandwidth "
        f"(block of {plan.block} steps, {plan.n_long} long + {plan.n_short} short edges)"
    )
    print(f"2 threads vs 1 at batch 1024: {one / two:.2f}x (target 1.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
