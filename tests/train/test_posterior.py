"""Training by streaming against known answers: the analytic linear-Gaussian posterior
and sbi's own in-memory trainer; the posterior's interface and bad observations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sbi.utils.metrics import c2st

from vbi_dask.train import EstimatorConfig, StoreData, load_posterior, sample_posterior, save_posterior, train_posterior
from vbi_dask.train._synthetic import (
    linear_gaussian_data,
    linear_gaussian_posterior,
    linear_gaussian_prior,
    write_store,
)

from .conftest import LG_DIM, LG_SIGMA, SMALL_NSF


@pytest.fixture(scope="module")
def lg_posterior(lg_store):
    return train_posterior(
        lg_store, estimator=SMALL_NSF, batch_size=256, learning_rate=1e-3, max_epochs=100, stop_after_epochs=8, seed=0
    )


@pytest.fixture(scope="module")
def small_lg_store(tmp_path_factory):
    """2-D linear Gaussian, 3000 rows, 10% of them a test split."""
    path = tmp_path_factory.mktemp("lg_small") / "lg.zarr"
    theta, x = linear_gaussian_data(3000, 2, LG_SIGMA, seed=2)
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=100)
    return path


@pytest.fixture(scope="module")
def quick_posterior(small_lg_store):
    """A posterior trained for 2 epochs: for interface tests, not for accuracy."""
    return train_posterior(
        small_lg_store, estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1}, max_epochs=2, seed=0
    )


def test_linear_gaussian_c2st_against_the_analytic_posterior(lg_posterior):
    """Budget 10^4 streamed from a Zarr store: C2ST <= 0.6 against exact samples."""
    assert lg_posterior.info.split["n_train"] + lg_posterior.info.split["n_validation"] == 10_000
    rng = np.random.default_rng(7)
    for k in range(3):
        theta_o = rng.standard_normal(LG_DIM)
        x_o = (theta_o + LG_SIGMA * rng.standard_normal(LG_DIM)).astype(np.float32)
        estimate = sample_posterior(lg_posterior, x_o, 2000, seed=k).values
        exact = linear_gaussian_posterior(x_o, LG_SIGMA, 2000, seed=100 + k)
        accuracy = float(c2st(torch.as_tensor(estimate), torch.as_tensor(exact)))
        assert accuracy <= 0.6, (k, accuracy)


def _test_nll(estimator, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return estimator.loss(torch.as_tensor(theta), torch.as_tensor(x)).numpy()


def test_streaming_matches_sbi_in_memory_training(small_lg_store):
    """Same data, same estimator and hyper-parameters, same seed: the held-out negative
    log-likelihood of the streamed model is within noise of sbi's NPE.train()."""
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    data = StoreData(small_lg_store, validation_fraction=0.1, test_fraction=0.1)
    ours = train_posterior(data, estimator=SMALL_NSF, batch_size=200, learning_rate=5e-4, stop_after_epochs=20, seed=0)
    # sbi gets the rows we train and validate on and splits them 90/10 itself
    _, theta_tv, x_tv = (np.concatenate(v) for v in zip(data.take("train"), data.take("validation")))
    _, theta_test, x_test = data.take("test")
    torch.manual_seed(0)
    builder = posterior_nn(
        "nsf", hidden_features=SMALL_NSF["hidden_features"], num_transforms=SMALL_NSF["num_transforms"]
    )
    npe = NPE(linear_gaussian_prior(2).to_torch(), density_estimator=builder, show_progress_bars=False)
    theirs = npe.append_simulations(torch.as_tensor(theta_tv), torch.as_tensor(x_tv)).train(
        training_batch_size=200, learning_rate=5e-4, stop_after_epochs=20
    )
    nll_ours = _test_nll(ours.posterior_estimator, theta_test, x_test)
    nll_sbi = _test_nll(theirs, theta_test, x_test)
    # exact posterior N(x / (1 + s^2), s^2 / (1 + s^2)): its expected NLL per row
    optimum = np.log(2 * np.pi * np.e * LG_SIGMA**2 / (1 + LG_SIGMA**2))
    paired_se = (nll_ours - nll_sbi).std(ddof=1) / np.sqrt(len(nll_ours))
    gap = abs(nll_ours.mean() - nll_sbi.mean())
    # seed-to-seed spread of either trainer on this problem is ~0.03 nats
    assert gap < max(0.1, 4 * paired_se), (nll_ours.mean(), nll_sbi.mean())
    assert nll_ours.mean() - optimum < 0.15
    assert ours.info.training["best_val_loss"] == pytest.approx(
        min(r["val_loss"] for r in ours.info.training["history"])
    )


def test_posterior_is_an_sbi_direct_posterior_over_the_store_prior(quick_posterior):
    from sbi.inference.posteriors.direct_posterior import DirectPosterior

    assert isinstance(quick_posterior, DirectPosterior)
    assert quick_posterior.info.param_names == ("eta[0]", "eta[1]")
    prior = linear_gaussian_prior(2).to_torch()
    theta = torch.zeros(1, 2)
    assert torch.allclose(quick_posterior.prior.log_prob(theta), prior.log_prob(theta))


