"""Training neural posteriors from a budget store (needs torch, Lightning and sbi).

Data flows store -> :class:`StoreData` (split, z-score statistics, chunk reads) ->
:class:`StoreStream` (shuffled batches) -> Lightning (:class:`DensityEstimatorModule`)
-> an sbi ``DirectPosterior`` (:class:`StorePosterior`) that takes raw store features.

>>> from vbi_dask.train import train_posterior, sample_posterior, posterior_zscores, heldout
>>> posterior = train_posterior("budget.zarr", estimator="nsf", test_fraction=0.1)
>>> sims, theta, x = heldout(posterior)
>>> stats = posterior_zscores(posterior, theta, x)       # z, shrinkage (obs, param)
"""

from .data import StoreData, StoreStream, ZScore, split_of
from .diagnostics import (Calibration, calibration, heldout, plot_fc_predictive, plot_pair, plot_sbc,
                          plot_zscore_shrinkage, posterior_zscores, prior_variance)
from .estimator import EstimatorConfig, FeatureStandardizer, build_estimator
from .module import DensityEstimatorModule, StoreDataModule
from .observe import load_empirical, observe_signal, posterior_predictive, simulate_observation, simulate_signals
from .posterior import (PosteriorInfo, StorePosterior, check_observation, load_posterior, sample_posterior,
                        save_posterior, select_features, train_posterior)

__all__ = [
    "StoreData", "StoreStream", "ZScore", "split_of",
    "EstimatorConfig", "FeatureStandardizer", "build_estimator",
    "DensityEstimatorModule", "StoreDataModule",
    "PosteriorInfo", "StorePosterior", "train_posterior", "save_posterior", "load_posterior",
    "sample_posterior", "check_observation", "select_features",
    "posterior_zscores", "heldout", "prior_variance", "Calibration", "calibration",
    "plot_pair", "plot_zscore_shrinkage", "plot_sbc", "plot_fc_predictive",
    "load_empirical", "observe_signal", "simulate_observation", "posterior_predictive", "simulate_signals",
]
