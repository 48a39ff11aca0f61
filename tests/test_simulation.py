"""The Simulation API: named outputs, serialisation, and clear errors on bad input."""

import json

import numpy as np
import pytest
import xarray as xr

from vbi_dask.connectome import Connectome, default_connectome
from vbi_dask.monitors import EEG, MEG, Bold, Raw, TemporalAverage, eeg_leadfield_sphere, meg_leadfield_sphere
from vbi_dask.simulation import Simulation

SMALL = Connectome(
    weights=np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.5, 0.2, 0.0]]),
    tract_lengths_mm=np.array([[0.0, 10.0, 20.0], [10.0, 0.0, 15.0], [20.0, 15.0, 0.0]]),
    labels=("a", "b", "c"),
    centres_mm=np.array([[-40.0, 0.0, 20.0], [40.0, 0.0, 20.0], [0.0, 50.0, 30.0]]),
)


def test_outputs_are_named_xarray_with_units():
    sim = Simulation("mpr", connectome=SMALL, duration_ms=40.0, monitors=(TemporalAverage(1.0), Bold(tr_ms=10.0)))
    ds = sim.run({"G": [0.1, 0.2, 0.3, 0.4]}, seed=0, first_sim=10, threads=1)
    assert isinstance(ds, xr.Dataset)
    assert ds["r"].dims == ("sim", "time", "node") and ds["bold"].dims == ("sim", "time_bold", "node")
    assert list(ds["sim"].values) == [10, 11, 12, 13]
    assert list(ds["node"].values) == ["a", "b", "c"]
    np.testing.assert_allclose(ds["time"].values, np.arange(1, 41) * 1.0)
    np.testing.assert_allclose(ds["time_bold"].values, [10.0, 20.0, 30.0, 40.0])
    assert ds["r"].attrs["units"] == "1/ms" and ds["time"].attrs["units"] == "ms"
    assert ds.attrs["model"] == "mpr" and ds.attrs["connectome_hash"] == SMALL.hash()


def test_default_simulation_uses_embedded_connectome():
    sim = Simulation("mpr", duration_ms=1.0)
    assert sim.connectome.n_nodes == 84
    assert sim.connectome.weights.max() == pytest.approx(1.0)
    assert sim.dt_ms == sim.model.dt_ms


def test_t_cut_drops_the_transient_exactly():
    full = Simulation("mpr", connectome=SMALL, duration_ms=20.0, monitors=(Raw(1.0),))
    cut = Simulation("mpr", connectome=SMALL, duration_ms=20.0, t_cut_ms=5.0, monitors=(Raw(1.0),))
    a, b = full.run(n_sims=2, seed=4, threads=1), cut.run(n_sims=2, seed=4, threads=1)
    np.testing.assert_array_equal(a["r"].sel(time=b["time"]).values, b["r"].values)


def test_serialisation_round_trip():
    sim = Simulation(
        "jansen_rit",
        connectome=SMALL,
        duration_ms=10.0,
        speed_mm_per_ms=5.0,
        monitors=(TemporalAverage(2.0), Bold(tr_ms=5.0, dt_ms=1.0, constants={"tau": 1.0})),
    )
    spec = json.loads(json.dumps(sim.to_dict()))
    again = Simulation.from_dict(spec, SMALL)
    assert again.to_dict() == sim.to_dict()
    with pytest.raises(ValueError, match="connectome mismatch"):
        Simulation.from_dict(spec, default_connectome())


def test_eeg_projection_matches_gain():
    gain = eeg_leadfield_sphere(SMALL.centres_mm)
    sim = Simulation("jansen_rit", connectome=SMALL, duration_ms=20.0, monitors=(EEG(gain=gain, period_ms=1.0),))
    tavg = Simulation("jansen_rit", connectome=SMALL, duration_ms=20.0, monitors=(TemporalAverage(1.0),))
    eeg = sim.run(n_sims=2, seed=1, threads=1)["eeg"]
    psp = tavg.run(n_sims=2, seed=1, threads=1)["psp"].values.astype(np.float64)
    assert eeg.dims == ("sim", "time", "sensor") and eeg.shape[-1] == gain.shape[0]
    np.testing.assert_allclose(eeg.values, psp @ gain.T, rtol=1e-10)


def test_eeg_leadfield_single_dipole_analytic():
    centre = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]])  # head centre = (0, 0, 5)
    sensors = np.array([[0.0, 0.0, 100.0], [100.0, 0.0, 5.0]])
    gain = eeg_leadfield_sphere(centre, sensors, sigma=0.33, dipole_moment=1e-9)
    # source 2 points +z (radial); the sensor above it sees p.d / (4 pi sigma |d|^3)
    d_above, d_side = np.array([0, 0, 0.090]), np.array([0.1, 0, -0.005])
    v = lambda d: 1e-9 * d[2] / (4 * np.pi * 0.33 * np.linalg.norm(d) ** 3)  # noqa: E731
    raw = np.array([v(d_above), v(d_side)])
    np.testing.assert_allclose(gain[:, 1], raw - raw.mean(), rtol=1e-12)


