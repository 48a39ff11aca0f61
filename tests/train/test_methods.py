"""The training methods (NPE, SNPE-C, NLE, NRE) through the one streaming trainer: each
loss against sbi's own implementation on the same batch, each posterior against the
analytic linear-Gaussian posterior, and their save/load/sampling interface."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vbi_dask.train import load_posterior, sample_posterior, save_posterior, train_posterior
from vbi_dask.train._methods import MethodLoss, atomic_apt_loss, nle_loss, npe_loss, nre_b_loss
from vbi_dask.train._synthetic import linear_gaussian_prior
from vbi_dask.train.estimator import EstimatorConfig, build_estimator
from vbi_dask.train.posterior import PosteriorInfo, StoreMCMCPosterior, StorePosterior, StoreRejectionPosterior

from .conftest import LG_SIGMA, TINY, write_lg_store

DIM = 2
# small nets that learn the 2-D linear Gaussian within a few hundred steps (a 2-transform
# MAF does not, for some seeds: it stalls at a wide posterior, with NPE as with NLE)
FLOW = {"model": "mdn", "hidden_features": 16, "num_components": 2}
CLASSIFIER = {"model": "mlp", "hidden_features": 32}
ESTIMATORS = {"npe": FLOW, "snpe-c": FLOW, "nle": FLOW, "nre": CLASSIFIER}
MCMC = {"sample_with": "mcmc", "num_chains": 10, "warmup_steps": 50, "thin": 1}
X_O = np.array([1.5, -1.2], dtype=np.float32)  # far from the prior mean 0


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """MCMC evaluates a tiny net thousands of times: on a shared machine, one thread is
    several times faster than an OpenMP team (see vbi_dask.train._runtime)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------- losses == sbi's
def _net(method: str, config=TINY, n_features: int = 3):
    """An untrained estimator over 3 raw feature columns of which columns 0 and 2 are used."""
    torch.manual_seed(0)
    return build_estimator(
        EstimatorConfig.from_dict(config),
        theta_mean=np.array([0.1, -0.2]),
        theta_std=np.array([1.0, 0.5]),
        feature_index=np.array([0, 2]),
        x_mean=np.array([0.0, 0.3]),
        x_std=np.array([1.2, 0.8]),
        n_features=n_features,
        method=method,
    )


def _batch(n: int = 40):
    generator = torch.Generator().manual_seed(1)
    theta = torch.randn(n, DIM, generator=generator)
    x = torch.cat([theta, torch.randn(n, 1, generator=generator)], dim=1)[:, [0, 2, 1]]
    return theta, x


def _seeded(fn, seed: int = 5):
    torch.manual_seed(seed)
    with torch.no_grad():
        return fn()


def test_npe_and_snpe_c_losses_equal_sbi_npe_c():
    from sbi.inference import NPE_C

    prior = linear_gaussian_prior(DIM).to_torch()
    net, (theta, x) = _net("snpe-c"), _batch()
    sbi = NPE_C(prior=prior, show_progress_bars=False)
    sbi._neural_net, sbi._num_atoms, sbi._use_combined_loss = net, 10, False
    sbi.use_non_atomic_loss = False
    ones = lambda x: torch.ones(len(x))  # noqa: E731  (sbi's default calibration kernel)
    # round 0: maximum likelihood; later rounds: the atomic proposal posterior
    sbi._round = 0
    reference = _seeded(lambda: sbi._loss(theta, x, None, None, ones))
    torch.testing.assert_close(_seeded(lambda: npe_loss(net, theta, x)), reference, rtol=0, atol=1e-6)
    sbi._round = 1
    reference = _seeded(lambda: sbi._loss(theta, x, None, None, ones))
    ours = _seeded(lambda: atomic_apt_loss(net, prior, theta, x, num_atoms=10))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(ours, npe_loss(net, theta, x).detach(), atol=1e-3)  # a different loss
    method_loss = _seeded(lambda: MethodLoss("snpe-c", prior=prior)(net, theta, x))
    torch.testing.assert_close(method_loss, reference, rtol=0, atol=1e-6)


