"""Train a neural posterior from a budget store with Lightning; save, load and sample it.

>>> posterior = train_posterior("budget.zarr", estimator="nsf", test_fraction=0.1, seed=0)
>>> samples = sample_posterior(posterior, x_observed, 2000, seed=1)   # DataArray (sample, param)
>>> save_posterior(posterior, "model.pt"); posterior = load_posterior("model.pt")

The posterior is an sbi ``DirectPosterior`` (a :class:`StorePosterior`, which adds the
:class:`PosteriorInfo` of where it came from) over the store's prior. It takes the
store's raw feature vector: feature selection and z-scoring are layers of the
estimator, with statistics computed out of core.

``method`` chooses what is learnt from the same stream of rows: the posterior ("npe";
"snpe-c", sbi's atomic APT loss, valid for rows from any proposal), the likelihood
("nle") or the likelihood-to-evidence ratio ("nre", NRE-B); the last two sample by MCMC
or rejection (:class:`StoreMCMCPosterior`, :class:`StoreRejectionPosterior`).

>>> posterior = train_posterior("budget.zarr", method="nle", sample_with="mcmc", seed=0)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from sbi.inference.posteriors.direct_posterior import DirectPosterior

from .._options import keyword_signature
from ._methods import METHODS, StoreMCMCPosterior, StoreRejectionPosterior, sampling_posterior
from ._runtime import torch_threads
from .config import EstimatorConfig, SamplerConfig, TrainConfig
from .data import StoreData
from .embedding import pooled_statistics
from .estimator import build_estimator, check_estimator

__all__ = [
    "PosteriorInfo",
    "StorePosterior",
    "StoreMCMCPosterior",
    "StoreRejectionPosterior",
    "SamplerConfig",
    "METHODS",
    "train_posterior",
    "save_posterior",
    "load_posterior",
    "sample_posterior",
    "check_observation",
    "select_features",
    "SamplingTimeout",
]

FORMAT = "vbi-dask-posterior"
# 2: PosteriorInfo has ``method`` and ``sampling`` (version 1 files read as "npe")
FORMAT_VERSION = 2


@dataclass(frozen=True)
class PosteriorInfo:
    """Where a posterior came from and how to feed it (JSON-able, saved with it).

    ``feature_names`` are the store's feature columns, in order: the posterior's input.
    ``used_features`` are those the estimator reads (a selection, minus columns constant
    over the training rows). ``zscore`` holds the training statistics of theta and of
    the used features. ``signal`` describes the signals the features were computed from
    (``kind``: "bold" or "sampled", ``n_time``, ``dt_ms``, ``n_nodes``; or, when the
    feature entries name their signals, ``{"signals": {key: that record plus "dim"}}``:
    see :meth:`vbi_dask.layout.SignalLayout.to_dict`). ``method`` is
    what the estimator learnt (one of :data:`METHODS`; "npe" for files written before
    it existed); ``sampling`` is the :class:`SamplerConfig` of an NLE/NRE posterior as a
    dict ({} for NPE and SNPE-C).
    """

    param_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    used_features: tuple[str, ...]
    estimator: Mapping[str, Any]
    zscore: Mapping[str, Any]
    prior: Mapping[str, Any]
    featureset: Mapping[str, Any] | None
    simulation: Mapping[str, Any] | None
    store: str
    store_attrs: Mapping[str, Any] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    custom_embedding: bool = False
    signal: Mapping[str, Any] = field(default_factory=dict)
    method: str = "npe"
    sampling: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_index(self) -> np.ndarray:
        position = {name: k for k, name in enumerate(self.feature_names)}
        return np.array([position[name] for name in self.used_features], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PosteriorInfo":
        data = dict(data)
        for key in ("param_names", "feature_names", "used_features"):
            data[key] = tuple(data[key])
        return cls(**data)


class SamplingTimeout(RuntimeError):
    """Sampling within the prior's support did not finish in ``max_sampling_time`` seconds.

    The message gives the measured acceptance rate (the fraction of the flow's draws
    inside the prior's support) and what to do.
    """


class StorePosterior(DirectPosterior):
    """An sbi ``DirectPosterior`` that also carries its :class:`PosteriorInfo` as ``info``."""

    def __init__(self, posterior_estimator, prior, info: PosteriorInfo, **kwargs):
        super().__init__(posterior_estimator, prior, **kwargs)
        self.info = info


# what train_posterior and load_posterior return, by method
STORE_POSTERIORS = (StorePosterior, StoreMCMCPosterior, StoreRejectionPosterior)


def _posterior(estimator, prior, info: PosteriorInfo):
    """The posterior of ``info.method`` on a (trained) estimator and the store's prior."""
    if info.method in ("nle", "nre"):
        return sampling_posterior(estimator, prior, info)
    with torch.random.fork_rng(devices=[]):  # sbi's DirectPosterior draws when built
        return StorePosterior(estimator, prior, info)


def _estimator(posterior) -> torch.nn.Module:
    return posterior.posterior_estimator if isinstance(posterior, StorePosterior) else posterior.estimator


# ---------------------------------------------------------------------- features
def select_features(names: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    """Indices of the wanted feature columns, in store order.

    ``wanted``: exact names, or prefixes ending in ``*`` (``"mean*"``, ``"fc*"``);
    None: all columns.

    Raises
    ------
    ValueError
        A name or prefix matches nothing (the message suggests close names).
    """
    if wanted is None:
        return list(range(len(names)))
    if isinstance(wanted, str):
        wanted = [wanted]
    chosen: set[int] = set()
    for item in wanted:
        if item.endswith("*"):
            hits = [k for k, n in enumerate(names) if n.startswith(item[:-1])]
        else:
            hits = [k for k, n in enumerate(names) if n == item]
        if not hits:
            close = difflib.get_close_matches(item, names, n=5)
            raise ValueError(
                f"feature {item!r} matches no column of the store ({len(names)} columns, e.g. "
                f"{list(names[:4])}); close names: {close}"
            )
        chosen.update(hits)
    return sorted(chosen)


# ---------------------------------------------------------------------- training
def train_posterior(
    store: str | os.PathLike | StoreData,
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    embedding_net: torch.nn.Module | None = None,
    log_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Any] = (),
    ckpt_path: str | os.PathLike | None = None,
    **options: Any,
) -> StorePosterior | StoreMCMCPosterior | StoreRejectionPosterior:
    """Train a neural posterior estimator by streaming ``(theta, features)`` from a store.

    Parameters
    ----------
    store : a budget store path (or a :class:`StoreData` with its split).
    config : the settings below as a :class:`~vbi_dask.train.config.TrainConfig` or its
        mapping (a YAML's); None: the defaults. Keyword options (the same names) replace
        its values: ``train_posterior(store, config, seed=1)``. The options are declared
        once, in ``TrainConfig`` (with their defaults; the command line's flags derive
        from them).
    method : what the estimator learns, each with sbi's loss (see
        :mod:`vbi_dask.train._methods`):

        - ``"npe"``: the posterior, by maximum likelihood (rows drawn from the prior);
        - ``"snpe-c"``: the posterior, by sbi's atomic APT loss (SNPE-C, ``num_atoms=10``,
          with the store's prior), valid for rows drawn from any proposal;
        - ``"nle"``: the likelihood of the used, standardised features given theta
          (sbi's ``likelihood_nn``; no embedding net);
        - ``"nre"``: the likelihood-to-evidence ratio, a classifier (sbi's
          ``classifier_nn``) trained by NRE-B's contrastive loss (``num_atoms=10``).
    estimator : an sbi density estimator name (``"nsf"``, ``"maf"``, ...), for
        ``"nre"`` a classifier name (``"resnet"``, ``"mlp"``), an :class:`EstimatorConfig`
        or its dict; None: ``"nsf"`` (``"resnet"`` for NRE).
    embedding_net : a module applied to the standardised used features (overrides
        ``estimator.embedding``); :func:`load_posterior` then needs the same architecture.
    features : feature names or ``"prefix*"`` patterns to use (default all columns).
    batch_size, learning_rate, clip_max_norm : as sbi's ``NPE.train`` (Adam, gradient
        norm clipping; None: no clipping).
    max_epochs, stop_after_epochs : early stopping on the validation loss; the weights of
        the best validation epoch are restored.
    validation_fraction, test_fraction, split_seed : the split of the simulations by
        index hash (see :func:`vbi_dask.train.data.split_of`); test rows are never read.
    seed : seeds the run (``lightning.seed_everything(seed, workers=True)``: the initial
        weights), every epoch's draws (from (seed, epoch)) and the shuffle; the global
        random states (Python, NumPy, torch CPU) are restored afterwards. The same seed,
        data and settings give the same weights, also across an interruption and resume.
    buffer_chunks, prefetch_chunks, num_workers : streaming (see :class:`StoreStream`).
    accelerator, devices, strategy : Lightning's; ``devices > 1`` trains data-parallel,
        each rank streaming its own chunks.
    log_dir : where the logs and the checkpoints go; None: a temporary folder, deleted at
        the end (give one with ``strategy="ddp"``, whose ranks are separate launches of
        the script and must share it, and to be able to resume). Checkpoints are full
        (weights, optimiser, epoch, early-stopping and checkpoint state):
        ``checkpoints/last.ckpt`` (end of the last finished epoch) and
        ``checkpoints/best.ckpt`` (lowest validation loss).
    logger : "csv" (``LOG_DIR/logs/metrics.csv``; a resumed run writes
        ``logs/resumed_from_epoch_K/metrics.csv``), "tensorboard" (also
        ``LOG_DIR/tensorboard``), any Lightning logger object or a list of them, or False
        (none). The history in ``info.training`` does not depend on it.
    progress : show progress on stderr: tqdm bars over epochs and batches in a terminal or
        notebook; otherwise (a file, a SLURM log) a line per epoch at most every 10 s with
        the losses, the best validation loss and the time, and one at the end
        (see :class:`vbi_dask.train._callbacks.TrainingProgress`).
    callbacks : more Lightning callbacks, run after ours (history, per-epoch seeding,
        threads, progress, early stopping, checkpoints); a progress bar among them
        replaces ours.
    precision : Lightning's ``Trainer(precision=...)`` (e.g. "bf16-mixed"); None: its
        default (32-bit).
    ckpt_path : resume an interrupted training in its ``log_dir`` (which may have been
        moved or copied): "last" for ``LOG_DIR/checkpoints/last.ckpt``, or the path of a
        checkpoint in that folder. The run must be the same (estimator, features,
        data split and statistics, batch size, learning rate, seed, clipping): it then
        continues at the epoch after the checkpoint and ends as the uninterrupted training
        would have (same epochs, same weights). ``max_epochs`` and ``stop_after_epochs``
        may be changed.
    threads : torch threads while training (restored afterwards). None: one less than
        the process's CPU share, at least 1: a Dask worker's threads inside a worker,
        else the CPUs of the process's affinity mask (``os.sched_getaffinity``: SLURM,
        taskset, cpusets) capped by a cgroup CPU quota, divided among data-parallel CPU
        ranks. One CPU is left because an OpenMP team that needs every CPU stalls
        whenever another thread or process takes one (measured: on a 2-core machine with
        the other core busy, 2 threads trained 10-35x slower than 1).
    sample_with : how an NLE or NRE posterior samples: "mcmc" (sbi's vectorised slice
        sampler; chains, warmup and thinning settable with a :class:`SamplerConfig` or its
        dict) or "rejection" (the prior as proposal). Ignored by NPE and SNPE-C.

    Returns
    -------
    StorePosterior, StoreMCMCPosterior or StoreRejectionPosterior
        An sbi ``DirectPosterior`` (NPE, SNPE-C) or ``MCMCPosterior`` /
        ``RejectionPosterior`` (NLE, NRE) on the CPU with the store's prior; ``.info``
        records the method, the provenance, the statistics and the training history.

    Raises
    ------
    ValueError
        An unknown method, sampler or estimator (or one that does not fit the method: a
        classifier is for NRE only; NLE takes no embedding), a store without features or
        usable rows, unknown features, too few training rows for one batch, an unknown
        logger, a seed outside [0, 2**32); a checkpoint to resume from that is outside ``log_dir``, not
        written by this function, or of a different training (the message lists the
        differences).
    FileNotFoundError
        ``ckpt_path`` without a ``log_dir``, naming no file, or "last" with no
        ``checkpoints/last.ckpt`` in ``log_dir``.
    KeyboardInterrupt
        Ctrl-C while training (Lightning's ``sys.exit(1)`` for it is turned back into this).
        The checkpoints of the finished epochs stay in ``log_dir``: resume with
        ``ckpt_path="last"``.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ProgressBar

    from ..prior import prior_from_dict
    from ._callbacks import EpochSeed, FolderCheckpoint, History, TorchThreads, TrainingProgress
    from ._methods import MethodLoss
    from ._runtime import seeded
    from .module import DensityEstimatorModule, StoreDataModule

    settings = TrainConfig.of(config, **options)
    sampler = settings.sampler
    data = (
        store
        if isinstance(store, StoreData)
        else StoreData(
            store,
            validation_fraction=settings.validation_fraction,
            test_fraction=settings.test_fraction,
            split_seed=settings.split_seed,
        )
    )
    architecture = settings.estimator_config
    check_estimator(architecture, settings.method, embedding=embedding_net is not None)
    names = data.feature_names
    index = select_features(names, settings.features)
    stats = data.zscore()
    constant = set(stats.constant.tolist())
    dropped = [names[k] for k in index if k in constant]
    index = [k for k in index if k not in constant]
    if dropped:
        warnings.warn(
            f"{len(dropped)} feature column(s) are constant over the training rows and are not used: "
            f"{dropped[:8]}{' ...' if len(dropped) > 8 else ''}",
            stacklevel=2,
        )
    if not index:
        raise ValueError("no usable feature column: every selected column is constant over the training rows")
    attrs = data.attrs
    prior_dict = _json(attrs["prior"])
    design = prior_from_dict(prior_dict)
    if list(design.param_names) != data.param_names:
        raise ValueError(
            f"the store's prior names parameters {design.param_names}, its theta columns are {data.param_names}"
        )
    prior = design.to_torch()
    callbacks = list(callbacks or ())
    # what a checkpoint must share with this call to be resumed by it
    run = {
        "method": settings.method,
        "estimator": architecture.to_dict(),
        "custom_embedding": embedding_net is not None,
        "used_features": [names[k] for k in index],
        "zscore_rows": int(stats.n_rows),
        "split": {
            "validation_fraction": data.validation_fraction,
            "test_fraction": data.test_fraction,
            "split_seed": data.split_seed,
            "n_train": data.n_rows("train"),
            "n_validation": data.n_rows("validation"),
        },
        "batch_size": int(min(settings.batch_size, data.n_rows("train"))),
        "learning_rate": float(settings.learning_rate),
        "clip_max_norm": settings.clip_max_norm,
        "seed": int(settings.seed),
    }
    resume = _resume_checkpoint(ckpt_path, log_dir, run)

    t0 = time.perf_counter()
    # raw signal columns are z-scored per channel (see vbi_dask.train.embedding.pooled_statistics)
    x_mean, x_std = pooled_statistics([names[k] for k in index], stats.x_mean[index], stats.x_std[index])
    owned = log_dir is None
    root = Path(tempfile.mkdtemp(prefix="vbi-dask-train-")) if owned else Path(log_dir)
    try:
        with seeded(settings.seed):
            net = build_estimator(
                architecture,
                theta_mean=stats.theta_mean,
                theta_std=stats.theta_std,
                feature_index=np.asarray(index),
                x_mean=x_mean,
                x_std=x_std,
                n_features=len(names),
                embedding_net=embedding_net,
                method=settings.method,
                feature_names=[names[k] for k in index],
            )
            module = DensityEstimatorModule(
                net, settings.learning_rate, run=run, loss=MethodLoss(settings.method, prior=prior)
            )
            datamodule = StoreDataModule(
                data,
                batch_size=settings.batch_size,
                seed=settings.seed,
                buffer_chunks=settings.buffer_chunks,
                prefetch_chunks=settings.prefetch_chunks,
                num_workers=settings.num_workers,
            )
            # full checkpoints (optimiser, epoch, callbacks' state), so that a training can
            # resume: the best epoch's, and every epoch's in last.ckpt (Lightning's own
            # save_last writes only when the best one is written)
            checkpoint = FolderCheckpoint(
                dirpath=root / "checkpoints",
                monitor="val_loss",
                mode="min",
                save_top_k=1,
                save_weights_only=False,
                filename="best",
                enable_version_counter=False,
            )
            latest = FolderCheckpoint(
                dirpath=root / "checkpoints",
                monitor=None,
                save_top_k=1,
                save_weights_only=False,
                filename="last",
                enable_version_counter=False,
            )
            stopper = EarlyStopping(
                monitor="val_loss", mode="min", patience=settings.stop_after_epochs, check_finite=True
            )
            history, torch_threads = History(), TorchThreads(settings.threads)
            ours = [history, EpochSeed(settings.seed), torch_threads, stopper, checkpoint, latest]
            their_bar = any(isinstance(cb, ProgressBar) for cb in callbacks)
            if settings.progress and not their_bar:
                ours.append(TrainingProgress())
            precision = {} if settings.precision is None else {"precision": settings.precision}
            with _quiet(resuming=resume is not None):
                trainer = L.Trainer(
                    max_epochs=settings.max_epochs,
                    accelerator=settings.accelerator,
                    devices=settings.devices,
                    strategy=settings.strategy,
                    callbacks=ours + callbacks,
                    logger=_loggers(settings.logger, root, None if resume is None else resume[1]),
                    gradient_clip_val=settings.clip_max_norm,
                    gradient_clip_algorithm="norm",
                    reload_dataloaders_every_n_epochs=1,
                    num_sanity_val_steps=0,
                    log_every_n_steps=50,
                    enable_progress_bar=settings.progress or their_bar,
                    enable_model_summary=False,
                    default_root_dir=root,
                    **precision,
                )
                t_fit = time.perf_counter()
                with _interrupt_as_keyboard_interrupt():
                    trainer.fit(module, datamodule=datamodule, ckpt_path=None if resume is None else resume[0])
                fit_seconds = time.perf_counter() - t_fit
            best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(best["state_dict"])
            # with spawned ranks the callbacks ran in the children: read the last checkpoint
            rows = history.rows or _checkpoint_history(Path(checkpoint.dirpath) / "last.ckpt")
            first_epoch = 0 if resume is None else resume[1]
            per_epoch = {r["epoch"]: _rows_per_epoch(datamodule, trainer.world_size, r["epoch"]) for r in rows}
            n_seen = sum(per_epoch.values())
            n_seen_now = sum(n for epoch, n in per_epoch.items() if epoch >= first_epoch)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - t0
    net = module.estimator.cpu().eval()
    best_epoch = min(rows, key=lambda r: r.get("val_loss", np.inf)) if rows else {}
    info = PosteriorInfo(
        param_names=tuple(data.param_names),
        feature_names=tuple(names),
        used_features=tuple(names[k] for k in index),
        estimator=architecture.to_dict(),
        zscore={
            "theta_mean": stats.theta_mean.tolist(),
            "theta_std": stats.theta_std.tolist(),
            "x_mean": x_mean.tolist(),
            "x_std": x_std.tolist(),
            "n_rows": stats.n_rows,
            "dropped_constant": dropped,
        },
        prior=prior_dict,
        featureset=_json(attrs.get("featureset")),
        simulation=_json(attrs.get("simulation")),
        store=data.store,
        store_attrs={
            k: attrs[k] for k in ("seed", "n_sims", "chunk_size", "connectome_hash", "schema_version") if k in attrs
        },
        split={
            "validation_fraction": data.validation_fraction,
            "test_fraction": data.test_fraction,
            "split_seed": data.split_seed,
            "n_train": data.n_rows("train"),
            "n_validation": data.n_rows("validation"),
            "n_test": data.n_rows("test"),
        },
        training={
            "seed": settings.seed,
            "batch_size": datamodule.batch_size,
            "learning_rate": settings.learning_rate,
            "clip_max_norm": settings.clip_max_norm,
            "max_epochs": settings.max_epochs,
            "stop_after_epochs": settings.stop_after_epochs,
            "epochs": len(rows),
            "best_epoch": best_epoch.get("epoch"),
            "best_val_loss": best_epoch.get("val_loss"),
            "seconds": seconds,
            "fit_seconds": fit_seconds,
            "samples_seen": n_seen,
            "samples_per_s": n_seen_now / max(fit_seconds, 1e-9),
            "resumed_from_epoch": None if resume is None else resume[1],
            "history": rows,
            "accelerator": str(trainer.accelerator.__class__.__name__),
            "devices": int(trainer.world_size),
            "precision": str(trainer.precision),
            "threads": torch_threads.used,
        },
        custom_embedding=embedding_net is not None,
        signal=signal_layout(data.store),
        method=settings.method,
        sampling=sampler.to_dict() if settings.method in ("nle", "nre") else {},
    )
    return _posterior(net, prior, info)


train_posterior.__signature__ = keyword_signature(train_posterior, TrainConfig)


def signal_layout(store: str | os.PathLike) -> dict[str, Any]:
    """Kind, length, sampling period and node count of the signals a store's features
    were computed from ({} for a store without vbi-dask signals); see
    :func:`vbi_dask.store.signal_layout`."""
    from ..store import signal_layout as layout_of

    return layout_of(store)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _loggers(logger: Any, root: Path, resumed_from: int | None) -> Any:
    """The Trainer's ``logger``: "csv" (plus "tensorboard"), a logger or a list of them, or False."""
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

    if logger is False or logger is None:
        return False
    if isinstance(logger, Logger) or (
        isinstance(logger, (list, tuple)) and logger and all(isinstance(lg, Logger) for lg in logger)
    ):
        return logger
    if logger not in ("csv", "tensorboard"):
        raise ValueError(f"unknown logger {logger!r}; valid: 'csv', 'tensorboard', False, or Lightning logger objects")
    # a resumed run logs beside the first one (a CSV logger empties the folder it writes)
    version = "" if resumed_from is None else f"resumed_from_epoch_{resumed_from}"
    loggers = [CSVLogger(save_dir=root, name="logs", version=version)]
    if logger == "tensorboard":
        loggers.append(TensorBoardLogger(save_dir=root, name="tensorboard"))
    return loggers


def _resume_checkpoint(ckpt_path, log_dir, run: Mapping[str, Any]) -> tuple[Path, int] | None:
    """(checkpoint, first epoch to run) of a resume, checked against this call's ``run``.

    Raises
    ------
    FileNotFoundError
        No such checkpoint ("last": none in ``log_dir``, or no ``log_dir``).
    ValueError
        Not a checkpoint of :func:`train_posterior`, or of a different run (the message
        lists the differences).
    """
    if ckpt_path is None:
        return None
    if log_dir is None:
        raise FileNotFoundError(
            "a training resumes in its log folder (its checkpoints and logs): give the log_dir "
            "of the interrupted training"
        )
    folder = Path(log_dir) / "checkpoints"
    if os.fspath(ckpt_path) == "last":
        path = folder / "last.ckpt"
        if not path.is_file():
            raise FileNotFoundError(
                f"no checkpoint to resume from in {os.fspath(Path(log_dir))!r} (no "
                "checkpoints/last.ckpt: the training there finished no epoch, or ran elsewhere)"
            )
    else:
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}")
        if path.resolve().parent != folder.resolve():
            raise ValueError(
                f"{os.fspath(path)!r} is not in {os.fspath(folder)!r}: a training resumes in the log "
                "folder its checkpoint belongs to (copy the whole folder and give it as log_dir)"
            )
    state = _load_checkpoint(path)
    saved = state.get("vbi_dask_run")
    if saved is None:
        raise ValueError(f"{os.fspath(path)!r} is not a checkpoint written by train_posterior")
    saved, wanted = json.loads(json.dumps(saved)), json.loads(json.dumps(run))
    saved.setdefault("method", "npe")  # checkpoints written before methods existed
    differences = [
        f"{key}: {saved.get(key)!r} in the checkpoint, {wanted.get(key)!r} now"
        for key in sorted(set(saved) | set(wanted))
        if saved.get(key) != wanted.get(key)
    ]
    if differences:
        raise ValueError(
            f"cannot resume from {os.fspath(path)!r}: it is a different training (" + "; ".join(differences) + ")"
        )
    return path, int(state["epoch"]) + 1


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{os.fspath(path)!r} is not a readable checkpoint ({type(error).__name__})") from None


