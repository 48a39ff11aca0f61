"""sbi density estimators whose input standardisation comes from streamed statistics.

sbi's builders (``sbi.neural_nets.posterior_nn``) compute their z-scoring from a batch
of training data held in memory. Here the statistics come from one streamed pass over
the store (:meth:`StoreData.zscore`), and the estimator is built so that it contains
them:

- the condition (features) goes through :class:`FeatureStandardizer` (select columns,
  subtract the mean, divide by the std), then the optional embedding net: the
  posterior takes raw store features;
- theta's z-scoring is sbi's own (``z_score_theta="independent"``), built from a
  two-row batch ``mean -+ std / sqrt(2)`` whose mean and (ddof=1) std are exactly the
  streamed ones.

The same holds for the other training methods (see :func:`train_posterior`'s
``method``): a ratio classifier (NRE) reads the features through the same
:class:`FeatureStandardizer`; a likelihood estimator (NLE), a density over the features,
reads the used columns through :class:`SelectedFeatures` and z-scores them with sbi's
own standardising transform built from the same kind of two-row batch.

:func:`build_estimator` rebuilds the same architecture from an :class:`EstimatorConfig`
and the statistics, which is how a saved posterior is loaded (weights only, no pickle).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from sbi.neural_nets.estimators.base import ConditionalDensityEstimator as ConditionalDensityEstimatorBase
from torch import nn

from ._names import METHODS
from .config import CLASSIFIERS, DENSITY_ESTIMATORS, EstimatorConfig

__all__ = [
    "EstimatorConfig",
    "FeatureStandardizer",
    "SelectedFeatures",
    "build_estimator",
    "check_estimator",
    "DENSITY_ESTIMATORS",
    "CLASSIFIERS",
    "METHODS",
]


class FeatureStandardizer(nn.Module):
    """Select feature columns and z-score them: ``(x[..., index] - mean) / std``.

    Saved with the estimator: ``index`` (int64 buffer), ``mean`` and ``std`` (float32,
    frozen parameters: sbi 0.27's ``posterior_nn`` rejects an embedding net without
    parameters, ``next(net.parameters())`` in ``check_net_device``).
    """

    def __init__(self, index: Sequence[int], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))
        frozen = lambda v: nn.Parameter(
            torch.as_tensor(np.asarray(v), dtype=torch.float32),  # noqa: E731
            requires_grad=False,
        )
        self.mean, self.std = frozen(mean), frozen(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.index_select(-1, self.index) - self.mean) / self.std


def _mlp(widths: Sequence[int], n_in: int) -> nn.Module:
    layers: list[nn.Module] = []
    for k, width in enumerate(widths):
        layers.append(nn.Linear(n_in, width))
        if k < len(widths) - 1:
            layers.append(nn.ReLU())
        n_in = width
    return nn.Sequential(*layers)


class SelectedFeatures(ConditionalDensityEstimatorBase):
    """A density estimator of the used feature columns that takes the store's raw
    feature vector: ``log_prob(x, theta) = estimator.log_prob(x[..., index], theta)``.

    ``index`` is saved with it (an int64 buffer); the wrapped estimator is ``net``.
    ``sample`` draws the used columns only.
    """

    def __init__(self, estimator, index: Sequence[int], n_features: int):
        super().__init__(estimator, input_shape=(int(n_features),), condition_shape=estimator.condition_shape)
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))

    def log_prob(self, input: torch.Tensor, condition: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.net.log_prob(input.index_select(-1, self.index), condition, **kwargs)

    def loss(self, input: torch.Tensor, condition: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.net.loss(input.index_select(-1, self.index), condition, **kwargs)

    def sample(self, sample_shape: torch.Size, condition: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.net.sample(sample_shape, condition, **kwargs)


def _two_rows(mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """A batch whose mean and (ddof=1) std are exactly ``mean`` and ``std``."""
    half = torch.as_tensor(np.asarray(std, dtype=np.float64) / math.sqrt(2.0))
    centre = torch.as_tensor(np.asarray(mean, dtype=np.float64))
    return torch.stack([centre - half, centre + half]).to(torch.float32)


def check_estimator(config: EstimatorConfig, method: str, *, embedding: bool = False) -> None:
    """Check that ``config`` (and a custom embedding net, if ``embedding``) fits ``method``.

    Raises
    ------
    ValueError
        An unknown method; a model that does not fit it (a classifier for NRE, a density
        estimator otherwise); an embedding for NLE (whose features are the estimator's
        output, not its condition). The messages list the valid choices.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    wanted = CLASSIFIERS if method == "nre" else DENSITY_ESTIMATORS
    if config.model not in wanted:
        kind = "a classifier" if method == "nre" else "a density estimator"
        raise ValueError(f"method {method!r} needs {kind}, got model {config.model!r}; valid: {', '.join(wanted)}")
    if method == "nle" and (embedding or config.embedding or config.cnn):
        raise ValueError("method 'nle' takes no embedding net: the features are what its estimator models")