def test_nle_loss_equals_sbi_nle_a():
    from sbi.inference import NLE_A

    net, (theta, x) = _net("nle"), _batch()
    sbi = NLE_A(prior=linear_gaussian_prior(DIM).to_torch(), show_progress_bars=False)
    sbi._neural_net = net
    reference = _seeded(lambda: sbi._loss(theta, x))
    torch.testing.assert_close(_seeded(lambda: nle_loss(net, theta, x)), reference, rtol=0, atol=1e-6)
    # the net takes the raw columns, models the used ones (0 and 2), and its density is
    # of the raw features: shifting an unused column changes nothing
    moved = x.clone()
    moved[:, 1] += 10.0
    torch.testing.assert_close(_seeded(lambda: nle_loss(net, theta, moved)), reference, rtol=0, atol=1e-6)


def test_nre_b_loss_equals_sbi_nre_b():
    from sbi.inference import NRE_B

    net, (theta, x) = _net("nre", {"model": "resnet", "hidden_features": 16}), _batch()
    sbi = NRE_B(prior=linear_gaussian_prior(DIM).to_torch(), show_progress_bars=False)
    sbi._neural_net = net
    reference = _seeded(lambda: sbi._loss(theta, x, num_atoms=10))
    ours = _seeded(lambda: nre_b_loss(net, theta, x, num_atoms=10))
    torch.testing.assert_close(ours.mean(), reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(_seeded(lambda: MethodLoss("nre")(net, theta, x)).mean(), reference, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """2-D linear Gaussian, 3000 rows."""
    return write_lg_store(tmp_path_factory.mktemp("methods") / "lg.zarr", 3000, seed=4, chunk_size=250)


@pytest.fixture(scope="module")
def trained(store):
    """One short training per method (shared by the tests below)."""
    return {
        method: train_posterior(
            store,
            method=method,
            estimator=ESTIMATORS[method],
            batch_size=100,
            learning_rate=3e-3,
            max_epochs=15,
            stop_after_epochs=4,
            seed=0,
            progress=False,
            sample_with=MCMC,
        )
        for method in ESTIMATORS
    }


@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_posterior_mean_near_the_analytic_one(trained, method):
    """Exact posterior N(x / (1 + s^2), s^2 / (1 + s^2)): the estimate is much nearer to
    it than to the prior's mean, and its spread is the posterior's (a wrong loss or
    swapped roles give the prior, or a point, or a shifted mean)."""
    posterior = trained[method]
    assert posterior.info.method == method
    expected_class = StorePosterior if method in ("npe", "snpe-c") else StoreMCMCPosterior
    assert type(posterior) is expected_class
    samples = sample_posterior(posterior, X_O, 500, seed=1).values
    exact_mean = X_O / (1 + LG_SIGMA**2)
    exact_std = np.sqrt(LG_SIGMA**2 / (1 + LG_SIGMA**2))  # 0.447; the prior's is 1
    error = np.abs(samples.mean(axis=0) - exact_mean)
    assert np.all(error < 0.25), (method, samples.mean(axis=0), exact_mean)
    assert np.all(error < 0.25 * np.abs(exact_mean)), (method, samples.mean(axis=0), exact_mean)
    assert np.all(np.abs(samples.std(axis=0) / exact_std - 1) < 0.35), (method, samples.std(axis=0), exact_std)


@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_save_load_round_trip_and_seeded_sampling(trained, method, tmp_path):
    posterior = trained[method]
    loaded = load_posterior(save_posterior(posterior, tmp_path / f"{method}.pt"))
    assert type(loaded) is type(posterior) and loaded.info == posterior.info
    theta = torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 0.5]])
    x = torch.as_tensor(X_O)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded.potential(theta, x=x), posterior.potential(theta, x=x), rtol=0, atol=0)
    one = sample_posterior(posterior, X_O, 40, seed=3).values
    np.testing.assert_array_equal(sample_posterior(loaded, X_O, 40, seed=3).values, one)
    np.testing.assert_array_equal(sample_posterior(posterior, X_O, 40, seed=3).values, one)
    assert not np.array_equal(sample_posterior(posterior, X_O, 40, seed=4).values, one)
    # torch threads while sampling: set for the call, restored after, the samples unchanged
    before = torch.get_num_threads()
    np.testing.assert_array_equal(sample_posterior(posterior, X_O, 40, seed=3, threads=2).values, one)
    np.testing.assert_array_equal(sample_posterior(posterior, X_O, 40, seed=3, threads=1).values, one)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        sample_posterior(posterior, X_O, 40, threads=0)
    # a batch of observations: (sample, obs, param), each observation as if alone for MCMC
    batch = sample_posterior(posterior, np.stack([X_O, -X_O]), 40, seed=3)
    assert batch.dims == ("sample", "obs", "param") and batch.shape == (40, 2, DIM)
    if method in ("nle", "nre"):
        np.testing.assert_array_equal(batch.values[:, 0], one)


