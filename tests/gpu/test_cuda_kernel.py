"""The CUDA shell reproduces the CPU shell: every model, the same seed, the same noise.

Tiny configurations (3 nodes with delays of 0..3 steps, every state noisy, temporal
average and BOLD monitors, 16 simulations, 60 steps) so that the CUDA simulator, which
runs each GPU thread as a Python thread, stays fast. In the simulator float64 results
are bit-identical to the CPU's (NumPy float64 scalars round like compiled code); float32
ones differ in the last bits where an equation calls ``math`` functions, which the
simulator evaluates in float64. On a GPU, fused multiply-adds and libdevice's functions
round differently: the comparison is within ``factor * N_STEPS * eps(dtype)``, the
rounding differences growing at most linearly with the steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda  # a module global: the simulator swaps it inside kernels

from tests.gpu import SIMULATOR, requires_cuda
from tests.models.test_contract import N_STEPS, tiny_simulation, varied_params
from vbi_dask.backend import resolve_backend
from vbi_dask.models import MODELS
from vbi_dask.monitors import Raw

pytestmark = [
    requires_cuda,
    # The simulator computes float32 math.exp in float64; NumPy warns when an overflowing
    # result is cast back to float32 (compiled code gives the same inf silently).
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]

MODEL_NAMES = sorted(MODELS)
N_SIMS = 16


def assert_matches(got: np.ndarray, want: np.ndarray, dtype: str, exact: bool):
    assert got.shape == want.shape
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(want))
    if exact:
        np.testing.assert_array_equal(got, want)
        return
    factor = 1e2 if dtype == "float32" else 1e3
    tol = factor * N_STEPS * np.finfo(dtype).eps
    scale = np.maximum(1.0, np.abs(want.astype(np.float64)))
    err = np.abs(got.astype(np.float64) - want) / scale
    assert err.max() <= tol, f"max relative error {err.max():.3g} > {tol:.3g}"


def run_both(sim, params, **kw):
    cpu = sim.run_arrays(params, n_sims=N_SIMS, seed=11, first_sim=5, threads=1, backend="cpu", **kw)
    gpu = sim.run_arrays(params, n_sims=N_SIMS, seed=11, first_sim=5, backend="cuda", **kw)
    return cpu, gpu


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cuda_equals_cpu(name, dtype):
    """Noise, delays, temporal average and BOLD, per-simulation G and per-node parameter."""
    sim = tiny_simulation(name, dtype)  # the contract tests' configurations: CPU kernels cached
    cpu, gpu = run_both(sim, varied_params(name, N_SIMS))
    for key in ("sampled", "bold"):
        assert cpu[key].size > 0
        assert_matches(gpu[key], cpu[key], dtype, exact=SIMULATOR and dtype == "float64")


@pytest.mark.parametrize("integrator, noisy, delays", [("rk4", False, False), ("euler", True, True)])
def test_raw_monitor_and_other_integrators(integrator, noisy, delays):
    """MPR's equations use + - * / only, and the generator IEEE operations and sqrt: in the
    simulator float32 results are then bit-identical too."""
    kw = {} if noisy else {"noise": {"r": 0.0, "v": 0.0}}
    sim = tiny_simulation(
        "mpr", "float32", delays=delays, integrator=integrator, monitors=(Raw(3 * MODELS["mpr"].dt_ms),), **kw
    )
    cpu, gpu = run_both(sim, varied_params("mpr", N_SIMS))
    assert gpu["bold"].size == 0  # not monitored: nothing comes back
    assert_matches(gpu["sampled"], cpu["sampled"], "float32", exact=SIMULATOR)


def test_schedule_does_not_change_results(monkeypatch):
    """Chunks of simulations and launches of a few steps give the one-launch result, bit
    for bit, and the chunk of simulations 16..31 gets the same noise as in the batch."""
    from vbi_dask.kernels import cuda

    sim = tiny_simulation("mpr", "float32")
    G = np.linspace(0.3, 0.6, 2 * N_SIMS)
    whole = sim.run_arrays({"G": G}, seed=3, backend="cuda")
    kernel = cuda.build_kernel(sim.kernel_config())
    plan = sim._graph
    per_sim = cuda.bytes_per_sim(
        kernel.cfg,
        3,
        len(sim.model.all_params),
        plan.ring,
        plan.block,
        whole["sampled"].shape[0],
        whole["bold"].shape[0],
    )
    monkeypatch.setattr(cuda, "_free_device_memory", lambda: int(N_SIMS * per_sim / cuda.MEMORY_FRACTION) + 1)
    monkeypatch.setattr(cuda, "STEPS_PER_LAUNCH", 7)
    split = sim.run_arrays({"G": G}, seed=3, backend="cuda")
    part = sim.run_arrays({"G": G[N_SIMS:]}, seed=3, first_sim=N_SIMS, backend="cuda")
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(split[key], whole[key])
        np.testing.assert_array_equal(part[key], whole[key][..., N_SIMS:])


def test_auto_backend_picks_cuda_and_returns_the_same_dataset():
    assert resolve_backend("auto") == "cuda"
    sim = tiny_simulation("mpr", "float32")
    gpu = sim.run({"G": np.linspace(0.3, 0.6, N_SIMS)}, seed=1, backend="auto")
    cpu = sim.run({"G": np.linspace(0.3, 0.6, N_SIMS)}, seed=1, backend="cpu", threads=1)
    assert gpu.sizes == cpu.sizes
    for var in cpu.data_vars:
        assert_matches(gpu[var].values, cpu[var].values, "float32", exact=SIMULATOR)


def test_generator_on_the_device_matches_the_cpu():
    """The same source (rng.make_rng) compiled as device functions gives the CPU's variates."""
    from vbi_dask.kernels import rng
    from vbi_dask.kernels.cuda import device_jit

    gen = rng.make_rng(device_jit())
    normals4, normal_pair = gen.normals4, gen.normal_pair

    @cuda.jit
    def draw(seed_lo, seed_hi, steps, out4, out2):
        k = cuda.grid(1)
        if k < steps.shape[0]:
            c = np.uint64(steps[k])
            out4[k, 0], out4[k, 1], out4[k, 2], out4[k, 3] = normals4(
                seed_lo, seed_hi, c, np.uint64(2), np.uint64(9), np.uint64(0)
            )
            out2[k, 0], out2[k, 1] = normal_pair(seed_lo, seed_hi, c, np.uint64(2), np.uint64(9), np.uint64(0))

    seed = (7 << 32) | 123
    steps = np.arange(0, 64 * 1000, 1000, dtype=np.uint64)
    d4, d2 = cuda.device_array((64, 4), np.float32), cuda.device_array((64, 2), np.float32)
    lo, hi = rng.split_seed(seed)
    draw[2, 32](np.uint64(lo), np.uint64(hi), cuda.to_device(steps), d4, d2)
    want = rng.normals_numpy(seed, steps, 2, 9)
    got4, got2 = d4.copy_to_host(), d2.copy_to_host()
    if SIMULATOR:
        np.testing.assert_array_equal(got4, want)
        np.testing.assert_array_equal(got2, want[:, :2])
    else:  # fused multiply-adds in the polynomial evaluations: the last bits may differ
        np.testing.assert_allclose(got4, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got2, want[:, :2], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_block_delays_equal_the_cpu(dtype, monkeypatch):
    """The 7-node network of tests/kernels/test_delays.py (delays 0..40 steps: long and
    short edges, several blocks), launches of 23 steps that cut blocks anywhere."""
    from tests.kernels.test_delays import delayed_simulation
    from vbi_dask.kernels import cuda

    sim = delayed_simulation(dtype)
    params = {"G": np.linspace(0.2, 1.0, N_SIMS)}
    cpu, gpu = run_both(sim, params)
    for key in ("sampled", "bold"):
        assert_matches(gpu[key], cpu[key], dtype, exact=SIMULATOR)
    monkeypatch.setattr(cuda, "STEPS_PER_LAUNCH", 23)
    _, cut = run_both(sim, params)
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(cut[key], gpu[key])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stimulus_equals_the_cpu(dtype):
    """A pulse train to two regions' v, its amplitude per simulation: the same input on both shells."""
    from vbi_dask.stimulus import Pulses, Stimulus

    dt = MODELS["mpr"].dt_ms
    stimulus = Stimulus(Pulses(onset_ms=5 * dt, width_ms=3 * dt, period_ms=10 * dt), state="v", nodes=[0, 2])
    sim = tiny_simulation("mpr", dtype, stimulus=stimulus)
    params = {**varied_params("mpr", N_SIMS), "stimulus_amplitude": np.linspace(0.0, 2.0, N_SIMS)}
    cpu, gpu = run_both(sim, params)
    for key in ("sampled", "bold"):
        assert_matches(gpu[key], cpu[key], dtype, exact=SIMULATOR)
    plain = sim.run_arrays(
        {**varied_params("mpr", N_SIMS), "stimulus_amplitude": 0.0}, n_sims=N_SIMS, seed=11, first_sim=5, threads=1
    )
    assert not np.allclose(cpu["sampled"][..., -1], plain["sampled"][..., -1])  # the stimulus acts
