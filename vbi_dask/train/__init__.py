"""Training neural posteriors from a budget store (needs torch, Lightning and sbi).

Data flows store -> :class:`StoreData` (split, z-score statistics, chunk reads) ->
:class:`StoreStream` (shuffled batches) -> Lightning (:class:`DensityEstimatorModule`)
-> an sbi ``DirectPosterior`` (:class:`StorePosterior`) taking raw store features.
"""

from .data import StoreData, StoreStream, ZScore, split_of
from .estimator import EstimatorConfig, FeatureStandardizer, build_estimator
from .module import DensityEstimatorModule, StoreDataModule
from .posterior import (PosteriorInfo, StorePosterior, check_observation, load_posterior, sample_posterior,
                        save_posterior, select_features, train_posterior)

__all__ = [
    "StoreData", "StoreStream", "ZScore", "split_of",
    "EstimatorConfig", "FeatureStandardizer", "build_estimator",
    "DensityEstimatorModule", "StoreDataModule",
    "PosteriorInfo", "StorePosterior", "train_posterior", "save_posterior", "load_posterior",
    "sample_posterior", "check_observation", "select_features",
]