def _checkpoint_history(path: Path) -> list[dict[str, float]]:
    """The history kept in a checkpoint by the :class:`History` callback ([] if none)."""
    if not path.is_file():
        return []
    for key, state in _load_checkpoint(path).get("callbacks", {}).items():
        if key.split("{")[0] == "History" and isinstance(state, dict) and "rows" in state:
            return [dict(row) for row in state["rows"]]
    return []


def _rows_per_epoch(datamodule, world_size: int, epoch: int) -> int:
    """Training rows all ranks used in ``epoch`` (from the deterministic batch plan)."""
    from .data import StoreStream

    dm = datamodule
    stream = StoreStream(
        dm.data,
        "train",
        batch_size=dm.batch_size,
        seed=dm.seed,
        epoch=epoch,
        shuffle=True,
        drop_last=True,
        prefetch_chunks=0,
    )
    return sum(sum(sizes) for sizes in stream.batch_sizes(world_size * max(1, dm.num_workers)))


class _interrupt_as_keyboard_interrupt:
    """Lightning turns Ctrl-C into ``sys.exit(1)`` and leaves SIGINT ignored: give back a
    KeyboardInterrupt and the SIGINT handler."""

    def __enter__(self):
        import signal

        self._handler = signal.getsignal(signal.SIGINT)
        return self

    def __exit__(self, kind, error, tb):
        import signal
        import threading

        if kind is not SystemExit or not isinstance(error.__context__, KeyboardInterrupt):
            return False
        if threading.current_thread() is threading.main_thread() and self._handler is not None:
            signal.signal(signal.SIGINT, self._handler)
        raise KeyboardInterrupt from None