def build_estimator(
    config: EstimatorConfig,
    *,
    theta_mean: np.ndarray,
    theta_std: np.ndarray,
    feature_index: np.ndarray,
    x_mean: np.ndarray,
    x_std: np.ndarray,
    n_features: int,
    embedding_net: nn.Module | None = None,
    method: str = "npe",
    feature_names: Sequence[str] | None = None,
):
    """An untrained sbi estimator for ``method`` that takes the store's ``n_features``
    raw feature columns, of which ``feature_index`` are used.

    - ``"npe"``, ``"snpe-c"``: a ``ConditionalDensityEstimator`` of theta given x;
    - ``"nle"``: a :class:`SelectedFeatures` density estimator of the used columns given
      theta (sbi's ``likelihood_nn``);
    - ``"nre"``: an sbi ``RatioEstimator`` (``classifier_nn``) of (theta, x).

    ``x_mean``/``x_std`` are those of the used columns; ``embedding_net`` (a module
    taking the standardised used columns) replaces ``config.embedding``. With
    ``config.cnn``, a :class:`~vbi_dask.train.embedding.SignalCNN` over the used columns
    (``feature_names``: their names) with ``config.embedding`` as its head.

    Raises
    ------
    ValueError
        The estimator does not fit the method (see :func:`check_estimator`).
    """
    from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn

    check_estimator(config, method, embedding=embedding_net is not None)
    feature_index = np.asarray(feature_index, dtype=np.int64)
    batch_theta = _two_rows(theta_mean, theta_std)
    batch_x = torch.zeros(2, int(n_features), dtype=torch.float32)
    kwargs = dict(
        hidden_features=config.hidden_features,
        num_transforms=config.num_transforms,
        num_bins=config.num_bins,
        num_components=config.num_components,
    )
    if method == "nle":
        builder = likelihood_nn(config.model, z_score_theta="independent", z_score_x="independent", **kwargs)
        return SelectedFeatures(builder(batch_theta, _two_rows(x_mean, x_std)), feature_index, n_features)
    if embedding_net is None and config.cnn:
        from .embedding import SignalCNN

        if feature_names is None or len(feature_names) != len(feature_index):
            raise ValueError("a CNN embedding needs the names of the used feature columns")
        embedding_net = SignalCNN(feature_names, config.cnn, config.cnn_kernel, head=config.embedding)
    if embedding_net is None:
        embedding_net = _mlp(config.embedding, len(feature_index)) if config.embedding else nn.Identity()
    condition_net = nn.Sequential(FeatureStandardizer(feature_index, x_mean, x_std), embedding_net)
    if method == "nre":
        builder = classifier_nn(
            config.model,
            z_score_theta="independent",
            z_score_x="none",
            hidden_features=config.hidden_features,
            embedding_net_x=condition_net,
        )
        return builder(batch_theta, batch_x)
    builder = posterior_nn(
        config.model, z_score_theta="independent", z_score_x="none", embedding_net=condition_net, **kwargs
    )
    return builder(batch_theta, batch_x)