def test_sampling_one_and_a_batch(quick_posterior):
    x = np.array([[0.1, -0.2], [1.0, 0.5], [-1.0, 0.0]], dtype=np.float32)
    one = sample_posterior(quick_posterior, x[0], 50, seed=1)
    batch = sample_posterior(quick_posterior, x, 50, seed=1)
    assert one.dims == ("sample", "param") and one.shape == (50, 2)
    assert batch.dims == ("sample", "obs", "param") and batch.shape == (50, 3, 2)
    assert list(one["param"].values) == ["eta[0]", "eta[1]"]
    again = sample_posterior(quick_posterior, x[0], 50, seed=1)
    np.testing.assert_array_equal(one.values, again.values)
    # a DataArray observation is matched by feature name, whatever its order
    named = xr.DataArray(x[0][::-1], dims="feature", coords={"feature": ["x[1]", "x[0]"]})
    np.testing.assert_array_equal(sample_posterior(quick_posterior, named, 50, seed=1).values, one.values)


def test_save_and_load_round_trip(quick_posterior, tmp_path):
    path = save_posterior(quick_posterior, tmp_path / "model.pt")
    loaded = load_posterior(path)
    assert loaded.info == quick_posterior.info
    x = np.array([0.3, 0.1], dtype=np.float32)
    np.testing.assert_array_equal(
        sample_posterior(loaded, x, 100, seed=3).values, sample_posterior(quick_posterior, x, 100, seed=3).values
    )
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a vbi-dask posterior"):
        load_posterior(tmp_path / "other.pt")


def test_bad_observations(quick_posterior):
    with pytest.raises(ValueError, match="has 3 feature columns; this posterior takes the store's 2"):
        sample_posterior(quick_posterior, np.zeros(3), 10)
    with pytest.raises(ValueError, match="NaN or inf in 1 used feature.*x\\[1\\]"):
        sample_posterior(quick_posterior, np.array([0.0, np.nan]), 10)
    with pytest.raises(ValueError, match="lacks 1 of the posterior's 2 features.*x\\[1\\]"):
        sample_posterior(quick_posterior, xr.DataArray([0.0], dims="feature", coords={"feature": ["x[0]"]}), 10)
    with pytest.raises(ValueError, match="\\(feature,\\) or \\(obs, feature\\)"):
        sample_posterior(quick_posterior, np.zeros((2, 2, 2)), 10)


def test_feature_selection_and_constant_columns(tmp_path):
    path = tmp_path / "sel.zarr"
    theta, x = linear_gaussian_data(1000, 2, LG_SIGMA, seed=5)
    x = np.concatenate([x, np.full((1000, 1), 3.0, np.float32), x[:, :1] ** 2], axis=1)
    write_store(
        path, theta, x, linear_gaussian_prior(2), chunk_size=100, feature_names=["a", "b", "constant", "a_squared"]
    )
    with pytest.warns(UserWarning, match="constant over the training rows.*'constant'"):
        post = train_posterior(
            path, estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1}, max_epochs=1
        )
    assert post.info.used_features == ("a", "b", "a_squared")
    post = train_posterior(
        path, features=["a*"], estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1}, max_epochs=1
    )
    assert post.info.used_features == ("a", "a_squared")
    # the posterior still takes all 4 columns; unused ones may even be NaN
    sample_posterior(post, np.array([0.1, np.nan, np.nan, 0.01]), 5)
    with pytest.raises(ValueError, match="matches no column"):
        train_posterior(path, features=["c"], max_epochs=1)


def test_custom_embedding_net_and_estimator_choices(small_lg_store, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh())
    post = train_posterior(
        small_lg_store,
        estimator={"model": "nsf", "hidden_features": 8, "num_transforms": 1},
        embedding_net=net,
        max_epochs=1,
    )
    path = save_posterior(post, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="custom embedding net"):
        load_posterior(path)
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh())
    loaded = load_posterior(path, embedding_net=fresh)
    x = np.array([0.2, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(
        sample_posterior(loaded, x, 20, seed=0).values, sample_posterior(post, x, 20, seed=0).values
    )
    mlp = train_posterior(
        small_lg_store,
        estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1, "embedding": [16, 4]},
        max_epochs=1,
    )
    assert load_posterior(save_posterior(mlp, tmp_path / "mlp.pt")).info.estimator["embedding"] == [16, 4]
    with pytest.raises(ValueError, match="unknown density estimator 'flow'; valid: maf, nsf"):
        EstimatorConfig(model="flow")
    with pytest.raises(ValueError, match="hidden_features must be a positive integer"):
        EstimatorConfig(hidden_features=0)


def test_data_parallel_training_on_two_cpu_processes(small_lg_store):
    """Two ranks (DDP, gloo): each streams its own chunks, equal batch counts, no hang."""
    post = train_posterior(
        small_lg_store,
        estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1},
        max_epochs=2,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
    )
    training = post.info.training
    assert training["devices"] == 2 and training["epochs"] == 2
    per_epoch = training["samples_seen"] / 2
    assert post.info.split["n_train"] - 2 * 200 < per_epoch <= post.info.split["n_train"]
