"""Recovery of known MPR parameters on a small network (6 nodes, G and 2 excitabilities):
posterior z-scores and shrinkage on held-out simulations, SBC, re-simulated observations
and the figures."""

from __future__ import annotations

import numpy as np
import pytest

from vbi_dask.features import fc_matrix
from vbi_dask.train import (
    calibration,
    heldout,
    plot_fc_predictive,
    plot_pair,
    plot_sbc,
    plot_tarp,
    plot_zscore_shrinkage,
    posterior_predictive,
    posterior_zscores,
    sample_posterior,
    simulate_observation,
)


@pytest.fixture(scope="module")
def held_out(mpr_posterior, mpr_store):
    sims, theta, x = heldout(mpr_posterior, mpr_store, max_rows=None)
    assert len(sims) > 250 and mpr_posterior.info.split["n_test"] == len(sims)
    return sims, theta, x


@pytest.fixture(scope="module")
def zscores(mpr_posterior, held_out):
    sims, theta, x = held_out
    return posterior_zscores(mpr_posterior, theta, x, n_samples=1000, seed=0, sims=sims)


def test_known_parameters_are_recovered(zscores):
    """Mean shrinkage >= 0.8 and mean z-score <= 2 for G and both eta."""
    shrinkage = zscores["shrinkage"].mean("obs")
    z = zscores["z"].mean("obs")
    assert list(zscores["param"].values) == ["G", "eta[0]", "eta[1]"]
    assert (shrinkage >= 0.8).all(), shrinkage.values
    assert (z <= 2.0).all(), z.values


def test_zscores_against_an_independent_computation(mpr_posterior, held_out, zscores):
    _, theta, x = held_out
    samples = sample_posterior(mpr_posterior, x, 1000, seed=0).values  # the same draws
    z = np.abs(samples.mean(0) - theta) / samples.std(0, ddof=1)
    np.testing.assert_allclose(zscores["z"].values, z, rtol=1e-5)
    width = np.array([0.6, 2.0, 2.0])  # uniform prior widths: variance width^2 / 12
    np.testing.assert_allclose(zscores["shrinkage"].values, 1 - samples.var(0, ddof=1) / (width**2 / 12), rtol=1e-5)


def test_simulation_based_calibration_passes(mpr_posterior, held_out):
    sims, theta, x = held_out
    cal = calibration(mpr_posterior, theta, x, n_samples=300, seed=1)
    assert cal.ranks.shape == (len(sims), 3)
    assert cal.passed(), cal.summary()
    assert set(cal.checks()) == {"sbc_ranks", "sbc_dap", "tarp"} and abs(cal.tarp_atc) < 0.2, cal.summary()
    assert np.abs(cal.coverage - cal.levels).max() < 0.2, cal.summary()


def test_calibration_fails_when_posteriors_do_not_belong_to_their_truths(mpr_posterior, held_out):
    """Each posterior conditioned on another simulation's features: narrow around the wrong
    value, so the truths fall outside and the SBC ranks pile up at the ends. (TARP with
    random references cannot see this: truths and posteriors are then independent draws
    of the prior, whose coverage is exact on average; so the report gives each check's
    verdict, not one.)"""
    _, theta, x = held_out
    shuffled = x[np.random.default_rng(0).permutation(len(x))][:150]
    cal = calibration(mpr_posterior, theta[:150], shuffled, n_samples=100, seed=1)
    assert not cal.checks()["sbc_ranks"] and not cal.passed(), cal.summary()
    assert max(cal.ks_pvals) < 1e-6 and min(cal.c2st_ranks) > 0.7, cal.summary()


def test_a_held_out_run_is_reproduced_from_the_store_alone(mpr_posterior, mpr_store, held_out):
    sims, theta, _ = held_out
    observed = simulate_observation(mpr_store, int(sims[0]))
    np.testing.assert_array_equal(observed["features"].values, observed["stored_features"].values)
    np.testing.assert_array_equal(observed["theta"].values, theta[0])
    samples = sample_posterior(mpr_posterior, observed["features"], 2000, seed=0)
    low, high = np.quantile(samples.values, [0.001, 0.999], axis=0)
    assert ((theta[0] >= low) & (theta[0] <= high)).all()


def test_figures(mpr_posterior, mpr_store, held_out, zscores, tmp_path):
    sims, theta, x = held_out
    samples = sample_posterior(mpr_posterior, x[0], 1000, seed=0)
    observed = simulate_observation(mpr_store, int(sims[0]))
    predictive = posterior_predictive(mpr_store, samples.values[:4])
    assert predictive["signal"].shape[0] == 4 and predictive["valid"].sum() >= 3
    cal = calibration(mpr_posterior, theta[:100], x[:100], n_samples=100, seed=0)
    paths = [
        plot_pair(samples, tmp_path / "pair.png", true=theta[0]),
        plot_zscore_shrinkage(zscores, tmp_path / "z.png"),
        plot_sbc(cal, tmp_path / "sbc.png"),
        plot_tarp(cal, tmp_path / "tarp.png"),
        plot_fc_predictive(
            fc_matrix(observed["signal"].values[None])[0],
            fc_matrix(predictive["signal"].values[predictive["valid"].values]),
            tmp_path / "fc.png",
        ),
    ]
    for path in paths:
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampling_without_rejection_keeps_draws_outside_the_prior(mpr_posterior, held_out):
    """An observation far from every simulation: without rejection the flow's own draws
    come back, some outside the prior's box; rejection stops at max_sampling_time; for a
    simulated observation every draw is inside."""
    from vbi_dask.prior import prior_from_dict

    _, _, x = held_out
    far = x[0] + 5.0 * x.std(axis=0)
    prior = prior_from_dict(mpr_posterior.info.prior)
    with pytest.warns(UserWarning, match="outside the prior support"):  # sbi says so, too
        free = sample_posterior(mpr_posterior, far, 2000, seed=0, reject_outside_prior=False).values
    assert free.shape == (2000, 3) and np.isfinite(free).all()
    assert not prior.in_bounds(free).all()
    with pytest.raises(RuntimeError, match="max_sampling_time"):  # rejection gives up instead of hanging
        sample_posterior(mpr_posterior, far, 200, seed=0, max_sampling_time=2.0)
    kept = sample_posterior(mpr_posterior, x[0], 200, seed=0, max_sampling_time=60.0).values
    assert prior.in_bounds(kept).all()