def test_meg_radial_dipole_is_silent():
    centres = SMALL.centres_mm
    radial = centres - centres.mean(axis=0)
    gain = meg_leadfield_sphere(centres, radial)
    assert np.abs(gain).max() < 1e-12 * np.abs(meg_leadfield_sphere(centres, np.roll(radial, 1, axis=1))).max() + 1e-30


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(model="nope"), KeyError, "registered models: mpr"),
        (dict(noise={"q": 0.1}), KeyError, "unknown state 'q'.*states: r, v"),
        (dict(noise={"r": -1.0}), ValueError, "non-negative"),
        (dict(integrator="rk5"), ValueError, "unknown integrator 'rk5'"),
        (dict(coupling="cubic"), ValueError, "unknown coupling 'cubic'"),
        (dict(integrator="rk4"), ValueError, "rk4 is deterministic"),
        (dict(integrator="rk4", noise={"r": 0.0, "v": 0.0}, speed_mm_per_ms=3.0), ValueError, "rk4 is delay-free"),
        (dict(dt_ms=-0.1), ValueError, "dt_ms must be positive"),
        (dict(t_cut_ms=50.0), ValueError, "t_cut_ms"),
        (dict(monitors=(Raw(0.015),)), ValueError, "multiple of dt"),
        (
            dict(monitors=(Raw(1.0), TemporalAverage(1.0))),
            ValueError,
            "monitors Raw, TemporalAverage cannot be combined",
        ),
        (dict(monitors=(Bold(tr_ms=100.0, variable="z"),)), KeyError, "unknown observable 'z'"),
        (dict(monitors=(Bold(tr_ms=100.0),)), ValueError, "shorter than one BOLD TR"),
        (dict(monitors=(MEG(period_ms=1.0),)), ValueError, "MEG needs a gain"),
        (dict(dtype="float16"), ValueError, "dtype"),
        (dict(initial_state={"x": 1.0}), KeyError, "unknown state 'x'"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_configuration(kwargs, error, match):
    config = dict(model="mpr", connectome=SMALL, duration_ms=20.0)
    config.update(kwargs)
    with pytest.raises(error, match=match):
        Simulation(**config)


def test_delays_need_tract_lengths():
    bare = Connectome(weights=np.ones((2, 2)) - np.eye(2))
    with pytest.raises(ValueError, match="tract lengths"):
        Simulation("mpr", connectome=bare, duration_ms=1.0, speed_mm_per_ms=3.0)


@pytest.mark.parametrize(
    "params, n_sims, match",
    [
        ({"etaa": 1.0}, 2, r"unknown parameter 'etaa' for model mpr; valid parameters: tau, eta, J, Delta, I, G"),
        ({"eta": [1.0, 2.0]}, 3, "matches neither"),
        ({"eta": [1.0, 2.0, 3.0]}, 3, "ambiguous"),
        ({"eta": np.ones((2, 2))}, 2, r"\(sim, node\) = \(2, 3\)"),
        ({"eta": np.nan}, 2, "non-finite"),
        ({"eta": xr.DataArray(np.ones(4), dims="time")}, 2, "dims must be among"),
        ({"G": [0.1, 0.2], "eta": np.ones((3, 3))}, None, "disagree on the number of simulations"),
    ],
)
def test_bad_parameters(params, n_sims, match):
    sim = Simulation("mpr", connectome=SMALL, duration_ms=1.0)
    with pytest.raises((ValueError, KeyError), match=match):
        sim.run(params, n_sims=n_sims, threads=1)


def test_per_node_and_per_sim_parameters_are_first_class():
    sim = Simulation(
        "mpr", connectome=SMALL, duration_ms=5.0, noise={"r": 0.0, "v": 0.0}, monitors=(Raw(5.0),), dtype="float64"
    )
    eta = np.array([[-5.0, -4.0, -3.0], [-4.5, -4.5, -4.5]])  # (sim, node)
    both = sim.run({"eta": eta, "G": 0.0}, seed=0, threads=1)["r"].values[:, -1, :]
    for k in range(2):
        for i in range(3):
            alone = sim.run({"eta": eta[k, i], "G": 0.0}, n_sims=k + 1, seed=0, threads=1)["r"].values[k, -1, i]
            assert both[k, i] == alone


def test_swept_parameters_are_coordinates_on_sim():
    rng = np.random.default_rng(0)
    weights = rng.uniform(size=(4, 4))
    np.fill_diagonal(weights, 0.0)
    sim = Simulation(
        "mpr",
        connectome=Connectome(weights=weights, name="t"),
        dt_ms=0.1,
        duration_ms=20.0,
        monitors=(TemporalAverage(1.0),),
    )
    eta = np.array([[-5.0, -4.0, -5.0, -4.0]]) + 0.1 * np.arange(3)[:, None]  # (sim, node)
    ds = sim.run(
        {"G": np.array([0.1, 0.2, 0.3]), "eta": xr.DataArray(eta, dims=("sim", "node")), "J": 14.0}, seed=1, first_sim=5
    )
    assert ds["G"].dims == ("sim",) and ds["G"].values.tolist() == [0.1, 0.2, 0.3]
    assert ds["eta"].dims == ("sim", "node") and np.array_equal(ds["eta"].values, eta)
    assert "J" not in ds.coords and "tau" not in ds.coords  # the same in every simulation: not swept
    picked = ds.sel(sim=ds.G > 0.15)
    assert picked["sim"].values.tolist() == [6, 7] and np.array_equal(picked["r"].values, ds["r"].values[1:])
    assert np.array_equal(ds.swap_dims(sim="G").sel(G=0.2)["r"].values, ds["r"].values[1])
