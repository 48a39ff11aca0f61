"""Training neural posteriors from a budget store (the ``train`` extra: torch, Lightning,
sbi and matplotlib; without it, importing this package raises a one-line
:class:`~vbi_dask._extras.MissingExtraError` naming the extra).

Data flows store -> :class:`StoreData` (split, z-score statistics, chunk reads) ->
:class:`StoreStream` (shuffled batches) -> Lightning (:class:`DensityEstimatorModule`)
-> an sbi ``DirectPosterior`` (:class:`StorePosterior`) that takes raw store features.

>>> from vbi_dask.train import train_posterior, sample_posterior, posterior_zscores, heldout
>>> posterior = train_posterior("budget.zarr", estimator="nsf", test_fraction=0.1)
>>> sims, theta, x = heldout(posterior)
>>> stats = posterior_zscores(posterior, theta, x)       # z, shrinkage (obs, param)

The names below are imported from their modules on first use, so that the command line
(``vbi_dask.train._cli``) loads torch only when a training command runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._extras import require as _require

_require("train", "vbi_dask.train")  # deferred while vbi_dask.cli loads the training commands' parsers

# public name -> the module defining it
_MODULES = {
    "data": ("StoreData", "StoreStream", "ZScore", "split_of"),
    "config": ("TrainConfig", "EstimatorConfig", "SamplerConfig"),
    "estimator": ("FeatureStandardizer", "build_estimator"),
    "embedding": ("SignalCNN",),
    "module": ("DensityEstimatorModule", "StoreDataModule"),
    "posterior": (
        "PosteriorInfo",
        "StorePosterior",
        "train_posterior",
        "save_posterior",
        "load_posterior",
        "sample_posterior",
        "check_observation",
        "select_features",
        "SamplingTimeout",
    ),
    "_methods": ("StoreMCMCPosterior", "StoreRejectionPosterior"),
    "diagnostics": (
        "posterior_zscores",
        "heldout",
        "prior_variance",
        "Calibration",
        "calibration",
        "plot_pair",
        "plot_zscore_shrinkage",
        "plot_sbc",
        "plot_tarp",
        "plot_fc_predictive",
    ),
    "observe": ("load_empirical", "observe_signal", "simulate_observation", "posterior_predictive", "simulate_signals"),
    "_misspecification": ("misspecification",),
    "_ensemble": ("train_ensemble", "ensemble_disagreement"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _require("train", "vbi_dask.train")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs
    from .data import StoreData, StoreStream, ZScore, split_of
    from .diagnostics import (
        Calibration,
        calibration,
        heldout,
        plot_fc_predictive,
        plot_pair,
        plot_sbc,
        plot_tarp,
        plot_zscore_shrinkage,
        posterior_zscores,
        prior_variance,
    )
    from .config import EstimatorConfig, SamplerConfig, TrainConfig
    from .embedding import SignalCNN
    from .estimator import FeatureStandardizer, build_estimator
    from .module import DensityEstimatorModule, StoreDataModule
    from .observe import (
        load_empirical,
        observe_signal,
        posterior_predictive,
        simulate_observation,
        simulate_signals,
    )
    from ._ensemble import ensemble_disagreement, train_ensemble
    from ._methods import StoreMCMCPosterior, StoreRejectionPosterior
    from ._misspecification import misspecification
    from .posterior import (
        PosteriorInfo,
        SamplingTimeout,
        StorePosterior,
        check_observation,
        load_posterior,
        sample_posterior,
        save_posterior,
        select_features,
        train_posterior,
    )
