"""Ensembles of posterior estimators trained on one store, and how much they disagree.

Estimators trained with different seeds (initial weights, batch order) agree where the
training data pin the posterior down and disagree where they do not (an observation far
from the simulations, too few simulations, an estimator that has not converged): their
disagreement is a cheap check of a posterior (Lakshminarayanan et al. 2017, "Simple and
scalable predictive uncertainty estimation using deep ensembles"; sbi's
``EnsemblePosterior`` mixes the members with equal weights).

>>> ensemble = train_ensemble("budget.zarr", 5, estimator="nsf", seed=0)
>>> report = ensemble_disagreement(ensemble, x_observed)    # Dataset (obs, param)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from sbi.inference.posteriors.ensemble_posterior import EnsemblePosterior

from .posterior import StorePosterior, check_observation, sample_posterior, train_posterior

__all__ = ["train_ensemble", "ensemble_disagreement"]


def train_ensemble(
    store: str | os.PathLike, n_ensemble: int, *, seed: int = 0, log_dir: str | os.PathLike | None = None, **kwargs: Any
) -> EnsemblePosterior:
    """Train ``n_ensemble`` posteriors on the same store and split, with seeds ``seed``,
    ``seed + 1``, ..., and mix them with equal weights.

    Parameters
    ----------
    store, kwargs : as :func:`train_posterior` (every member gets the same).
    n_ensemble : number of members (at least 2).
    seed : the first member's seed.
    log_dir : member ``k`` logs and checkpoints in ``LOG_DIR/member_k``.

    Returns
    -------
    sbi's ``EnsemblePosterior``; ``.posteriors`` are the members
    (:class:`StorePosterior`, each with its ``info``).
    """
    if isinstance(n_ensemble, bool) or not isinstance(n_ensemble, (int, np.integer)) or n_ensemble < 2:
        raise ValueError(f"n_ensemble must be an integer of at least 2, got {n_ensemble!r}")
    members = [
        train_posterior(
            store, seed=seed + k, log_dir=None if log_dir is None else Path(log_dir) / f"member_{k}", **kwargs
        )
        for k in range(int(n_ensemble))
    ]
    with torch.random.fork_rng(devices=[]):
        return EnsemblePosterior(members)


def ensemble_disagreement(ensemble: EnsemblePosterior, x: Any, *, n_samples: int = 1000, seed: int = 0) -> xr.Dataset:
    """How much the members of an ensemble disagree on observation(s) ``x``.

    Parameters
    ----------
    ensemble : from :func:`train_ensemble` (members are :class:`StorePosterior`).
    x : features (feature,) or (obs, feature); see :func:`check_observation`.
    n_samples : posterior samples per member and observation.
    seed : member ``k`` samples with ``seed + k``.

    Returns
    -------
    Dataset with

    - ``mean``, ``std`` (member, obs, param): each member's posterior mean and std;
    - ``mean_spread`` (obs, param): the std over members of their posterior means, over
      the mean posterior std (near 0: the members agree; near or above 1: they place the
      posterior differently by about its own width);
    - ``log_prob_std`` (obs): the std over members of their log densities at the pooled
      samples, averaged over the samples (0 when the members are the same density).
    """
    members = list(ensemble.posteriors)
    if not all(isinstance(m, StorePosterior) for m in members):
        raise TypeError("ensemble_disagreement needs an ensemble of StorePosterior (from train_ensemble)")
    info = members[0].info
    tensor, _ = check_observation(x, info)
    draws = []
    for k, member in enumerate(members):
        samples = sample_posterior(member, tensor, n_samples, seed=seed + k).transpose("sample", ...).values
        draws.append(samples.reshape(n_samples, len(tensor), -1))
    draws = np.stack(draws)  # (member, sample, obs, param)
    mean, std = draws.mean(axis=1), draws.std(axis=1, ddof=1)
    log_prob_std = np.empty(len(tensor))
    for j in range(len(tensor)):
        pooled = torch.as_tensor(draws[:, :, j].reshape(-1, draws.shape[-1]), dtype=torch.float32)
        with torch.no_grad():
            logs = torch.stack([m.log_prob(pooled, x=tensor[j : j + 1], norm_posterior=False) for m in members])
        log_prob_std[j] = float(logs.std(dim=0).mean())
    dims = ("member", "obs", "param")
    return xr.Dataset(
        {
            "mean": (dims, mean),
            "std": (dims, std),
            "mean_spread": (dims[1:], mean.std(axis=0, ddof=1) / std.mean(axis=0)),
            "log_prob_std": ("obs", log_prob_std),
        },
        coords={"member": np.arange(len(members)), "obs": np.arange(len(tensor)), "param": list(info.param_names)},
        attrs={"n_samples": n_samples, "seed": seed},
    )
