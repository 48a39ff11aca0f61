"""Stores of known problems, written with the budget store's schema (tests, benchmarks).

A linear-Gaussian toy: theta ~ N(0, I) over ``eta`` on ``dim`` nodes of MPR (any model
parameter would do: only names and the prior matter), ``x = theta + sigma * noise``.
Its posterior is analytic: N(x / (1 + sigma^2), sigma^2 / (1 + sigma^2) I).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .. import store as _store
from ..connectome import Connectome
from ..features import FeatureSet
from ..prior import Prior
from ..simulation import Simulation

__all__ = ["write_store", "linear_gaussian_prior", "linear_gaussian_data", "linear_gaussian_posterior"]


def write_store(
    path: str | os.PathLike,
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    *,
    chunk_size: int = 256,
    valid: np.ndarray | None = None,
    done_chunks: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
) -> None:
    """Write ``theta`` (sim, param) and ``x`` (sim, feature) as a vbi-dask store.

    ``valid`` defaults to finite rows; ``done_chunks`` lists the chunks to write (default
    all; the others stay not done). Feature names default to ``x[k]``.
    """
    theta, x = np.asarray(theta, dtype=np.float32), np.asarray(x, dtype=np.float32)
    n_sims = len(theta)
    n_nodes = prior.n_nodes
    connectome = Connectome(weights=np.zeros((n_nodes, n_nodes)), name="synthetic")
    names = list(feature_names) if feature_names is not None else [f"x[{k}]" for k in range(x.shape[1])]
    simulation = Simulation(prior.model, connectome=connectome, dt_ms=0.1, duration_ms=1.0)
    attrs = _store.attributes(
        simulation=simulation.to_dict(),
        prior=prior.to_dict(),
        featureset=FeatureSet(["moments"]).to_dict(),  # placeholder: x is not from signals
        connectome=connectome,
        seed=seed,
        n_sims=n_sims,
        chunk_size=chunk_size,
        keep_bold=False,
        feature_signal="synthetic",
        kernel_numerics=None,
    )
    _store.allocate(
        path,
        n_sims=n_sims,
        chunk_size=chunk_size,
        param_names=prior.param_names,
        feature_names=names,
        connectome=connectome,
        attrs=attrs,
    )
    if valid is None:
        valid = np.isfinite(x).all(axis=1) & np.isfinite(theta).all(axis=1)
    chunks = range(-(-n_sims // chunk_size)) if done_chunks is None else done_chunks
    for c in chunks:
        s, e = c * chunk_size, min((c + 1) * chunk_size, n_sims)
        _store.write_block(path, s, e, theta=theta[s:e], features=x[s:e], valid=np.asarray(valid)[s:e])


def linear_gaussian_prior(dim: int) -> Prior:
    return Prior(
        {"eta": {"dist": "Normal", "loc": 0.0, "scale": 1.0, "nodes": list(range(dim))}}, model="mpr", n_nodes=dim
    )


def linear_gaussian_data(n: int, dim: int, sigma: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(theta, x), float32, n draws."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((n, dim))
    return theta.astype(np.float32), (theta + sigma * rng.standard_normal((n, dim))).astype(np.float32)


def linear_gaussian_posterior(x_o: np.ndarray, sigma: float, n: int, *, seed: int) -> np.ndarray:
    """n samples of the analytic posterior given one observation ``x_o`` (dim,)."""
    rng = np.random.default_rng(seed)
    x_o = np.asarray(x_o, dtype=np.float64)
    var = sigma**2 / (1.0 + sigma**2)
    return (x_o / (1.0 + sigma**2) + np.sqrt(var) * rng.standard_normal((n, x_o.size))).astype(np.float32)
