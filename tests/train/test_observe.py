"""Observations: the packaged empirical data, and features of recordings computed with
exactly a store's feature set (with clear errors when they cannot be)."""

from __future__ import annotations

import numpy as np
import pytest

from vbi_dask import Bold, Connectome, Simulation
from vbi_dask.budget import Budget
from vbi_dask.features import FeatureSet
from vbi_dask.prior import Prior
from vbi_dask.train import load_empirical, observe_signal

FEATURES = [
    {"name": "fc", "fisher_z": True},
    {"name": "fcd", "window_samples": 30, "step_samples": 5},
    {"name": "psd", "bands": {"slow4": [0.027, 0.073], "slow3": [0.073, 0.198]}},
]


@pytest.fixture(scope="module")
def empirical():
    return load_empirical()


@pytest.fixture(scope="module")
def gw_store(empirical, tmp_path_factory):
    """A store allocated (not simulated) for BOLD of the empirical length on its connectome."""
    connectome = Connectome(weights=empirical["cmat"].values, tract_lengths_mm=empirical["dmat"].values, name="gw")
    n_time = empirical.sizes["time"]
    simulation = Simulation(
        "mpr", connectome=connectome, dt_ms=0.1, duration_ms=n_time * 2000.0, monitors=(Bold(tr_ms=2000.0),)
    )
    prior = Prior({"G": (0.0, 1.0)}, model="mpr", n_nodes=connectome.n_nodes)
    path = tmp_path_factory.mktemp("gw") / "gw.zarr"
    Budget(simulation, prior, n_sims=10, features=FEATURES, chunk_size=10).prepare(path)
    return path


def test_empirical_data_set(empirical):
    assert dict(empirical.sizes) == {"subject": 5, "time": 355, "node": 80, "node_from": 80}
    assert empirical["bold"].dims == ("subject", "time", "node")
    # the stored FC is the Pearson correlation of the stored BOLD (an independent check)
    fc = np.corrcoef(empirical["bold"].values[2].T)
    np.testing.assert_allclose(empirical["fc"].values[2], fc, atol=1e-10)
    np.testing.assert_allclose(empirical["cmat"].values, empirical["cmats"].values.mean(0))
    assert empirical["time"].values[1] == 2000.0 and empirical.attrs["tr_ms"] == 2000.0


def test_features_of_an_empirical_recording(empirical, gw_store):
    bold = empirical["bold"].isel(subject=0)
    x = observe_signal(gw_store, bold)
    expected, names = FeatureSet(FEATURES).compute(bold.values[None], 2000.0)
    assert x.dims == ("feature",) and list(x["feature"].values) == names
    np.testing.assert_allclose(x.values, expected[0], rtol=1e-6)
    batch = observe_signal(gw_store, empirical["bold"])
    assert batch.dims == ("obs", "feature") and batch.shape[0] == 5
    np.testing.assert_allclose(batch.values[0], x.values)


def test_recordings_that_do_not_fit_the_store(empirical, gw_store):
    bold = empirical["bold"].isel(subject=0).values
    with pytest.raises(ValueError, match="has 79 nodes .* connectome 80"):
        observe_signal(gw_store, bold[:, :79], dt_ms=2000.0)
    with pytest.raises(ValueError, match="sampled every 720.0 ms, the store's bold signals every 2000.0 ms"):
        observe_signal(gw_store, bold, dt_ms=720.0)
    with pytest.raises(ValueError, match="has 300 samples, the store's bold signals 355"):
        observe_signal(gw_store, bold[:300], dt_ms=2000.0)
    shorter = observe_signal(gw_store, bold[:300], dt_ms=2000.0, same_length=False)
    assert np.isfinite(shorter.values).all()
    with pytest.raises(ValueError, match="cannot be computed on this signal"):
        observe_signal(gw_store, bold[:20], dt_ms=2000.0, same_length=False)  # shorter than an FCD window
    broken = bold.copy()
    broken[10, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf samples, e.g. at \\(obs, time, node\\) \\[\\[0, 10, 3\\]\\]"):
        observe_signal(gw_store, broken, dt_ms=2000.0)


def test_a_model_of_several_signals_infers_from_a_dataset_of_recordings(tmp_path, capsys):
    """A posterior trained on a store whose features come from BOLD, EEG and the temporal
    average reads one NetCDF variable per signal (vbi-dask infer) as observe_signal does."""
    import xarray as xr

    from tests.budget.test_signals import budget as three_signal_budget
    from vbi_dask.cli import main
    from vbi_dask.train import load_posterior, sample_posterior, train_posterior

    store = tmp_path / "three.zarr"
    b = three_signal_budget(16)
    b.run(store, scheduler="sync", progress=False)
    posterior = train_posterior(
        store,
        estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1},
        max_epochs=1,
        batch_size=4,
        validation_fraction=0.3,
        progress=False,
        logger=False,
        threads=1,
    )
    assert sorted(posterior.info.signal["signals"]) == ["bold", "eeg", "temporal_average"]
    model = tmp_path / "model.pt"
    from vbi_dask.train import save_posterior

    save_posterior(posterior, model)
    out = b.simulation.run(b.prior.to_params(np.array([[0.2, -5.0, -5.0]])), n_sims=1, seed=9, threads=1)
    recording = xr.Dataset(
        {"bold": out["bold"].isel(sim=0), "eeg": out["eeg"].isel(sim=0), "temporal_average": out["r"].isel(sim=0)}
    )
    recording.to_netcdf(tmp_path / "obs.nc")
    assert (
        main(
            [
                "infer",
                str(model),
                "--observed",
                str(tmp_path / "obs.nc"),
                "--samples",
                "20",
                "--no-check",
                "--out",
                str(tmp_path / "samples.npy"),
            ]
        )
        == 0
    )
    x = observe_signal(load_posterior(model), {k: recording[k] for k in recording.data_vars})
    expected = sample_posterior(load_posterior(model), x, 20, seed=0).values
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"), expected)
    recording.drop_vars("eeg").to_netcdf(tmp_path / "partial.nc")
    assert main(["infer", str(model), "--observed", str(tmp_path / "partial.nc"), "--no-check"]) == 2
    assert "lacks variable(s) ['eeg']" in capsys.readouterr().err
