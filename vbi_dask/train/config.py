"""A training's settings, declared once (torch-free: the command line reads them).

:class:`TrainConfig` holds every setting of :func:`~vbi_dask.train.train_posterior`;
:class:`EstimatorConfig` the estimator's architecture; :class:`SamplerConfig` how an NLE
or NRE posterior samples. Each field carries its default and its help (see
:mod:`vbi_dask._options`), from which derive

- ``train_posterior(store, config=None, **options)``: ``options`` are these fields, its
  signature lists them with these defaults;
- the YAML of ``vbi-dask train --config FILE`` and the ``train:`` settings of a sequential
  store: a mapping of these names (``estimator`` a name or a mapping of
  :class:`EstimatorConfig`'s fields);
- the flags of ``vbi-dask train`` and ``vbi-dask sequential``: ``--batch-size``,
  ``--learning-rate``, ``--stop-after-epochs``, ``--hidden-features``, ... (the field
  names with dashes).

>>> TrainConfig(learning_rate=1e-3).replace(estimator="maf").estimator_config
EstimatorConfig(model='maf', hidden_features=50, num_transforms=5, num_bins=10, num_components=10, embedding=())
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from .._cli_common import positive_float, positive_int
from .._options import from_mapping, option
from ._names import METHODS, SAMPLERS

__all__ = ["TrainConfig", "EstimatorConfig", "SamplerConfig", "DENSITY_ESTIMATORS", "CLASSIFIERS"]

# sbi's posterior_nn models that are conditional density estimators trained by NLL.
DENSITY_ESTIMATORS = (
    "maf",
    "nsf",
    "mdn",
    "made",
    "maf_rqs",
    "zuko_maf",
    "zuko_nsf",
    "zuko_naf",
    "zuko_unaf",
    "zuko_nice",
    "zuko_sospf",
    "zuko_gf",
    "zuko_bpf",
)
# sbi's classifier_nn models (the ratio estimators of NRE).
CLASSIFIERS = ("resnet", "mlp")


def _positive_integers(owner: Any, *names: str, least: int = 1) -> None:
    for name in names:
        number = getattr(owner, name)
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {number!r}")
        object.__setattr__(owner, name, int(number))


def _widths(text: str) -> tuple[int, ...]:
    """An argparse ``type``: comma-separated positive widths, e.g. ``128,32``."""
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        widths = (0,)
    if any(w < 1 for w in widths):
        import argparse

        raise argparse.ArgumentTypeError(f"must be comma-separated positive widths like 128,32, got {text!r}")
    return widths


@dataclass(frozen=True)
class EstimatorConfig:
    """Architecture of a neural posterior estimator (JSON-able).

    Parameters
    ----------
    model : one of :data:`DENSITY_ESTIMATORS` (sbi's ``posterior_nn`` names), e.g.
        ``"nsf"`` (neural spline flow) or ``"maf"`` (masked autoregressive flow); for
        method ``"nre"`` one of :data:`CLASSIFIERS` (sbi's ``classifier_nn`` names).
    hidden_features : width of the flow's conditioner networks (of the classifier).
    num_transforms : number of flow transforms.
    num_bins : spline bins (``nsf``).
    num_components : mixture components (``mdn``).
    embedding : hidden widths and output width of an MLP embedding net applied to the
        standardised features, e.g. ``(128, 64, 16)``; empty: none. With ``cnn``, the
        head after the CNN's pooling.
    cnn, cnn_kernel : output channels and kernel length of a 1-D CNN over the raw signal
        columns (:class:`vbi_dask.train.embedding.SignalCNN`); empty: no CNN.
    """

    model: str = option("nsf", "sbi estimator", flag=False)  # the command line's --estimator
    hidden_features: int = option(50, "hidden features of the flow's networks (of the classifier)", parse=positive_int)
    num_transforms: int = option(5, "flow transforms", parse=positive_int)
    num_bins: int = option(10, "spline bins (nsf)", parse=positive_int)
    num_components: int = option(10, "mixture components (mdn)", parse=positive_int)
    embedding: tuple[int, ...] = option(
        (), "widths of an MLP embedding of the features, e.g. 128,32", parse=_widths, metavar="WIDTHS"
    )
    cnn: tuple[int, ...] = option(
        (),
        "output channels of a 1-D CNN over the raw signal columns (raw[t,c]), e.g. 16,32; the embedding "
        "widths are then its head",
        parse=_widths,
        metavar="WIDTHS",
    )
    cnn_kernel: int = option(5, "kernel length of the CNN's convolutions (odd)", parse=positive_int)

    def __post_init__(self):
        if self.model not in DENSITY_ESTIMATORS + CLASSIFIERS:
            raise ValueError(
                f"unknown density estimator {self.model!r}; valid: {', '.join(DENSITY_ESTIMATORS)}; "
                f"classifiers (method 'nre'): {', '.join(CLASSIFIERS)}"
            )
        for name in ("hidden_features", "num_transforms", "num_bins", "num_components"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        embedding = tuple(int(w) for w in (self.embedding or ()))
        if any(w < 1 for w in embedding):
            raise ValueError(f"embedding widths must be positive, got {embedding}")
        object.__setattr__(self, "embedding", embedding)
        cnn = tuple(int(w) for w in (self.cnn or ()))
        if any(w < 1 for w in cnn):
            raise ValueError(f"cnn widths must be positive, got {cnn}")
        object.__setattr__(self, "cnn", cnn)
        if (
            isinstance(self.cnn_kernel, bool)
            or not isinstance(self.cnn_kernel, (int, np.integer))
            or (self.cnn_kernel < 1 or self.cnn_kernel % 2 == 0)
        ):
            raise ValueError(f"cnn_kernel must be an odd positive integer, got {self.cnn_kernel!r}")
        object.__setattr__(self, "cnn_kernel", int(self.cnn_kernel))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["embedding"] = list(self.embedding)
        out["cnn"] = list(self.cnn)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EstimatorConfig":
        return from_mapping(
            cls, {**data, "embedding": tuple(data.get("embedding", ())), "cnn": tuple(data.get("cnn", ()))}, "estimator"
        )

    @classmethod
    def of(cls, value: "str | EstimatorConfig | Mapping[str, Any] | None", method: str = "npe") -> "EstimatorConfig":
        """From a model name, a config or its dict; None: ``"nsf"`` (``"resnet"`` for NRE).

        Raises
        ------
        ValueError
            An unknown model or option (the message lists the valid ones).
        """
        if value is None:
            return cls(model="resnet" if method == "nre" else "nsf")
        if isinstance(value, EstimatorConfig):
            return value
        if isinstance(value, str):
            return cls(model=value)
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise TypeError(f"estimator must be a name, an EstimatorConfig or a dict, got {type(value).__name__}")


@dataclass(frozen=True)
class SamplerConfig:
    """How the posterior of NLE or NRE samples (JSON-able, saved in ``info.sampling``).

    Parameters
    ----------
    sample_with : "mcmc" (sbi's ``MCMCPosterior``, vectorised slice sampling,
        ``"slice_np_vectorized"``) or "rejection" (sbi's ``RejectionPosterior`` with
        the prior as proposal).
    num_chains, warmup_steps, thin : of the MCMC chains (sbi's defaults: 20, 200, 1).
    """

    sample_with: str = "mcmc"
    num_chains: int = 20
    warmup_steps: int = 200
    thin: int = 1

    def __post_init__(self):
        if self.sample_with not in SAMPLERS:
            raise ValueError(f"unknown sample_with {self.sample_with!r}; valid: {', '.join(SAMPLERS)}")
        for name, least in (("num_chains", 1), ("warmup_steps", 0), ("thin", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            object.__setattr__(self, name, int(value))

    @classmethod
    def of(cls, value: "str | SamplerConfig | Mapping[str, Any]") -> "SamplerConfig":
        """From a sampler name, a config or its dict.

        Raises
        ------
        ValueError
            An unknown sampler or option, or a bad number (the message lists the valid ones).
        """
        if isinstance(value, SamplerConfig):
            return value
        if isinstance(value, str):
            return cls(sample_with=value)
        if isinstance(value, Mapping):
            return from_mapping(cls, value, "sampler")
        raise TypeError(f"sample_with must be a name, a SamplerConfig or a dict, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return value


def _optional_positive_float(text: str) -> float | None:
    return None if text.lower() == "none" else positive_float(text)


def _devices(text: str) -> int | str:
    return text if text == "auto" else positive_int(text)


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training (see :func:`~vbi_dask.train.train_posterior`, whose
    docstring says what each one does). Frozen; :meth:`replace` gives a changed copy."""

    method: str = option(
        "npe",
        "what to learn: the posterior (npe; snpe-c, atomic loss, for rows from any "
        "proposal), the likelihood (nle) or the likelihood ratio (nre)",
        choices=METHODS,
    )
    estimator: str | EstimatorConfig | Mapping[str, Any] | None = option(
        None,
        "sbi density estimator: nsf, maf, mdn, ...; for --method nre a classifier: resnet, mlp (none: nsf, "
        "resnet for nre)",
        metavar="NAME",
    )
    features: tuple[str, ...] | None = option(
        None, "feature columns to use: names or prefixes ending in * (none: all)", nargs="+", metavar="NAME"
    )
    batch_size: int = option(200, "training batch size", parse=positive_int)
    learning_rate: float = option(5e-4, "Adam learning rate", parse=positive_float)
    max_epochs: int = option(1000, "most epochs", parse=positive_int)
    stop_after_epochs: int = option(20, "epochs without a better validation loss before stopping", parse=positive_int)
    clip_max_norm: float | None = option(
        5.0, "gradient norm clipping (none: no clipping)", parse=_optional_positive_float
    )
    validation_fraction: float = option(0.1, "fraction of the simulations for validation", parse=_fraction)
    test_fraction: float = option(0.0, "fraction held out for diagnostics, never read in training", parse=_fraction)
    split_seed: int = option(0, "seed of the split of the simulations", parse=int)
    seed: int = option(0, "seed of the initial weights, the shuffle and every epoch's draws", parse=int)
    buffer_chunks: int = option(16, "store chunks held for shuffling", parse=positive_int)
    prefetch_chunks: int = option(4, "store chunks read ahead", parse=positive_int)
    num_workers: int = option(0, "data-loader worker processes", parse=_non_negative_int)
    accelerator: str = option("auto", "Lightning's accelerator: cpu, gpu or auto")
    devices: int | str = option(1, "devices, or auto", parse=_devices)
    strategy: str = option("auto", "Lightning's strategy, e.g. ddp")
    logger: Any = option(
        "csv", "metrics log in the log folder: csv, or tensorboard as well", choices=("csv", "tensorboard")
    )
    progress: bool = option(True, "show progress", flag=False)  # the command line's --quiet
    precision: str | int | None = option(None, "Lightning's precision, e.g. 32-true, bf16-mixed (none: 32-true)")
    threads: int | None = option(
        None, "torch threads (none: the CPUs this process may use, less one, at least 1)", parse=positive_int
    )
    sample_with: str | SamplerConfig | Mapping[str, Any] = option(
        "mcmc", "how an nle or nre posterior samples: mcmc (slice sampling) or rejection", choices=SAMPLERS
    )

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        if isinstance(self.features, str):
            object.__setattr__(self, "features", (self.features,))
        elif self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        _positive_integers(self, "batch_size", "max_epochs", "buffer_chunks", "prefetch_chunks")
        _positive_integers(self, "stop_after_epochs", "num_workers", least=0)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
        if not float(self.learning_rate) > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    @classmethod
    def of(cls, value: "TrainConfig | Mapping[str, Any] | None" = None, **options: Any) -> "TrainConfig":
        """From a config, a mapping of its fields (YAML) or None (the defaults), with
        ``options`` (its fields) replaced.

        Raises
        ------
        ValueError
            Unknown options (the message lists the valid ones), and bad values.
        """
        if value is None:
            value = cls()
        elif isinstance(value, Mapping):
            value = from_mapping(cls, value, "training")
        elif not isinstance(value, TrainConfig):
            raise TypeError(f"a training config must be a TrainConfig or a mapping, got {type(value).__name__}")
        return value.replace(**options) if options else value

    def replace(self, **options: Any) -> "TrainConfig":
        """A copy with ``options`` changed (unknown names refused, listing the valid ones)."""
        names = [f.name for f in fields(self)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; valid: {', '.join(names)}")
        return dataclasses.replace(self, **options)

    @property
    def estimator_config(self) -> EstimatorConfig:
        """The estimator's architecture (None: ``"nsf"``, ``"resnet"`` for NRE)."""
        return EstimatorConfig.of(self.estimator, self.method)

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig.of(self.sample_with)
