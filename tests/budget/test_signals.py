"""Features from several monitored signals at once: entries name their signal (BOLD, the
temporal average, EEG), columns carry it, the store records each signal, and recordings
of each signal observed together give the stored rows."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vbi_dask import EEG, MEG, Bold, Simulation, TemporalAverage
from vbi_dask.budget import Budget
from vbi_dask.cli import main
from vbi_dask.features import FeatureSet
from vbi_dask.store import open_store, signal_layout
from vbi_dask.train import observe_signal

from .conftest import N_NODES, assert_same_data, connectome, connectome_config, prior

# a lead field of 4 sensors (V per unit of v); fixed numbers, so the EEG is an independent NumPy product
GAIN = np.random.default_rng(3).normal(0.0, 1e-6, (4, N_NODES))
FEATURES = [
    {"name": "fc", "signal": "bold"},
    {"name": "moments", "signal": "eeg", "stats": ["mean", "std"]},
    {"name": "psd", "signal": "eeg", "nperseg": 16, "bands": {"theta": [4, 8], "alpha": [8, 13]}},
    {"name": "moments", "signal": "temporal_average", "stats": ["std"]},
    {"name": "moments", "stats": ["mean"]},  # no signal: the default (BOLD)
]


def simulation(**overrides) -> Simulation:
    """The budget tests' kernel (MPR, temporal average every 10 ms and BOLD), plus the EEG
    of v read from the same averaged buffer."""
    monitors = (TemporalAverage(10.0), EEG(period_ms=10.0, gain=GAIN, variable="v"), Bold(tr_ms=100.0))
    return Simulation(
        "mpr",
        connectome=connectome(),
        dt_ms=0.1,
        duration_ms=2000.0,
        monitors=overrides.pop("monitors", monitors),
        **overrides,
    )


def budget(n_sims: int = 8) -> Budget:
    return Budget(simulation(), prior(), n_sims=n_sims, features=FEATURES, chunk_size=4, seed=5)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("signals") / "three.zarr"
    budget().run(path, scheduler="sync", progress=False)
    return path


def test_columns_name_their_signal_and_match_numpy_references(store):
    ds = open_store(store).load()
    names = list(ds["feature"].values)
    assert names[:2] == ["bold.fc[0,1]", "bold.fc[0,2]"]
    assert [n for n in names if n.startswith("eeg.mean")] == [f"eeg.mean[{k}]" for k in range(4)]
    assert [n for n in names if n.startswith("temporal_average.")] == [
        f"temporal_average.std[{k}]" for k in range(N_NODES)
    ]
    assert names[-N_NODES:] == [f"mean[{k}]" for k in range(N_NODES)]
    assert ds.attrs["feature_signal"] == "bold,eeg,temporal_average"
    # each column's signal is a coordinate: selecting one modality is one call
    signal_of = [n.split(".")[0] if "." in n else "bold" for n in names]  # unnamed entries: the default, BOLD
    assert list(ds["feature_signal"].values) == signal_of
    eeg_columns = ds.sel(feature=ds["feature_signal"] == "eeg")["feature"].values
    assert list(eeg_columns) == [n for n in names if n.startswith("eeg.")]
    # rows 4..7 again, through Simulation.run (xarray) and NumPy
    b = budget()
    theta = ds["theta"].values[4:8]
    out = b.simulation.run(b.prior.to_params(theta.astype(np.float64)), n_sims=4, seed=5, first_sim=4, threads=1)
    eeg = out["v"].values.astype(np.float64) @ GAIN.T  # (sim, time, sensor): the lead field times v
    np.testing.assert_allclose(out["eeg"].values, eeg, rtol=1e-12, atol=0)
    assert out["eeg"].dims == ("sim", "time", "sensor")
    stored = ds["features"].sel(sim=slice(4, 7))
    for k in range(4):
        np.testing.assert_allclose(
            stored.sel(feature=f"eeg.mean[{k}]"), eeg[:, :, k].mean(1).astype(np.float32), rtol=1e-5
        )
        np.testing.assert_allclose(
            stored.sel(feature=f"eeg.std[{k}]"), eeg[:, :, k].std(1).astype(np.float32), rtol=1e-5
        )
    r = out["r"].values.astype(np.float64)
    np.testing.assert_allclose(
        stored.sel(feature=[f"temporal_average.std[{k}]" for k in range(N_NODES)]), r.std(1), rtol=1e-5
    )
    bold = out["bold"].values.astype(np.float64)
    fc = np.array([np.corrcoef(x.T)[0, 1] for x in bold])
    np.testing.assert_allclose(stored.sel(feature="bold.fc[0,1]"), fc, rtol=1e-5)
    np.testing.assert_allclose(stored.sel(feature=[f"mean[{k}]" for k in range(N_NODES)]), bold.mean(1), rtol=1e-5)
    psd, psd_names = FeatureSet([{"name": "psd", "nperseg": 16, "bands": {"theta": [4, 8], "alpha": [8, 13]}}]).compute(
        eeg, 10.0
    )
    np.testing.assert_array_equal(stored.sel(feature=["eeg." + n for n in psd_names]), psd.astype(np.float32))


def test_the_store_records_each_signal(store):
    n_bold, n_sampled = simulation().bold_times_ms().size, simulation().sample_times_ms().size
    assert signal_layout(store) == {
        "signals": {
            "bold": {"kind": "bold", "n_time": n_bold, "dt_ms": 100.0, "n_nodes": N_NODES, "dim": "node"},
            "eeg": {"kind": "eeg", "n_time": n_sampled, "dt_ms": 10.0, "n_nodes": 4, "dim": "sensor"},
            "temporal_average": {
                "kind": "temporal_average",
                "n_time": n_sampled,
                "dt_ms": 10.0,
                "n_nodes": N_NODES,
                "dim": "node",
            },
        }
    }


def test_resume_and_extend_give_the_one_shot_store(store, tmp_path):
    half = tmp_path / "half.zarr"
    budget(4).run(half, scheduler="sync", progress=False)
    budget(8).run(half, scheduler="sync", progress=False)  # extends 4 -> 8
    assert_same_data(half, store)


def test_recordings_of_each_signal_observed_together_give_the_stored_rows(store):
    ds = open_store(store).load()
    valid = ds["valid"].values
    start = next(k for k in range(len(valid) - 1) if valid[k] and valid[k + 1])  # two valid rows in a row
    b = budget()
    theta = ds["theta"].values[start : start + 2].astype(np.float64)
    out = b.simulation.run(b.prior.to_params(theta), n_sims=2, seed=5, first_sim=start, threads=1)
    recordings = {"bold": out["bold"], "eeg": out["eeg"], "temporal_average": out["r"]}
    x = observe_signal(store, recordings)
    assert x.dims == ("obs", "feature") and list(x["feature"].values) == list(ds["feature"].values)
    np.testing.assert_array_equal(x.values, ds["features"].values[start : start + 2])
    # one recording of each: one observation
    single = observe_signal(store, {key: value.isel(sim=0) for key, value in recordings.items()})
    np.testing.assert_array_equal(single.values, ds["features"].values[start])


def test_recordings_that_do_not_fit_a_signal_are_refused_naming_it(store):
    b = budget()
    out = b.simulation.run(b.prior.to_params(np.array([[0.2, -5.0, -5.0]])), n_sims=1, seed=5, threads=1)
    ok = {"bold": out["bold"].isel(sim=0), "eeg": out["eeg"].isel(sim=0), "temporal_average": out["r"].isel(sim=0)}
    with pytest.raises(ValueError, match=r"the signal 'eeg' has 3 sensors \(last dim\), the store's eeg signals 4"):
        observe_signal(store, {**ok, "eeg": ok["eeg"].isel(sensor=slice(0, 3))})
    with pytest.raises(
        ValueError,
        match=r"the signal 'eeg' is sampled every 5.0 ms, the store's eeg signals every "
        r"10.0 ms",
    ):
        observe_signal(store, ok, dt_ms={"eeg": 5.0})
    with pytest.raises(
        ValueError,
        match=r"the signal 'temporal_average' has 100 samples, the store's "
        r"temporal_average signals 200",
    ):
        observe_signal(store, {**ok, "temporal_average": ok["temporal_average"].isel(time=slice(0, 100))})
    with pytest.raises(
        ValueError,
        match=r"computed from signal\(s\) \['bold', 'eeg', 'temporal_average'\]; got "
        r"\['bold', 'eeg'\]",
    ):
        observe_signal(store, {"bold": ok["bold"], "eeg": ok["eeg"]})
    with pytest.raises(ValueError, match=r"computed from 3 signals \(bold, eeg, temporal_average\): pass a mapping"):
        observe_signal(store, ok["bold"])


def test_signals_the_simulation_does_not_monitor_are_refused():
    with pytest.raises(
        ValueError,
        match=r"names signal 'meg', which the simulation does not monitor; its signals: "
        r"temporal_average, eeg, bold",
    ):
        Budget(simulation(), prior(), n_sims=4, features=[{"name": "fc", "signal": "meg"}], chunk_size=4)
    with pytest.raises(ValueError, match="monitors TemporalAverage, EEG cannot be combined"):
        simulation(monitors=(TemporalAverage(10.0), EEG(period_ms=5.0, gain=GAIN)))
    with pytest.raises(ValueError, match="must be a monitor's name"):
        FeatureSet([{"name": "fc", "signal": "bold signal"}])
    both = simulation(monitors=(EEG(period_ms=10.0, gain=GAIN), MEG(period_ms=10.0, gain=GAIN[:2])))
    out = both.run(n_sims=1, seed=1, threads=1)
    assert out["eeg"].dims == ("sim", "time", "eeg_sensor") and out["meg"].sizes["meg_sensor"] == 2


def test_the_command_line_runs_a_yaml_budget_of_three_signals(tmp_path, store):
    config = {
        "model": "mpr",
        "connectome": connectome_config(tmp_path),
        "simulation": {
            "dt_ms": 0.1,
            "duration_ms": 2000.0,
            "monitors": {
                "temporal_average": {"period_ms": 10.0},
                "eeg": {"period_ms": 10.0, "gain": GAIN.tolist(), "variable": "v"},
                "bold": {"tr_ms": 100.0},
            },
        },
        "prior": {"G": [0.0, 1.0], "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}},
        "n_sims": 8,
        "chunk_size": 4,
        "seed": 5,
        "features": FEATURES,
    }
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["simulate", str(path), "--store", str(tmp_path / "cli.zarr"), "--scheduler", "sync", "--quiet"]) == 0
    assert_same_data(tmp_path / "cli.zarr", store)
