"""Stimuli: patterns against hand-computed values, the kernel against the float64
reference, a pulse seen at the neighbours after the conduction delay, a linear response
to the amplitude (inferred through a prior), descriptions, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import vbi_dask as vd
from vbi_dask import Connectome, Simulation
from vbi_dask.monitors import Raw
from vbi_dask.stimulus import Pulses, Samples, Sinusoid, Stimulus

from tests.models.test_contract import tiny_simulation, varied_params
from tests.reference import reference_run


def test_patterns_are_the_hand_computed_time_courses():
    t = np.array([0.0, 9.0, 10.0, 14.0, 15.0, 29.0, 30.0, 34.9, 50.0, 54.0, 70.0])
    pulses = Pulses(onset_ms=10.0, width_ms=5.0, period_ms=20.0, count=2)
    np.testing.assert_array_equal(pulses(t), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(Pulses(onset_ms=10.0, width_ms=5.0)(t), [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    sine = Sinusoid(frequency_hz=10.0, phase=0.5, onset_ms=10.0, duration_ms=50.0)
    expected = np.where((t >= 10) & (t < 60), np.sin(2 * np.pi * 10.0 * (t - 10) / 1000 + 0.5), 0.0)
    np.testing.assert_allclose(sine(t), expected, rtol=0, atol=1e-15)
    samples = Samples([0.0, 2.0, -1.0], dt_ms=10.0, onset_ms=5.0)
    np.testing.assert_allclose(
        samples(np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0])), [0.0, 0.0, 1.0, 2.0, 0.5, -1.0, 0.0]
    )


@pytest.mark.parametrize("integrator", ["heun", "euler", "rk4"])
def test_the_kernel_equals_the_float64_reference(integrator):
    stimulus = Stimulus(Sinusoid(frequency_hz=40.0, onset_ms=0.02), state="v", nodes=[1], amplitude=0.7)
    noise = {"r": 0.0, "v": 0.0} if integrator == "rk4" else None
    sim = tiny_simulation(
        "mpr",
        "float64",
        delays=integrator != "rk4",
        integrator=integrator,
        stimulus=stimulus,
        **({"noise": noise} if noise else {}),
    )
    params = {**varied_params("mpr", 4), "stimulus_amplitude": xr.DataArray([0.0, 0.5, 1.0, 3.0], dims="sim")}
    got = sim.run_arrays(dict(params), n_sims=4, seed=11, first_sim=5, threads=1)
    ref = reference_run(sim, params, 4, seed=11, first_sim=5)
    for key in ("sampled", "bold"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-9, atol=1e-12)
    without = sim.run_arrays({**varied_params("mpr", 4), "stimulus_amplitude": 0.0}, n_sims=4, seed=11, first_sim=5)
    np.testing.assert_array_equal(without["sampled"][..., 0], got["sampled"][..., 0])  # amplitude 0: no input
    assert not np.allclose(got["sampled"][..., 3], got["sampled"][..., 0])


def chain_simulation(**kw) -> Simulation:
    """0 -> 1 -> 2 (row i receives from column j), 50 mm tracts at 1 mm/ms: 5 steps of 10 ms;
    the Hopf model below its bifurcation, at rest (0) and without noise."""
    weights = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    connectome = Connectome(weights=weights, tract_lengths_mm=np.full((3, 3), 50.0) - 50 * np.eye(3), name="chain")
    return Simulation(
        "hopf",
        connectome=connectome,
        duration_ms=1500.0,
        noise={"x": 0.0, "y": 0.0},
        speed_mm_per_ms=1.0,
        initial_state={"x": 0.0, "y": 0.0},
        monitors=(Raw(10.0),),
        stimulus=Stimulus(Pulses(onset_ms=500.0, width_ms=50.0), state="x", nodes=[0]),
        dtype="float64",
        **kw,
    )


def test_a_pulse_reaches_the_neighbours_after_the_conduction_delay():
    sim = chain_simulation()
    delay_ms = sim.connectome.delay_steps(1.0, sim.dt_ms)[1, 0] * sim.dt_ms
    assert delay_ms == 50.0
    ds = sim.run({"G": 1.0, "a": -1.0}, seed=0)
    first = [float(ds.time[np.flatnonzero(ds.x.values[0, :, node] != 0)[0]]) for node in range(3)]
    # Heun: the pulse enters node 0 in the step ending at its onset; each edge adds its delay
    assert first == [500.0, 500.0 + delay_ms, 500.0 + 2 * delay_ms]
    assert np.all(ds.x.values[0, ds.time.values < 500.0] == 0.0)  # quiet before


def test_the_response_is_linear_in_the_amplitude_and_the_amplitude_can_be_inferred(tmp_path):
    sim = chain_simulation()
    small = sim.run({"G": 1.0, "a": -1.0, "stimulus_amplitude": [1e-4, 3e-4]}, seed=0)
    x = small.x.values
    moved = x[0] != 0
    # the Hopf model is linear near rest: three times the input, three times the response
    np.testing.assert_allclose(x[1][moved], 3 * x[0][moved], rtol=1e-6)
    prior = vd.Prior({"stimulus_amplitude": (1e-4, 5e-4)}, model="hopf", n_nodes=3)
    budget = vd.Budget(sim, prior, n_sims=6, features=[{"name": "moments", "stats": ["std"]}], chunk_size=3, seed=2)
    budget.run(tmp_path / "stim.zarr", scheduler="sync", progress=False)
    ds = vd.open_store(tmp_path / "stim.zarr")
    amplitude = ds.theta.sel(param="stimulus_amplitude").values.astype(np.float64)
    std = ds.features.sel(feature="std[0]").values.astype(np.float64)
    np.testing.assert_allclose(std / amplitude, (std / amplitude)[0], rtol=1e-4)  # the drawn amplitude drives it


def test_description_round_trip_and_old_descriptions():
    sim = chain_simulation()
    again = Simulation.from_dict(sim.to_dict(), sim.connectome)
    assert again.stimulus == sim.stimulus and again.to_dict() == sim.to_dict()
    assert "stimulus" not in Simulation("mpr").to_dict()  # stores made before stimuli keep their identity
    spec = sim.to_dict()["stimulus"]
    assert spec == {
        "pattern": {"kind": "pulses", "onset_ms": 500.0, "width_ms": 50.0, "period_ms": None, "count": None},
        "state": "x",
        "nodes": [0],
        "weights": None,
        "amplitude": 1.0,
    }


def test_bad_stimuli_are_refused():
    with pytest.raises(KeyError, match="unknown state 'q' for the stimulus; states of hopf: x, y"):
        Simulation("hopf", monitors=(Raw(10.0),), stimulus=Stimulus(Pulses(0.0, 1.0), state="q", nodes=[0]))
    with pytest.raises(ValueError, match=r"stimulus nodes \[90\] outside the connectome's 84 regions"):
        Simulation("mpr", stimulus=Stimulus(Pulses(0.0, 1.0), state="v", nodes=[90]))
    with pytest.raises(ValueError, match="'stimulus_amplitude' given, but the simulation has no stimulus"):
        Simulation("mpr", duration_ms=1.0).run_arrays({"stimulus_amplitude": 1.0})
    with pytest.raises(ValueError, match="the prior draws 'stimulus_amplitude' but the simulation has no stimulus"):
        vd.Budget(
            Simulation("mpr", duration_ms=10.0),
            vd.Prior({"stimulus_amplitude": (0, 1)}, model="mpr", n_nodes=84),
            n_sims=2,
            features=["fc"],
        )
    with pytest.raises(ValueError, match="width_ms \\(30.0\\) exceeds period_ms \\(20.0\\)"):
        Pulses(0.0, 30.0, period_ms=20.0)
    with pytest.raises(ValueError, match="unknown stimulus pattern 'ramp'"):
        Stimulus({"kind": "ramp"}, state="v", nodes=[0])
