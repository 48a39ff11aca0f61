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

:func:`build_estimator` rebuilds the same architecture from an :class:`EstimatorConfig`
and the statistics, which is how a saved posterior is loaded (weights only, no pickle).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["EstimatorConfig", "FeatureStandardizer", "build_estimator", "DENSITY_ESTIMATORS"]

# sbi's posterior_nn models that are conditional density estimators trained by NLL.
DENSITY_ESTIMATORS = ("maf", "nsf", "mdn", "made", "maf_rqs", "zuko_maf", "zuko_nsf", "zuko_naf", "zuko_unaf",
                      "zuko_nice", "zuko_sospf", "zuko_gf", "zuko_bpf")


@dataclass(frozen=True)
class EstimatorConfig:
    """Architecture of a neural posterior estimator (JSON-able).

    Parameters
    ----------
    model : one of :data:`DENSITY_ESTIMATORS` (sbi's ``posterior_nn`` names), e.g.
        ``"nsf"`` (neural spline flow) or ``"maf"`` (masked autoregressive flow).
    hidden_features : width of the flow's conditioner networks.
    num_transforms : number of flow transforms.
    num_bins : spline bins (``nsf``).
    num_components : mixture components (``mdn``).
    embedding : hidden widths and output width of an MLP embedding net applied to the
        standardised features, e.g. ``(128, 64, 16)``; empty: none.
    """

    model: str = "nsf"
    hidden_features: int = 50
    num_transforms: int = 5
    num_bins: int = 10
    num_components: int = 10
    embedding: tuple[int, ...] = field(default=())

    def __post_init__(self):
        if self.model not in DENSITY_ESTIMATORS:
            raise ValueError(f"unknown density estimator {self.model!r}; valid: {', '.join(DENSITY_ESTIMATORS)}")
        for name in ("hidden_features", "num_transforms", "num_bins", "num_components"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        embedding = tuple(int(w) for w in (self.embedding or ()))
        if any(w < 1 for w in embedding):
            raise ValueError(f"embedding widths must be positive, got {embedding}")
        object.__setattr__(self, "embedding", embedding)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["embedding"] = list(self.embedding)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EstimatorConfig":
        return cls(**{**data, "embedding": tuple(data.get("embedding", ()))})


class FeatureStandardizer(nn.Module):
    """Select feature columns and z-score them: ``(x[..., index] - mean) / std``.

    Saved with the estimator: ``index`` (int64 buffer), ``mean`` and ``std`` (float32,
    frozen parameters: sbi 0.27's ``posterior_nn`` rejects an embedding net without
    parameters, ``next(net.parameters())`` in ``check_net_device``).
    """

    def __init__(self, index: Sequence[int], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))
        frozen = lambda v: nn.Parameter(torch.as_tensor(np.asarray(v), dtype=torch.float32),  # noqa: E731
                                        requires_grad=False)
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


def build_estimator(config: EstimatorConfig, *, theta_mean: np.ndarray, theta_std: np.ndarray,
                    feature_index: np.ndarray, x_mean: np.ndarray, x_std: np.ndarray, n_features: int,
                    embedding_net: nn.Module | None = None):
    """An untrained sbi ``ConditionalDensityEstimator`` of theta given the store's
    ``n_features`` raw feature columns, of which ``feature_index`` are used.

    ``x_mean``/``x_std`` are those of the used columns; ``embedding_net`` (a module
    taking the standardised used columns) replaces ``config.embedding``.
    """
    from sbi.neural_nets import posterior_nn

    feature_index = np.asarray(feature_index, dtype=np.int64)
    if embedding_net is None:
        embedding_net = _mlp(config.embedding, len(feature_index)) if config.embedding else nn.Identity()
    condition_net = nn.Sequential(FeatureStandardizer(feature_index, x_mean, x_std), embedding_net)
    half = torch.as_tensor(np.asarray(theta_std, dtype=np.float64) / math.sqrt(2.0))
    mean = torch.as_tensor(np.asarray(theta_mean, dtype=np.float64))
    batch_theta = torch.stack([mean - half, mean + half]).to(torch.float32)
    batch_x = torch.zeros(2, int(n_features), dtype=torch.float32)
    kwargs = dict(hidden_features=config.hidden_features, num_transforms=config.num_transforms,
                  num_bins=config.num_bins, num_components=config.num_components)
    builder = posterior_nn(config.model, z_score_theta="independent", z_score_x="none",
                           embedding_net=condition_net, **kwargs)
    return builder(batch_theta, batch_x)
