"""Priors and grids: names, reproducible per-simulation draws, distributions, sbi, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

from vbi_dask.models import get_model
from vbi_dask.prior import Grid, Prior

from .conftest import N_NODES

MPR = get_model("mpr")


def test_names_and_params_fill_defaults():
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}}, model="mpr", n_nodes=N_NODES)
    assert prior.param_names == ["G", "eta[0]", "eta[3]"]
    theta = prior.sample(5, seed=1)
    params = prior.to_params(theta)
    assert params["G"].dims == ("sim",) and np.array_equal(params["G"].values, theta[:, 0])
    eta = params["eta"]
    assert eta.dims == ("sim", "node") and eta.shape == (5, N_NODES)
    assert np.array_equal(eta.values[:, [0, 3]], theta[:, 1:])
    others = [1, 2, 4, 5]
    assert np.all(eta.values[:, others] == MPR.param("eta").default)


def test_all_nodes_and_a_batch_as_long_as_the_network():
    """6 simulations on 6 nodes: the per-simulation values must not be read as per-node."""
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": "all"}}, model="mpr", n_nodes=N_NODES)
    assert prior.param_names == ["G"] + [f"eta[{i}]" for i in range(N_NODES)]
    theta = prior.sample(N_NODES, seed=3)
    from vbi_dask._params import broadcast_param

    g = broadcast_param("G", prior.to_params(theta)["G"], N_NODES, N_NODES)  # (node, sim)
    assert np.array_equal(g, np.broadcast_to(theta[:, 0], (N_NODES, N_NODES)))


def test_draw_of_a_simulation_does_not_depend_on_the_batch():
    prior = Prior(
        {
            "G": (0.0, 1.0),
            "J": {"dist": "Normal", "loc": 14.5, "scale": 1.0},
            "eta": {"low": -6.0, "high": -3.5, "nodes": [1, 2]},
        },
        model="mpr",
        n_nodes=N_NODES,
    )
    whole = prior.sample(40, seed=9)
    pieces = np.concatenate([prior.sample(e - s, seed=9, first_sim=s) for s, e in [(0, 3), (3, 17), (17, 40)]])
    assert np.array_equal(whole, pieces)
    assert not np.array_equal(whole, prior.sample(40, seed=10))
    assert len(np.unique(whole[:, 0])) == 40  # no repeated draws
    # columns are independent streams: no two columns share their uniforms
    u = scipy.stats.norm.cdf((whole[:, 1] - 14.5) / 1.0)
    assert not np.allclose(u, whole[:, 0])


@pytest.mark.parametrize(
    "spec, cdf",
    [
        ((2.0, 5.0), scipy.stats.uniform(2.0, 3.0).cdf),
        ({"dist": "Normal", "loc": 1.0, "scale": 2.0}, scipy.stats.norm(1.0, 2.0).cdf),
        ({"dist": "LogNormal", "loc": 0.0, "scale": 0.5}, scipy.stats.lognorm(0.5).cdf),
        ({"dist": "Gamma", "concentration": 2.0, "rate": 3.0}, scipy.stats.gamma(2.0, scale=1 / 3.0).cdf),
        ({"dist": "Beta", "concentration1": 2.0, "concentration0": 5.0}, scipy.stats.beta(2.0, 5.0).cdf),
    ],
    ids=["uniform", "normal", "lognormal", "gamma(scipy ppf)", "beta(scipy ppf)"],
)
def test_draws_follow_the_distribution(spec, cdf):
    """Kolmogorov-Smirnov against SciPy's CDF (fixed seed: a deterministic check)."""
    theta = Prior({"J": spec}, model="mpr", n_nodes=N_NODES).sample(4000, seed=2)[:, 0]
    assert scipy.stats.kstest(theta, cdf).pvalue > 1e-3


def test_multivariate_normal_over_nodes_and_fallback_sampler():
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    prior = Prior(
        {
            "eta": {
                "dist": "MultivariateNormal",
                "loc": [-4.0, -5.0],
                "covariance_matrix": cov.tolist(),
                "nodes": [2, 4],
            },
            "J": torch.distributions.FisherSnedecor(torch.tensor(4.0), torch.tensor(6.0)),
        },
        model="mpr",
        n_nodes=N_NODES,
    )
    theta = prior.sample(3000, seed=4)
    np.testing.assert_allclose(theta[:, :2].mean(0), [-4.0, -5.0], atol=4 * np.sqrt(2.0 / 3000))
    np.testing.assert_allclose(np.cov(theta[:, :2].T), cov, atol=0.15)
    # FisherSnedecor has no icdf: torch's sampler seeded per simulation; still chunk independent
    assert np.array_equal(theta[100:130], prior.sample(30, seed=4, first_sim=100))
    assert scipy.stats.kstest(theta[:, 2], scipy.stats.f(4.0, 6.0).cdf).pvalue > 1e-3


