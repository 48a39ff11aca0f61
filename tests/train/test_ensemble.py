"""Ensembles: K members trained with seeds seed..seed+K-1 on one store, and their disagreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sbi.inference.posteriors.ensemble_posterior import EnsemblePosterior

from vbi_dask.train import ensemble_disagreement, train_ensemble

from .conftest import TINY, write_lg_store


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    store = tmp_path_factory.mktemp("ensemble") / "lg.zarr"
    write_lg_store(store, 1000, seed=6, chunk_size=250)
    return train_ensemble(store, 2, estimator=TINY, max_epochs=3, seed=5, logger=False, progress=False)


def test_members_are_trained_with_consecutive_seeds(ensemble):
    assert isinstance(ensemble, EnsemblePosterior) and len(ensemble.posteriors) == 2
    assert [m.info.training["seed"] for m in ensemble.posteriors] == [5, 6]
    first, second = (m.posterior_estimator.state_dict() for m in ensemble.posteriors)
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].is_floating_point())
    assert torch.allclose(ensemble.weights, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="n_ensemble must be an integer of at least 2, got 1"):
        train_ensemble("unused.zarr", 1)


def test_disagreement(ensemble):
    x = np.array([[0.2, -0.1], [1.0, 0.5]])
    report = ensemble_disagreement(ensemble, x, n_samples=400, seed=1)
    assert report["mean"].dims == ("member", "obs", "param") and report["mean"].shape == (2, 2, 2)
    assert report["mean_spread"].shape == (2, 2) and np.isfinite(report["mean_spread"]).all()
    assert (report["log_prob_std"] > 0).all()
    expected = report["mean"].std("member", ddof=1) / report["std"].mean("member")
    np.testing.assert_allclose(report["mean_spread"], expected)
    # two copies of one estimator: the same density (log-prob spread exactly 0), means
    # apart only by the sampling error, about std / sqrt(n_samples)
    member = ensemble.posteriors[0]
    same = ensemble_disagreement(EnsemblePosterior([member, member]), x, n_samples=400, seed=1)
    assert float(same["log_prob_std"].max()) == 0.0
    assert float(same["mean_spread"].max()) < 5 / np.sqrt(400)
    assert report.identical(ensemble_disagreement(ensemble, x, n_samples=400, seed=1))