def test_rejection_sampling_of_a_likelihood_posterior(trained, tmp_path):
    path = save_posterior(trained["nle"], tmp_path / "nle.pt")
    rejection = load_posterior(path, sample_with="rejection")
    assert isinstance(rejection, StoreRejectionPosterior) and rejection.info.sampling["sample_with"] == "rejection"
    samples = sample_posterior(rejection, X_O, 300, seed=0).values
    np.testing.assert_array_equal(sample_posterior(rejection, X_O, 300, seed=0).values, samples)
    assert np.all(np.abs(samples.mean(axis=0) - X_O / (1 + LG_SIGMA**2)) < 0.25)
    assert load_posterior(path).info.sampling == MCMC  # the saved sampler, unless told otherwise


def test_bad_options_name_the_valid_ones(store, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'snle'; valid: npe, snpe-c, nle, nre"):
        train_posterior(store, method="snle")
    with pytest.raises(ValueError, match="unknown sample_with 'hmc'; valid: mcmc, rejection"):
        train_posterior(store, method="nle", sample_with="hmc")
    with pytest.raises(ValueError, match=r"unknown sampler option\(s\) \['chains'\]; valid: sample_with, num_chains"):
        train_posterior(store, method="nle", sample_with={"chains": 4})
    with pytest.raises(ValueError, match="method 'nre' needs a classifier, got model 'nsf'; valid: resnet, mlp"):
        train_posterior(store, method="nre", estimator="nsf")
    with pytest.raises(ValueError, match="method 'npe' needs a density estimator, got model 'mlp'"):
        train_posterior(store, method="npe", estimator="mlp")
    with pytest.raises(ValueError, match="method 'nle' takes no embedding"):
        train_posterior(store, method="nle", estimator={**TINY, "embedding": [4]})
    with pytest.raises(ValueError, match="unknown density estimator 'flow'.*classifiers.*resnet, mlp"):
        EstimatorConfig(model="flow")


def test_resume_checks_the_method(store, tmp_path):
    common = dict(estimator=TINY, batch_size=200, max_epochs=1, seed=0, progress=False, log_dir=tmp_path / "run")
    train_posterior(store, method="npe", **common)
    with pytest.raises(ValueError, match="different training.*method: 'npe' in the checkpoint, 'snpe-c' now"):
        train_posterior(store, method="snpe-c", ckpt_path="last", **common)


def test_version_1_files_load_as_npe(trained, tmp_path):
    path = save_posterior(trained["npe"], tmp_path / "new.pt")
    payload = torch.load(path, weights_only=True)
    info = json.loads(payload["info"])
    del info["method"], info["sampling"]
    old = tmp_path / "old.pt"
    torch.save({**payload, "format_version": 1, "info": json.dumps(info)}, old)
    loaded = load_posterior(old)
    assert isinstance(loaded, StorePosterior) and loaded.info.method == "npe" and loaded.info.sampling == {}
    assert PosteriorInfo.from_dict(info).method == "npe"
    np.testing.assert_array_equal(
        sample_posterior(loaded, X_O, 20, seed=0).values, sample_posterior(trained["npe"], X_O, 20, seed=0).values
    )


def test_cli_train_and_infer_with_a_method(store, tmp_path, capsys):
    from vbi_dask.cli import main

    out = tmp_path / "nre.pt"
    assert (
        main(
            [
                "train",
                str(store),
                "--method",
                "nre",
                "--hidden-features",
                "8",
                "--max-epochs",
                "1",
                "--sample-with",
                "rejection",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "trained nre (resnet)" in capsys.readouterr().out
    posterior = load_posterior(out)
    assert isinstance(posterior, StoreRejectionPosterior) and posterior.info.estimator["model"] == "resnet"
    observed = tmp_path / "x.npy"
    np.save(observed, X_O[None])
    assert main(["infer", str(out), "--observed", str(observed), "--samples", "20"]) == 0
    captured = capsys.readouterr()
    assert "observation 0: 20 posterior samples" in captured.out and "not checked" in captured.err
    with pytest.raises(SystemExit):
        main(["train", str(store), "--method", "abc"])
    error = capsys.readouterr().err
    assert "invalid choice: 'abc'" in error and all(method in error for method in ("npe", "snpe-c", "nle", "nre"))