def test_to_torch_is_an_sbi_prior():
    from sbi.utils import BoxUniform
    from sbi.utils.user_input_checks import process_prior

    box = Prior({"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}}, model="mpr", n_nodes=N_NODES)
    dist = box.to_torch()
    assert isinstance(dist, BoxUniform)
    assert process_prior(dist)[1] == 3
    np.testing.assert_array_equal(dist.base_dist.low.numpy(), [0.0, -6.0, -6.0])

    mixed = Prior(
        {
            "G": (0.0, 1.0),
            "J": {"dist": "Normal", "loc": 14.5, "scale": 1.0},
            "Delta": {"dist": "Gamma", "concentration": 2.0, "rate": 3.0, "nodes": [0, 1]},
        },
        model="mpr",
        n_nodes=N_NODES,
    )
    processed, numel, _ = process_prior(mixed.to_torch())
    assert numel == 4
    theta = torch.as_tensor(mixed.sample(10, seed=1), dtype=torch.float32)
    log_prob = processed.log_prob(theta)
    expected = scipy.stats.norm(14.5, 1.0).logpdf(theta[:, 1].numpy().astype(float)) + scipy.stats.gamma(
        2.0, scale=1 / 3
    ).logpdf(theta[:, 2:].numpy().astype(float)).sum(1)
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-4)


def test_to_dict_round_trip_is_json_and_reproduces_draws():
    prior = Prior(
        {
            "G": (0.0, 1.0),
            "J": torch.distributions.Normal(14.5, 1.0),
            "eta": {"low": [-6.0, -5.0], "high": [-3.5, -3.0], "nodes": [0, 3]},
        },
        model="mpr",
        n_nodes=N_NODES,
    )
    data = json.loads(json.dumps(prior.to_dict()))
    again = Prior.from_dict(data)
    assert again.param_names == prior.param_names
    assert np.array_equal(again.sample(20, seed=5), prior.sample(20, seed=5))
    assert again.to_dict() == data


def test_in_bounds_flags_rows_outside_the_support():
    prior = Prior(
        {"G": (0.0, 1.0), "Delta": {"dist": "Gamma", "concentration": 2.0, "rate": 1.0}}, model="mpr", n_nodes=N_NODES
    )
    theta = np.array([[0.5, 1.0], [1.0, 0.1], [1.2, 1.0], [0.5, -0.1], [np.nan, 1.0]], dtype=np.float32)
    assert prior.in_bounds(theta).tolist() == [True, True, False, False, False]


def test_grid_points_and_repeats():
    grid = Grid({"G": [0.1, 0.2, 0.3], "eta": [-5.0, -4.0]}, model="mpr", n_nodes=N_NODES)
    assert grid.param_names == ["G", "eta"] and grid.n_points == 6
    theta = grid.sample(8, seed=0)
    assert theta.tolist()[:3] == [[0.1, -5.0], [0.1, -4.0], [0.2, -5.0]]
    assert np.array_equal(theta[6:], theta[:2])  # wraps around: repeats with new noise
    assert np.array_equal(grid.sample(3, first_sim=5), theta[5:8])
    params = grid.to_params(theta)
    assert params["eta"].dims == ("sim",)
    assert isinstance(Prior.from_dict(json.loads(json.dumps(grid.to_dict()))), Grid)
    assert grid.to_torch().base_dist.high.tolist() == pytest.approx([0.3, -4.0])


@pytest.mark.parametrize(
    "spec, error, words",
    [
        ({"Gx": (0.0, 1.0)}, KeyError, ["'Gx'", "valid parameters", "tau", "eta", "G"]),
        ({"G": (1.0, 1.0)}, ValueError, ["'G'", "low (1) must be < high (1)"]),
        ({"G": (2.0, 1.0)}, ValueError, ["low (2) must be < high (1)"]),
        ({"eta": {"low": [-6, -3], "high": [-3.5, -4], "nodes": [0, 1]}}, ValueError, ["at node 1"]),
        ({"eta": {"low": -6, "high": -3, "nodes": [0, 6]}}, ValueError, ["node index 6 out of range [0, 6)"]),
        ({"eta": {"low": -6, "high": -3, "nodes": [1, 1]}}, ValueError, ["repeat"]),
        ({"G": {"dist": "Normal", "loc": 0.0, "scale": -1.0}}, ValueError, ["invalid Normal"]),
        ({"G": {"dist": "Nrmal", "loc": 0.0, "scale": 1.0}}, ValueError, ["unknown distribution 'Nrmal'"]),
        ({"G": {"dist": "Poisson", "rate": 1.0}}, ValueError, ["discrete"]),
        ({"G": (0.0, np.inf)}, ValueError, ["finite"]),
        ({"G": [0.0, 1.0, 2.0]}, ValueError, ["expected (low, high)"]),
    ],
)
def test_bad_priors_are_refused_clearly(spec, error, words):
    with pytest.raises(error) as info:
        Prior(spec, model="mpr", n_nodes=N_NODES)
    message = str(info.value)
    for word in words:
        assert word in message


def test_to_params_checks_shape():
    prior = Prior({"G": (0.0, 1.0)}, model="mpr", n_nodes=N_NODES)
    with pytest.raises(ValueError, match="theta must be"):
        prior.to_params(np.zeros((3, 2)))
    assert isinstance(prior.to_params(np.zeros((3, 1)))["G"], xr.DataArray)
