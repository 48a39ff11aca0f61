"""Benchmark of simulation budgets (run as a script; one thread per worker).

1. ``budget.end_to_end_fraction``: throughput of a whole budget (prior draws, kernel,
   features, Zarr writes, done flags) over kernel-only throughput on the same workload:
   MPR on the 84-region default connectome with BOLD, synchronous scheduler, one thread.
   Target >= 0.85.
2. ``features.speedup_vs_loop``: FC + FCD + PSD of 84-region BOLD, batched over
   simulations (FeatureSet.compute) versus a per-simulation NumPy/SciPy loop
   (``np.corrcoef``, a loop over FCD windows, ``scipy.signal.welch``) computing the same
   numbers (checked). Target >= 20.
3. ``budget.driver_peak_rss_ratio_10x``: peak RSS of the driver process (client and
   scheduler of a LocalCluster) for a budget of 10x more blocks over that of the smaller
   one, each in a fresh process. Target: flat (~1).
4. ``budget.realistic.sim_minutes_per_core_hour``: the workload that decides how long a
   study takes. MPR on the 84-region connectome with delays at 5 mm/ms, dt 0.01 ms,
   BOLD at TR 2 s, 60 s recorded after a 10 s transient, FC + FCD + PSD of the BOLD,
   through ``Budget.run`` on a LocalCluster of one single-threaded worker: recorded
   minutes of simulation per core-hour, end to end, with the kernel-only figure (the
   worker's simulate time) and where the rest goes (features, writes, scheduling).

Prints a table and appends one JSON object per measurement (``name``, ``value``, ``unit``,
details) to ``bench.jsonl`` at the repository root.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vbi_dask import Bold, Simulation, TemporalAverage  # noqa: E402
from vbi_dask.budget import Budget  # noqa: E402
from vbi_dask.features import FeatureSet  # noqa: E402
from vbi_dask.prior import Prior  # noqa: E402

FCD = {"name": "fcd", "window_samples": 10, "step_samples": 2}
PSD = {"name": "psd", "nperseg": 32, "bands": {"slow": [0.1, 1.0], "fast": [1.0, 4.0]}}


def _mpr_budget(n_sims: int, chunk_size: int) -> Budget:
    sim = Simulation("mpr", dt_ms=0.05, duration_ms=4000.0, monitors=(Bold(tr_ms=100.0),))
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -5.0, "high": -4.0, "nodes": "all"}}, model="mpr", n_nodes=84)
    return Budget(sim, prior, n_sims=n_sims, features=["fc", FCD, PSD], chunk_size=chunk_size, seed=1)


def bench_end_to_end(repeats: int = 2) -> dict:
    """Best of ``repeats`` interleaved runs of the kernel alone and of the whole budget."""
    budget = _mpr_budget(n_sims=64, chunk_size=16)
    blocks = budget.blocks()
    draws = [
        budget.prior.to_params(budget.prior.sample(e - s, seed=1, first_sim=s).astype(np.float32).astype(float))
        for s, e in blocks
    ]
    budget.simulation.run_arrays(draws[0], n_sims=16, seed=1, threads=1)  # load the compiled kernel
    kernel_s, budget_s = [], []
    folder = Path(tempfile.mkdtemp(prefix="bench_budget_"))
    try:
        for r in range(repeats):
            t0 = time.perf_counter()
            for (s, e), params in zip(blocks, draws):
                budget.simulation.run_arrays(params, n_sims=e - s, seed=1, first_sim=s, threads=1)
            kernel_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            summary = budget.run(folder / f"run{r}.zarr", scheduler="sync", progress=False)
            budget_s.append(time.perf_counter() - t0)
            assert summary.done == budget.n_sims and summary.failed == 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    n = budget.n_sims
    return {
        "kernel_sims_per_s": n / min(kernel_s),
        "budget_sims_per_s": n / min(budget_s),
        "fraction": min(kernel_s) / min(budget_s),
        "n_sims": n,
        "timings": summary.timings_s,
    }


REALISTIC_PSD = {"name": "psd", "nperseg": 16, "bands": {"slow": [0.01, 0.08], "fast": [0.08, 0.25]}}


def _realistic_budget(n_sims: int, t_cut_ms: float, recorded_ms: float) -> Budget:
    sim = Simulation(
        "mpr",
        dt_ms=0.01,
        duration_ms=t_cut_ms + recorded_ms,
        t_cut_ms=t_cut_ms,
        speed_mm_per_ms=5.0,
        monitors=(Bold(tr_ms=2000.0),),
    )
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -5.0, "high": -4.0, "nodes": "all"}}, model="mpr", n_nodes=84)
    return Budget(sim, prior, n_sims=n_sims, features=["fc", FCD, REALISTIC_PSD], chunk_size=n_sims, seed=1)


def _warm_worker(budget: Budget) -> float:
    """Load the compiled kernel and features in a worker (what a long study pays once)."""
    import dataclasses

    t0 = time.perf_counter()
    short = dataclasses.replace(budget.simulation, duration_ms=2000.0, t_cut_ms=0.0)
    G = np.linspace(0.2, 0.8, budget.chunk_size)
    short.run_arrays({"G": G}, seed=0, threads=1)
    n_time = budget.layout.signals[0].n_time
    budget.features.compute(np.random.default_rng(0).standard_normal((2, n_time, 84)), budget.layout.signals[0].dt_ms)
    return time.perf_counter() - t0


def bench_realistic(n_sims: int = 16, t_cut_ms: float = 10_000.0, recorded_ms: float = 60_000.0) -> dict:
    from distributed import Client, LocalCluster

    budget = _realistic_budget(n_sims, t_cut_ms, recorded_ms)
    single = {k: "1" for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    folder = Path(tempfile.mkdtemp(prefix="bench_realistic_"))
    try:
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", env=single
            ) as cluster,
            Client(cluster) as client,
        ):
            warm_s = list(client.run(_warm_worker, budget).values())[0]
            t0 = time.perf_counter()
            summary = budget.run(folder / "realistic.zarr", scheduler=client, progress=False)
            wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert summary.done == n_sims and summary.failed == 0, summary
    timings = dict(summary.timings_s)
    recorded_min = n_sims * recorded_ms / 60_000
    sim_steps = n_sims * budget.simulation.n_steps
    parts = {k: v / wall for k, v in timings.items()}
    parts["scheduling_and_other"] = 1.0 - sum(parts.values())
    return {
        "value": recorded_min / (wall / 3600),
        "kernel_only": recorded_min / (timings["simulate_s"] / 3600),
        "integrated_minutes_per_core_hour": n_sims * budget.simulation.duration_ms / 60_000 / (wall / 3600),
        "kernel_sim_steps_per_s": sim_steps / timings["simulate_s"],
        "wall_s": wall,
        "warm_up_s": warm_s,
        "fractions": parts,
        "timings_s": timings,
        "n_sims": n_sims,
        "invalid": summary.invalid,
    }


def _loop_features(x: np.ndarray, dt_ms: float, fcd: dict, psd: dict) -> np.ndarray:
    """FC + FCD + PSD one simulation at a time, the straightforward NumPy/SciPy way."""
    import scipy.signal

    n_sims, n_time, n_nodes = x.shape
    iu = np.triu_indices(n_nodes, 1)
    window, step = fcd["window_samples"], fcd["step_samples"]
    starts = range(0, n_time - window + 1, step)
    iw = np.triu_indices(len(starts), 1)
    disjoint = (iw[1] - iw[0]) * step >= window
    fs = 1000.0 / dt_ms
    rows = []
    for sim in range(n_sims):
        s = x[sim]
        fc = np.corrcoef(s.T)[iu]
        windows = np.array([np.corrcoef(s[t : t + window].T)[iu] for t in starts])
        upper = np.corrcoef(windows)[iw]
        fcd_stats = [upper.var(), *np.quantile(upper, [0.1, 0.25, 0.5, 0.75, 0.9]), upper.mean(), upper[disjoint].var()]
        freqs, density = scipy.signal.welch(s, fs=fs, nperseg=psd["nperseg"], axis=0)
        df = freqs[1] - freqs[0]
        bands = [density[(freqs >= lo) & (freqs < hi)].sum(0) * df for lo, hi in psd["bands"].values()]
        total = density.sum(0) * df
        stats = bands + [b / total for b in bands] + [freqs[1:][np.argmax(density[1:], axis=0)]]
        rows.append(np.concatenate([fc, fcd_stats, [v.mean() for v in stats]]))
    return np.array(rows)


def bench_features(
    n_sims: int = 64, n_time: int = 300, n_nodes: int = 84, dt_ms: float = 2000.0, repeats: int = 5
) -> dict:
    """BOLD-like signals (TR 2 s, 10 min): a shared component plus noise. Medians of
    ``repeats`` interleaved runs after a warm-up run."""
    rng = np.random.default_rng(0)
    common = rng.standard_normal((n_sims, n_time, 3))
    x = common @ rng.uniform(-1, 1, (3, n_nodes)) + rng.standard_normal((n_sims, n_time, n_nodes))
    psd = {"name": "psd", "nperseg": 32, "bands": {"slow": [0.01, 0.08], "fast": [0.08, 0.25]}}
    features = FeatureSet(["fc", FCD, psd])
    batched, _ = features.compute(x, dt_ms)  # warm up, and the numbers to check
    looped = _loop_features(x, dt_ms, FCD, psd)
    np.testing.assert_allclose(batched, looped, rtol=2e-4, atol=2e-5)  # the same numbers
    times = {"batched": [], "loop": []}
    for _ in range(repeats):  # interleaved: both see the same machine load
        for name, run in (
            ("batched", lambda: features.compute(x, dt_ms)),
            ("loop", lambda: _loop_features(x, dt_ms, FCD, psd)),
        ):
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    batched_s, loop_s = (float(np.median(times[k])) for k in ("batched", "loop"))
    spread = {f"{k}_spread_ms_per_sim": 1e3 * (max(v) - min(v)) / n_sims for k, v in times.items()}
    return {
        "batched_ms_per_sim": 1e3 * batched_s / n_sims,
        "loop_ms_per_sim": 1e3 * loop_s / n_sims,
        "speedup": loop_s / batched_s,
        "n_sims": n_sims,
        "n_time": n_time,
        "n_features": batched.shape[1],
        "repeats": repeats,
        **spread,
    }


def _rss_child(n_sims: int, store: str) -> None:
    """One budget on a LocalCluster of 2 single-threaded workers; print the driver's peak RSS."""
    from distributed import Client, LocalCluster

    sim = Simulation("mpr", dt_ms=0.1, duration_ms=100.0, monitors=(TemporalAverage(10.0),))
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -5.0, "high": -4.0, "nodes": "all"}}, model="mpr", n_nodes=84)
    budget = Budget(sim, prior, n_sims=n_sims, features=["moments"], chunk_size=16, seed=1)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env={"NUMBA_NUM_THREADS": "1"}
        ) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        summary = budget.run(store, scheduler=client, progress=False)
        wall = time.perf_counter() - t0
    assert summary.done == n_sims, summary
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "blocks": len(budget.blocks()), "wall_s": wall}))