class _quiet:
    """Silence Lightning's informational messages and hints (not its errors); when
    resuming, also its warning that the checkpoint folder is not empty."""

    def __init__(self, resuming: bool = False):
        self.resuming = resuming

    def __enter__(self):
        import logging

        self._loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        from lightning.fabric.utilities.warnings import PossibleUserWarning

        warnings.simplefilter("ignore", PossibleUserWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        if self.resuming:
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
        return False


# ---------------------------------------------------------------------- save / load
def save_posterior(
    posterior: StorePosterior | StoreMCMCPosterior | StoreRejectionPosterior, path: str | os.PathLike
) -> Path:
    """Write the estimator's weights and :class:`PosteriorInfo` to ``path`` (a torch
    file readable with ``weights_only=True``: no pickled code).

    Raises
    ------
    TypeError
        Not a posterior from :func:`train_posterior` or :func:`load_posterior`.
    """
    if not isinstance(posterior, STORE_POSTERIORS):
        raise TypeError(
            "expected a StorePosterior, StoreMCMCPosterior or StoreRejectionPosterior (from "
            f"train_posterior), got {type(posterior).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "info": json.dumps(posterior.info.to_dict()),
        "state_dict": {k: v.detach().cpu() for k, v in _estimator(posterior).state_dict().items()},
    }
    torch.save(payload, path)
    return path


def load_posterior(
    path: str | os.PathLike,
    *,
    embedding_net: torch.nn.Module | None = None,
    sample_with: str | SamplerConfig | Mapping[str, Any] | None = None,
) -> StorePosterior | StoreMCMCPosterior | StoreRejectionPosterior:
    """A posterior saved by :func:`save_posterior` (on the CPU), of the class
    :func:`train_posterior` returned for its method.

    Parameters
    ----------
    embedding_net : for a posterior trained with a custom embedding net, a fresh
        instance of the same architecture (its weights are loaded from the file).
    sample_with : for an NLE or NRE posterior, another sampler than the saved one
        ("mcmc", "rejection", a :class:`SamplerConfig` or its dict); None: the saved one.

    Raises
    ------
    ValueError
        Not a vbi-dask posterior file, a newer format, a custom embedding net missing, or
        an unknown sampler.
    """
    from ..prior import prior_from_dict

    import pickle

    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{os.fspath(path)!r} is not a vbi-dask posterior file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a vbi-dask posterior file")
    if payload["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} has format version {payload['format_version']}; this vbi-dask reads "
            f"up to {FORMAT_VERSION}"
        )
    info = PosteriorInfo.from_dict(json.loads(payload["info"]))
    if info.custom_embedding and embedding_net is None:
        raise ValueError(
            "this posterior was trained with a custom embedding net: pass a fresh instance of the same "
            "architecture as embedding_net="
        )
    if sample_with is not None and info.method in ("nle", "nre"):
        info = dataclasses.replace(info, sampling=SamplerConfig.of(sample_with).to_dict())
    z = info.zscore
    net = build_estimator(
        EstimatorConfig.from_dict(dict(info.estimator)),
        theta_mean=np.asarray(z["theta_mean"]),
        theta_std=np.asarray(z["theta_std"]),
        feature_index=info.feature_index,
        x_mean=np.asarray(z["x_mean"]),
        x_std=np.asarray(z["x_std"]),
        n_features=len(info.feature_names),
        embedding_net=embedding_net,
        method=info.method,
        feature_names=list(info.used_features),
    )
    net.load_state_dict(payload["state_dict"])
    return _posterior(net.eval(), prior_from_dict(info.prior).to_torch(), info)


# ---------------------------------------------------------------------- sampling
def check_observation(x: Any, info: PosteriorInfo) -> tuple[torch.Tensor, bool]:
    """Observation(s) as a float32 tensor (obs, feature) in the posterior's column order.

    ``x``: a vector (feature,) or a batch (obs, feature) as NumPy, torch, or a
    DataArray with a ``feature`` dim (matched by name). Columns the estimator does not
    use may be NaN (they are set to 0). Returns (tensor, whether x was one vector).

    Raises
    ------
    ValueError
        Wrong number of feature columns, missing feature names, or NaN/inf in a used
        column (the message names them).
    """
    names = list(info.feature_names)
    if isinstance(x, xr.DataArray):
        if "feature" not in x.dims:
            raise ValueError(f"an observation DataArray needs a 'feature' dim, got dims {x.dims}")
        if "feature" in x.coords:
            given = [str(n) for n in x["feature"].values]
            missing = [n for n in names if n not in set(given)]
            if missing:
                raise ValueError(
                    f"the observation lacks {len(missing)} of the posterior's {len(names)} features, "
                    f"e.g. {missing[:5]}: compute it with the store's feature set "
                    "(vbi_dask.train.observe_signal)"
                )
            x = x.sel(feature=names)
        other = [d for d in x.dims if d != "feature"]
        x = x.transpose(*other, "feature").values
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    single = array.ndim == 1
    if array.ndim not in (1, 2):
        raise ValueError(f"an observation must be (feature,) or (obs, feature), got shape {array.shape}")
    array = array.reshape(-1, array.shape[-1])
    if array.shape[1] != len(names):
        raise ValueError(
            f"the observation has {array.shape[1]} feature columns; this posterior takes the store's "
            f"{len(names)} ({names[:3]} ...): compute features with the store's feature set "
            "(vbi_dask.train.observe_signal), on a recording of the same length and nodes"
        )
    used = info.feature_index
    bad = ~np.isfinite(array[:, used])
    if bad.any():
        cols = sorted({names[used[j]] for j in np.flatnonzero(bad.any(axis=0))})
        raise ValueError(f"the observation has NaN or inf in {len(cols)} used feature(s): {cols[:8]}")
    unused = np.setdiff1d(np.arange(len(names)), used)
    array = array.copy()
    array[:, unused] = np.nan_to_num(array[:, unused], nan=0.0, posinf=0.0, neginf=0.0)
    return torch.as_tensor(array, dtype=torch.float32), single


def sample_posterior(
    posterior: StorePosterior | StoreMCMCPosterior | StoreRejectionPosterior,
    x: Any,
    n_samples: int = 1000,
    *,
    seed: int = 0,
    max_sampling_batch_size: int = 10_000,
    reject_outside_prior: bool = True,
    max_sampling_time: float | None = None,
    threads: int | None = None,
) -> xr.DataArray:
    """Posterior samples for one observation or a batch.

    Parameters
    ----------
    posterior : from :func:`train_posterior` or :func:`load_posterior`. An MCMC or
        rejection posterior (NLE, NRE) samples the observations of a batch one after
        the other (sbi would take a batch for iid trials of one observation).
    x : features (feature,) or (obs, feature); see :func:`check_observation`.
    n_samples : samples per observation (a positive integer).
    seed : seeds the sampling (the global torch and NumPy RNG states are restored
        afterwards; sbi's slice sampler draws from NumPy's).
    reject_outside_prior : draw until every sample lies inside the prior's support (sbi's
        rejection sampling; slow, or endless, when the observation is far from what the
        simulations produce). False: keep the flow's draws as they are, including those
        outside the prior (sbi warns when more than 5% are). NPE and SNPE-C only: the
        samples of NLE and NRE always lie inside the prior's support.
    max_sampling_time : seconds after which rejection sampling stops with
        :class:`SamplingTimeout` (default: no limit; the command line's default is 60).
        The check runs between batches of draws, so it can be passed by one batch. Not
        for MCMC, whose run time is set by its chains, warmup and thinning.
    threads : torch threads while sampling (default: one less than the process's CPU
        share, as for training: see :mod:`vbi_dask.train._runtime`); restored afterwards.
        Samples were bit-identical with 1 and 2 threads in the tests (flows and MCMC of
        small networks); larger matrix products may round differently with the threads.

    Returns
    -------
    DataArray
        ``(sample, param)`` for one observation, ``(sample, obs, param)`` for a batch;
        ``param`` holds the parameter names.

    Raises
    ------
    ValueError
        A bad observation (see :func:`check_observation`), ``n_samples`` or
        ``max_sampling_time`` not positive.
    SamplingTimeout
        Rejection sampling ran past ``max_sampling_time``; the message gives the measured
        acceptance rate (sbi's own log warning about it is not shown).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if max_sampling_time is not None and not max_sampling_time > 0:
        raise ValueError(f"max_sampling_time must be a positive number of seconds or None, got {max_sampling_time!r}")
    tensor, single = check_observation(x, posterior.info)
    with (
        torch_threads(threads),
        torch.random.fork_rng(devices=[]),
        _numpy_seeded(seed),
        warnings.catch_warnings(),
        _without_acceptance_log(),
    ):
        warnings.filterwarnings("ignore", message=".*triangular_solve is deprecated.*")  # nflows' LU layers
        torch.manual_seed(seed)
        if isinstance(posterior, StorePosterior):
            samples = _sample_direct(
                posterior, tensor, single, n_samples, max_sampling_batch_size, reject_outside_prior, max_sampling_time
            )
        else:
            samples = _sample_one_by_one(posterior, tensor, n_samples, max_sampling_batch_size, max_sampling_time)
            samples = samples[:, 0] if single else samples
    dims = ("sample", "param") if single else ("sample", "obs", "param")
    return xr.DataArray(samples.numpy(), dims=dims, coords={"param": list(posterior.info.param_names)}, name="theta")


def _sample_direct(
    posterior: StorePosterior,
    tensor: torch.Tensor,
    single: bool,
    n_samples: int,
    max_sampling_batch_size: int,
    reject_outside_prior: bool,
    max_sampling_time: float | None,
) -> torch.Tensor:
    """Samples of a DirectPosterior: (sample, param), or (sample, obs, param) for a batch."""
    options = {"reject_outside_prior": reject_outside_prior, "max_sampling_time": max_sampling_time}
    started = time.monotonic()
    with torch.no_grad():
        try:
            if single:
                return posterior.sample(
                    (n_samples,),
                    x=tensor,
                    show_progress_bars=False,
                    max_sampling_batch_size=max_sampling_batch_size,
                    **options,
                )
            # sbi caps batch x observations at 100_000 (with a warning): cap it here
            per_obs = max(1, min(max_sampling_batch_size, 100_000 // len(tensor)))
            return posterior.sample_batched(
                (n_samples,), x=tensor, show_progress_bars=False, max_sampling_batch_size=per_obs, **options
            )
        except RuntimeError as error:
            # sbi raises a bare RuntimeError at its time limit: tell why, with numbers
            if not reject_outside_prior or max_sampling_time is None or time.monotonic() - started < max_sampling_time:
                raise
            raise SamplingTimeout(_timeout_message(posterior, tensor, single, n_samples, max_sampling_time)) from error


def _sample_one_by_one(
    posterior: StoreMCMCPosterior | StoreRejectionPosterior,
    tensor: torch.Tensor,
    n_samples: int,
    max_sampling_batch_size: int,
    max_sampling_time: float | None,
) -> torch.Tensor:
    """(sample, obs, param) samples of an MCMC or rejection posterior, one observation
    after the other (sbi reads a batch of x as iid trials of one observation)."""
    out = []
    for k in range(len(tensor)):
        x_k = tensor[k : k + 1]
        if isinstance(posterior, StoreMCMCPosterior):
            samples = posterior.sample((n_samples,), x=x_k, show_progress_bars=False)
        else:
            started = time.monotonic()
            try:
                samples = posterior.sample(
                    (n_samples,),
                    x=x_k,
                    show_progress_bars=False,
                    max_sampling_batch_size=max_sampling_batch_size,
                    max_sampling_time=max_sampling_time,
                )
            except RuntimeError as error:
                if max_sampling_time is None or time.monotonic() - started < max_sampling_time:
                    raise
                raise SamplingTimeout(
                    f"rejection sampling of observation {k} did not finish within "
                    f"max_sampling_time={max_sampling_time:g} s: allow more time, ask for fewer "
                    "samples, or sample with MCMC (load_posterior(..., sample_with='mcmc'))"
                ) from error
        out.append(samples.detach())
    return torch.stack(out, dim=1)


class _numpy_seeded:
    """Seed NumPy's global generator for the block and restore its state afterwards (sbi's
    slice samplers draw from ``np.random``: the only way to make them reproducible)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self._state = np.random.get_state()
        np.random.seed(self.seed)
        return self

    def __exit__(self, *exc):
        np.random.set_state(self._state)
        return False


