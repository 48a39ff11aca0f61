"""The model contract: every registered model, picked up automatically.

- drift finite at the defaults and at the corners of each parameter's documented range;
- the CPU kernel (float64) equals the float64 NumPy reference with the same noise stream,
  on a 3-node network with delays, to a tolerance derived from the dtype and step count;
- the float32 kernel stays within float32 rounding of the reference;
- same seed -> identical output; a batch of 64 equals four batches of 16, bit for bit;
  one thread equals two threads.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.reference import reference_run
from vbi_dask.connectome import Connectome
from vbi_dask.models import MODELS
from vbi_dask.monitors import Bold, TemporalAverage
from vbi_dask.simulation import Simulation

MODEL_NAMES = sorted(MODELS)
N_STEPS = 60


def tiny_connectome(n: int = 3) -> Connectome:
    rng = np.random.default_rng(7)
    w = rng.uniform(0.2, 1.0, (n, n))
    np.fill_diagonal(w, 0.0)
    w[0, 2] = 0.0  # a missing edge
    lengths = rng.uniform(1.0, 4.0, (n, n))
    lengths = (lengths + lengths.T) / 2
    np.fill_diagonal(lengths, 0.0)
    return Connectome(weights=w, tract_lengths_mm=lengths, name="tiny")


def noisy(model) -> dict:
    """Every state noisy (exercises the generator for all state slots), scaled to its range."""
    return {s.name: 0.01 * max(1e-3, abs(s.initial[1] - s.initial[0])) for s in model.states}


def tiny_simulation(name: str, dtype: str = "float64", delays: bool = True, **kw) -> Simulation:
    model = MODELS[name]
    dt = model.dt_ms
    return Simulation(
        name,
        connectome=tiny_connectome(),
        dt_ms=dt,
        duration_ms=N_STEPS * dt,
        noise=kw.pop("noise", noisy(model)),
        speed_mm_per_ms=(4.0 / (3 * dt)) if delays else None,  # delays of 0..3 steps
        monitors=kw.pop("monitors", (TemporalAverage(4 * dt), Bold(tr_ms=20 * dt, dt_ms=5 * dt))),
        dtype=dtype,
        **kw,
    )


def varied_params(name: str, n_sims: int) -> dict:
    """G per simulation and the first parameter per node: exercises both broadcast paths."""
    model = MODELS[name]
    lo, hi = model.G.range
    params = {"G": xr.DataArray(np.linspace(lo + 0.25 * (hi - lo), lo + 0.5 * (hi - lo), n_sims), dims="sim")}
    first = model.params[0]
    span = first.range[1] - first.range[0]
    params[first.name] = xr.DataArray(first.default + 0.05 * span * np.array([-1.0, 0.0, 1.0]), dims="node")
    return params


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_drift_finite_at_defaults_and_range_corners(name):
    model = MODELS[name]
    points = [{}]
    for p in model.params:
        points += [{p.name: p.range[0]}, {p.name: p.range[1]}]
    points += [{p.name: p.range[0] for p in model.params}, {p.name: p.range[1] for p in model.params}]
    for values in points:
        for ftype in (np.float32, np.float64):
            d = model.drift_at(values, ftype=ftype)
            assert len(d) == len(model.states)
            assert np.all(np.isfinite(np.asarray(d, dtype=np.float64))), (name, values, d)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_kernel_equals_numpy_reference(name):
    n_sims = 16  # a whole SIMD block: the shell the CUDA tests compare with (compiled once)
    sim = tiny_simulation(name, "float64")
    params = varied_params(name, n_sims)
    ds = sim.run_arrays(params, n_sims=n_sims, seed=11, first_sim=5, threads=1)
    ref = reference_run(sim, params, n_sims, seed=11, first_sim=5)
    eps = np.finfo(np.float64).eps
    for key in ("sampled", "bold"):
        got, want = ds[key], ref[key]
        assert got.shape == want.shape, key
        scale = np.maximum(1.0, np.abs(want))
        # rounding differences (summation order) grow at most linearly with the steps
        tol = 1e3 * N_STEPS * eps
        assert np.all(np.abs(got - want) <= tol * scale), (key, np.max(np.abs(got - want) / scale))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float32_kernel_within_float32_rounding(name):
    n_sims = 16
    sim32 = tiny_simulation(name, "float32")
    sim64 = tiny_simulation(name, "float64")
    params = varied_params(name, n_sims)
    got = sim32.run_arrays(params, n_sims=n_sims, seed=3, threads=1)["sampled"].astype(np.float64)
    want = sim64.run_arrays(params, n_sims=n_sims, seed=3, threads=1)["sampled"]
    scale = np.maximum(1.0, np.abs(want))
    tol = 1e2 * N_STEPS * np.finfo(np.float32).eps
    assert np.all(np.abs(got - want) <= tol * scale), np.max(np.abs(got - want) / scale)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reproducible_and_batch_invariant(name):
    sim = tiny_simulation(name, "float32")
    model = MODELS[name]
    lo, hi = model.G.range
    G = np.linspace(lo, lo + 0.5 * (hi - lo), 64)
    whole = sim.run_arrays({"G": G}, seed=42, threads=1)
    again = sim.run_arrays({"G": G}, seed=42, threads=2)
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(whole[key], again[key])
        parts = [sim.run_arrays({"G": G[k : k + 16]}, seed=42, first_sim=k, threads=1)[key] for k in range(0, 64, 16)]
        np.testing.assert_array_equal(whole[key], np.concatenate(parts, axis=-1))
        single = sim.run_arrays({"G": G[37:38]}, seed=42, first_sim=37, threads=1)[key]
        np.testing.assert_array_equal(whole[key][..., 37:38], single)
    other = sim.run_arrays({"G": G}, seed=43, threads=1)["sampled"]
    if any(v > 0 for v in sim.noise.values()):
        assert not np.array_equal(whole["sampled"], other)


def test_every_model_has_an_independent_truth_check():
    """Each registered model is checked against a published or analytic result
    (``tests/models/test_physics.py`` records which model each check covers)."""
    from tests.models.test_physics import CHECKED

    assert sorted(CHECKED) == sorted(MODELS), (
        f"models without an independent-truth check: {sorted(set(MODELS) - set(CHECKED))}; "
        f"checks of unregistered models: {sorted(set(CHECKED) - set(MODELS))}"
    )
