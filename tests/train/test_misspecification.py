"""Misspecification check: held-out simulations pass, observations far from every
simulation are flagged, for both of sbi's tests; the same seed gives the same report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vbi_dask.cli import main
from vbi_dask.train import heldout, load_posterior, misspecification, save_posterior, train_posterior
from vbi_dask.train._synthetic import linear_gaussian_data, linear_gaussian_prior, write_store

DIM = 2


@pytest.fixture(scope="module")
def posterior(tmp_path_factory):
    store = tmp_path_factory.mktemp("misspec") / "lg.zarr"
    theta, x = linear_gaussian_data(3000, DIM, 0.5, seed=4)
    write_store(store, theta, x, linear_gaussian_prior(DIM), chunk_size=250)
    return train_posterior(
        store,
        estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1},
        max_epochs=3,
        test_fraction=0.1,
        seed=0,
        logger=False,
        progress=False,
    )


def observations(posterior):
    """Three held-out simulations, then the same shifted by 8 training stds per feature."""
    _, _, x = heldout(posterior, max_rows=3)
    std = np.asarray(posterior.info.zscore["x_std"])
    return np.vstack([x, x + 8.0 * std])


@pytest.mark.parametrize("method", ["mmd", "logprob"])
def test_held_out_simulations_pass_and_far_observations_are_flagged(posterior, method):
    x = observations(posterior)
    report = misspecification(posterior, x, method=method, n_reference=300, n_shuffle=200, n_fit=1000, seed=0)
    p = report["p_value"].values
    assert report.sizes["obs"] == 6 and report.attrs["split"] == "test"
    assert (p[:3] > 0.05).all(), p
    assert (p[3:] <= 0.01).all(), p
    assert report["misspecified"].values.tolist() == [False] * 3 + [True] * 3
    assert report.attrs["verdict"].startswith("3 of 6 observation(s) lie outside the simulated features")
    if method == "mmd":  # farther observations have a larger discrepancy
        assert report["score"].values[3:].min() > report["score"].values[:3].max()
    else:  # and a lower log density
        assert report["score"].values[3:].max() < report["score"].values[:3].min()


def test_same_seed_same_report_and_a_single_observation(posterior):
    x = observations(posterior)
    first = misspecification(posterior, x, n_reference=300, n_shuffle=100, seed=3)
    again = misspecification(posterior, x, n_reference=300, n_shuffle=100, seed=3)
    assert first.identical(again)
    one = misspecification(posterior, x[0], n_reference=300, n_shuffle=100, seed=3)
    assert one.sizes["obs"] == 1 and not one["misspecified"].item()
    assert one.attrs["verdict"].startswith("the observation lies within the simulated features")


def test_bad_arguments(posterior):
    x = observations(posterior)
    with pytest.raises(ValueError, match="unknown misspecification method 'kde'; valid: mmd, logprob"):
        misspecification(posterior, x, method="kde")
    with pytest.raises(ValueError, match="alpha must be in"):
        misspecification(posterior, x, alpha=1.5)
    with pytest.raises(ValueError, match="has 3 feature columns"):
        misspecification(posterior, np.zeros(3))


def test_infer_warns_per_misspecified_observation(posterior, tmp_path, capsys):
    model = save_posterior(posterior, tmp_path / "model.pt")
    observed = tmp_path / "x.npy"
    np.save(observed, observations(posterior)[[0, 4]])
    assert main(["infer", str(model), "--observed", str(observed), "--samples", "20", "--no-reject"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "outside the simulated features" in line]
    assert len(err) == 1 and err[0].startswith(
        "vbi-dask infer: warning: observation 1 lies outside the simulated features (MMD test, p-value "
    )
    assert main(["infer", str(model), "--observed", str(observed), "--samples", "20", "--no-reject", "--no-check"]) == 0
    assert "outside the simulated features" not in capsys.readouterr().err


def test_infer_notes_a_store_it_cannot_read_and_samples(posterior, tmp_path, capsys):
    moved = load_posterior(save_posterior(posterior, tmp_path / "model.pt"))
    moved.info = dataclasses.replace(moved.info, store=str(tmp_path / "gone.zarr"))
    model = save_posterior(moved, tmp_path / "moved.pt")
    observed = tmp_path / "x.npy"
    np.save(observed, observations(posterior)[4])
    assert main(["infer", str(model), "--observed", str(observed), "--samples", "10", "--no-reject"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("vbi-dask infer: note: observations not checked against the simulations (")
    assert "observation 0: 10 posterior samples" in captured.out