def _peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM (ru_maxrss survives exec and would report
    the parent's peak when that is higher)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_driver_memory(n_small: int = 480) -> dict:
    results = {}
    folder = Path(tempfile.mkdtemp(prefix="bench_rss_"))
    try:
        for n in (n_small, 10 * n_small):
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(n), str(folder / f"{n}.zarr")],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            results[n] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    small, large = results[n_small], results[10 * n_small]
    return {"ratio": large["peak_rss_mb"] / small["peak_rss_mb"], "small": small, "large": large}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss-child", nargs=2, metavar=("N_SIMS", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench.jsonl"), help="JSON lines file to append to")
    parser.add_argument("--only", choices=["realistic"], help="run one benchmark")
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(int(args.rss_child[0]), args.rss_child[1])
        return
    t0 = time.perf_counter()
    real = bench_realistic()
    real_record = {
        "name": "budget.realistic.sim_minutes_per_core_hour",
        "value": real["value"],
        "unit": "sim-min/core-h",
        "workload": "mpr, 84 nodes, delays 5 mm/ms, dt 0.01 ms, BOLD TR 2 s, 60 s recorded after 10 s, "
        f"fc+fcd+psd, {real['n_sims']} sims, LocalCluster of 1 single-threaded worker",
        **{k: v for k, v in real.items() if k != "value"},
    }
    real_row = (
        "budget.realistic.sim_minutes_per_core_hour",
        f"{real['value']:.1f}",
        f"kernel only {real['kernel_only']:.1f} ({real['kernel_sim_steps_per_s']:,.0f} sim-steps/s); "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in real["fractions"].items()),
        "recorded",
    )
    if args.only == "realistic":
        print("  ".join(real_row))
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(real_record) + "\n")
        return
    e2e = bench_end_to_end()
    feats = bench_features()
    rss = bench_driver_memory()
    context = {
        "bench": "bench_budget",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "threads_per_worker": 1,
    }
    records = [
        {
            "name": "budget.end_to_end_fraction",
            "value": e2e["fraction"],
            "unit": "fraction",
            "target": ">= 0.85",
            "workload": "mpr, 84 nodes, BOLD (tr 100 ms), 4 s at dt 0.05 ms, 64 sims in chunks of 16, fc+fcd+psd",
            "kernel_sims_per_s": e2e["kernel_sims_per_s"],
            "budget_sims_per_s": e2e["budget_sims_per_s"],
        },
        {
            "name": "features.speedup_vs_loop",
            "value": feats["speedup"],
            "unit": "x",
            "target": ">= 20",
            "workload": f"fc+fcd+psd, {feats['n_sims']} sims x {feats['n_time']} BOLD samples x 84 nodes",
            "batched_ms_per_sim": feats["batched_ms_per_sim"],
            "loop_ms_per_sim": feats["loop_ms_per_sim"],
        },
        {
            "name": "budget.driver_peak_rss_ratio_10x",
            "value": rss["ratio"],
            "unit": "ratio",
            "target": "~1 (flat)",
            "small": rss["small"],
            "large": rss["large"],
        },
        real_record,
    ]
    rows = [
        (
            "budget.end_to_end_fraction",
            f"{e2e['fraction']:.3f}",
            f"budget {e2e['budget_sims_per_s']:.2f} sims/s vs kernel {e2e['kernel_sims_per_s']:.2f} sims/s",
            ">= 0.85",
        ),
        (
            "features.speedup_vs_loop",
            f"{feats['speedup']:.1f}x",
            f"{feats['batched_ms_per_sim']:.2f} vs {feats['loop_ms_per_sim']:.2f} ms/sim",
            ">= 20",
        ),
        (
            "budget.driver_peak_rss_ratio_10x",
            f"{rss['ratio']:.3f}",
            f"{rss['small']['peak_rss_mb']:.0f} MB ({rss['small']['blocks']} blocks) -> "
            f"{rss['large']['peak_rss_mb']:.0f} MB ({rss['large']['blocks']} blocks)",
            "~1",
        ),
        real_row,
    ]
    width = [max(len(r[i]) for r in rows + [("measurement", "value", "detail", "target")]) for i in range(4)]
    for row in [("measurement", "value", "detail", "target")] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, width)))
    print(f"(bench_budget: {time.perf_counter() - t0:.0f} s)")
    with open(args.out, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({**record, **context}) + "\n")


if __name__ == "__main__":
    main()
