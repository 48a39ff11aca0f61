"""Shared stores and posteriors of the training tests (built once per session).

- a linear-Gaussian store of 10^4 simulations (analytic posterior);
- an MPR store: 6 nodes, G and eta on 2 nodes, 10 s at dt 0.1 ms, 3000 simulations,
  features = per-node mean/std of the 1-ms temporal average of r and its FC; and an NSF
  posterior trained on it by streaming.
"""

from __future__ import annotations

import numpy as np
import pytest

from vbi_dask import Connectome, Simulation, TemporalAverage
from vbi_dask.budget import Budget
from vbi_dask.prior import Prior
from vbi_dask.train import train_posterior
from vbi_dask.train._synthetic import linear_gaussian_data, linear_gaussian_prior, write_store

LG_DIM, LG_SIGMA, LG_N = 3, 0.5, 10_000
MPR_NODES, MPR_SIMS = 6, 3000
# small networks train in seconds; the defaults (50 hidden, 5 transforms) are for real work
SMALL_NSF = {"model": "nsf", "hidden_features": 32, "num_transforms": 3}


def mpr_connectome() -> Connectome:
    rng = np.random.default_rng(11)
    weights = rng.uniform(0.0, 1.0, (MPR_NODES, MPR_NODES))
    np.fill_diagonal(weights, 0.0)
    weights = (weights + weights.T) / 2
    return Connectome(weights=weights / weights.max(), name="tiny6")


def mpr_budget(n_sims: int = MPR_SIMS, duration_ms: float = 10_000.0) -> Budget:
    simulation = Simulation(
        "mpr",
        connectome=mpr_connectome(),
        dt_ms=0.1,
        duration_ms=duration_ms,
        t_cut_ms=200.0,
        monitors=(TemporalAverage(1.0),),
    )
    prior = Prior(
        {"G": (0.0, 0.6), "eta": {"low": -6.0, "high": -4.0, "nodes": [0, 1]}}, model="mpr", n_nodes=MPR_NODES
    )
    features = [{"name": "moments", "stats": ["mean", "std"]}, "fc"]
    return Budget(simulation, prior, n_sims=n_sims, features=features, chunk_size=250, seed=3)


# a flow small enough to train in a second (tests of the training machinery, not of fits)
TINY = {"model": "maf", "hidden_features": 8, "num_transforms": 1}


def write_lg_store(path, n: int, *, seed: int, chunk_size: int, dim: int = 2, sigma: float = 0.5):
    """A linear-Gaussian store at ``path``: theta ~ N(0, I_dim), x = theta + sigma noise."""
    theta, x = linear_gaussian_data(n, dim, sigma, seed=seed)
    write_store(path, theta, x, linear_gaussian_prior(dim), chunk_size=chunk_size)
    return path


@pytest.fixture(scope="session")
def lg_store(tmp_path_factory):
    """Linear-Gaussian store: theta ~ N(0, I_3), x = theta + 0.5 noise, 10^4 rows."""
    path = tmp_path_factory.mktemp("lg") / "lg.zarr"
    theta, x = linear_gaussian_data(LG_N, LG_DIM, LG_SIGMA, seed=1)
    write_store(path, theta, x, linear_gaussian_prior(LG_DIM), chunk_size=256)
    return path


@pytest.fixture(scope="session")
def mpr_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpr") / "mpr.zarr"
    summary = mpr_budget().run(path, scheduler="threads", n_workers=2, progress=False)
    assert summary.complete
    assert summary.invalid < 0.05 * MPR_SIMS  # diverging runs are flagged, and rare in this prior
    return path


@pytest.fixture(scope="session")
def mpr_posterior(mpr_store):
    return train_posterior(
        mpr_store,
        estimator=SMALL_NSF,
        batch_size=256,
        learning_rate=1e-3,
        max_epochs=150,
        stop_after_epochs=10,
        test_fraction=0.1,
        seed=1,
    )