def _timeout_message(posterior: StorePosterior, x: torch.Tensor, single: bool, n_samples: int, seconds: float) -> str:
    """Why rejection sampling timed out, from the acceptance rate measured on fresh draws."""
    from sbi.utils import within_support

    draws = max(100, min(10_000, 100_000 // len(x)))
    theta = posterior.posterior_estimator.sample(torch.Size((draws,)), condition=x)  # (draw, obs, param)
    inside = within_support(posterior.prior, theta.reshape(-1, theta.shape[-1])).reshape(draws, len(x))
    accepted = inside.sum(dim=0).numpy()
    worst = int(np.argmin(accepted))
    rate = accepted[worst] / draws
    where = "" if single else f" for observation {worst}"
    measured = (
        f"acceptance rate {rate:.3%}{where} ({accepted[worst]} of {draws} draws from the flow lie inside "
        "the prior's support)"
    )
    if rate < 0.01:  # sbi's own threshold for warning about slow rejection
        return (
            f"sampling within the prior stopped after max_sampling_time={seconds:g} s: {measured}. The "
            "observation lies outside what the simulations produce (the prior's support): check the "
            "observation's features (the store's feature set, recording length and nodes), widen the prior and "
            "simulate again, or sample without rejection (--no-reject; reject_outside_prior=False) to see the "
            "unrestricted posterior"
        )
    return (
        f"sampling {n_samples} samples within the prior did not finish within max_sampling_time={seconds:g} s "
        f"({measured}): allow more time (--max-sampling-time) or ask for fewer samples"
    )


class _without_acceptance_log:
    """Drop sbi's log warning about a low acceptance rate (sbi logs it on the root logger;
    :class:`SamplingTimeout` says the same with numbers, if it comes to that)."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not re.search(r"proposal samples are\s+accepted", record.getMessage())

    def __enter__(self):
        self._filter = self._Filter()
        logging.getLogger().addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeFilter(self._filter)
        return False
