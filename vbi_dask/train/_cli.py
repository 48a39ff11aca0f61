"""The ``train``, ``infer`` and ``demo`` commands of ``vbi-dask`` (registered in
:mod:`vbi_dask.cli`): argument parsing and printing only, the work is the public API.

    vbi-dask train STORE [--out MODEL] [--config YAML] [--method npe] [--estimator nsf] [--features NAME ...]
                   [--log-dir DIR [--resume]] [--batch-size 200] [--learning-rate 5e-4] ...

The training flags are derived from :class:`~vbi_dask.train.config.TrainConfig` and
:class:`~vbi_dask.train.config.EstimatorConfig` (the same names and defaults as
``train_posterior``'s keywords and the YAML's keys).
    vbi-dask infer MODEL --observed FILE [--samples 1000] [--out SAMPLES] [--max-sampling-time 60] [--no-reject]
                   [--no-check]
    vbi-dask demo [--out demo_output] [--n-sims 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from .._cli_common import existing_file, output_file, positive_float, positive_int, read_yaml, working

__all__ = [
    "add_training_flags",
    "training_config",
    "configure_train",
    "train",
    "configure_infer",
    "infer",
    "configure_demo",
    "demo",
]

MAX_SAMPLING_TIME_S = 60.0  # infer's default: a command never waits forever on rejection sampling


_DEST = "train."  # the namespace attributes of the training flags: apart from a command's own


def add_training_flags(parser: argparse.ArgumentParser, *, only=None) -> None:
    """The flags of :class:`~vbi_dask.train.config.TrainConfig`'s fields (``only``: a
    subset) and of the estimator's architecture (:class:`EstimatorConfig`), named and
    defaulted as there; read back with :func:`training_config`."""
    from .._options import add_flags
    from .config import EstimatorConfig, TrainConfig

    add_flags(parser.add_argument_group("training (TrainConfig)"), TrainConfig, only=only, dest=_DEST)
    add_flags(parser.add_argument_group("estimator architecture (EstimatorConfig)"), EstimatorConfig, dest=_DEST)


def training_config(args: argparse.Namespace, base=None):
    """The :class:`TrainConfig` of ``base`` (a YAML mapping; None: the defaults) with the
    flags given on the command line: ``--estimator NAME`` changes the architecture's
    model, ``--hidden-features`` etc. its other fields, ``--quiet`` turns progress off."""
    import dataclasses

    from .._options import given
    from .config import EstimatorConfig, TrainConfig

    config = TrainConfig.of(base)
    values = given(args, TrainConfig, dest=_DEST)
    architecture = given(args, EstimatorConfig, dest=_DEST)
    method = values.get("method", config.method)
    if "estimator" in values or architecture:
        if "estimator" in values:
            architecture = {"model": values.pop("estimator"), **architecture}
        values["estimator"] = dataclasses.replace(EstimatorConfig.of(config.estimator, method), **architecture)
    if getattr(args, "quiet", False):
        values["progress"] = False
    return config.replace(**values)


def configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="budget store (Zarr) made by 'vbi-dask simulate'")
    parser.add_argument("--out", type=Path, default=Path("posterior.pt"), help="model file to write")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="YAML",
        help="training settings: a YAML mapping of the options below, named as the flags with "
        "underscores (batch_size: 100; estimator: {model: maf, hidden_features: 64}); the "
        "flags given override it",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="logs and full checkpoints, kept (default: a temporary folder, deleted; give one to be able to --resume)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="resume the interrupted training of --log-dir from its last checkpoint (same store and "
        "options; --max-epochs and --stop-after-epochs may change)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no training progress (default: a bar in a terminal; in a file, a line per epoch at most every 10 s)",
    )
    add_training_flags(parser)


def train(args: argparse.Namespace) -> int:
    if not args.store.exists():
        raise FileNotFoundError(f"no store at {str(args.store)!r}")
    if not args.store.is_dir():
        raise NotADirectoryError(f"{str(args.store)!r} is a file, not a store folder made by 'vbi-dask simulate'")
    output_file(args.out, "--out")
    base = read_yaml(existing_file(args.config, "--config")) if args.config is not None else None
    config = training_config(args, base)
    if args.resume:
        if args.log_dir is None:
            raise ValueError("--resume needs the --log-dir of the interrupted training")
        if not (args.log_dir / "checkpoints" / "last.ckpt").is_file():
            raise FileNotFoundError(
                f"no checkpoint to resume from in --log-dir {str(args.log_dir)!r} (no checkpoints/last.ckpt)"
            )
    with working(args):
        return _train(args, config)


def _train(args: argparse.Namespace, config) -> int:
    from .posterior import save_posterior, train_posterior

    try:
        posterior = train_posterior(args.store, config, log_dir=args.log_dir, ckpt_path="last" if args.resume else None)
    except KeyboardInterrupt:
        again = (
            "; resume with the same command and --resume"
            if args.log_dir is not None and (args.log_dir / "checkpoints" / "last.ckpt").is_file()
            else ""
        )
        raise KeyboardInterrupt(f"training stopped, no model written to {args.out}{again}") from None
    path = save_posterior(posterior, args.out)
    info = posterior.info
    t = info.training
    print(
        f"trained {info.method} ({info.estimator['model']}) on {info.split['n_train']} simulations "
        f"({info.split['n_validation']} validation, {info.split['n_test']} test), {len(info.used_features)} of "
        f"{len(info.feature_names)} features"
    )
    resumed = "" if t["resumed_from_epoch"] is None else f", resumed at epoch {t['resumed_from_epoch']}"
    print(
        f"epochs {t['epochs']} (best {t['best_epoch']}{resumed}), best validation loss {t['best_val_loss']:.4f}, "
        f"{t['samples_per_s']:.0f} samples/s" + (f", {t['threads']} torch threads" if t["threads"] else "")
    )
    if info.split["n_test"]:
        from .diagnostics import heldout, posterior_zscores

        # MCMC and rejection sampling take each observation on its own: fewer rows
        _, theta, x = heldout(posterior, args.store, max_rows=500 if info.method in ("npe", "snpe-c") else 50)
        stats = posterior_zscores(posterior, theta, x, seed=config.seed)
        print(f"held-out test simulations ({len(theta)}):")
        for name in info.param_names:
            s = stats.sel(param=name)
            print(f"  {name:<12} shrinkage {float(s['shrinkage'].mean()):6.3f}   z-score {float(s['z'].mean()):5.2f}")
    print(f"model written to {path}")
    return 0


def configure_infer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model file written by 'vbi-dask train'")
    parser.add_argument(
        "--observed",
        type=Path,
        required=True,
        help="features: .npy, .csv or .txt with one row per observation; or .nc with an xarray "
        "DataArray of features (dim 'feature') or of a signal (dims time, node); for a model "
        "whose features come from several signals, a Dataset with one variable per signal "
        "named by its key (bold, eeg, ...)",
    )
    parser.add_argument(
        "--samples", type=positive_int, default=1000, help="posterior samples per observation (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dt-ms", type=float, default=None, help="sampling period of a signal (.nc) in ms")
    parser.add_argument("--out", type=Path, default=None, help="samples to write: .csv, .npy or .nc")
    parser.add_argument(
        "--max-sampling-time",
        type=positive_float,
        default=MAX_SAMPLING_TIME_S,
        metavar="SECONDS",
        help="stop with an error when drawing the samples inside the prior takes longer: an "
        "observation unlike every simulation leaves almost no draw inside the prior's support "
        f"(default {MAX_SAMPLING_TIME_S:g})",
    )
    parser.add_argument(
        "--no-reject",
        action="store_true",
        help="keep every draw of the trained flow, also those outside the prior's support (fast, "
        "never stops on time; the samples may then lie outside the simulated parameter ranges)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the check, before sampling, that each observation lies within the simulated "
        "features (an MMD test against the store's held-out simulations; a warning with its "
        "p-value for each observation that does not)",
    )


_OUTPUT_TYPES = (".csv", ".npy", ".nc")


def _read_observed(path: Path, posterior, dt_ms: float | None):
    from .observe import observe_signal

    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in (".csv", ".txt"):
        return np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=1)
    if suffix == ".nc":
        import xarray as xr

        signals = posterior.info.signal.get("signals")
        if signals:  # features from several signals: one variable per signal, named by its key
            data = xr.load_dataset(path)
            missing = [key for key in signals if key not in data]
            if missing:
                raise ValueError(
                    f"{path} lacks variable(s) {missing}: the model's features come from signals "
                    f"{', '.join(signals)}, one variable each"
                )
            return observe_signal(posterior, {key: data[key] for key in signals}, dt_ms)
        data = xr.load_dataarray(path)
        if "feature" in data.dims:
            return data
        return observe_signal(posterior, data, dt_ms)
    raise ValueError(f"unknown observation file type {suffix!r}; use .npy, .csv, .txt or .nc")


def infer(args: argparse.Namespace) -> int:
    from .posterior import load_posterior

    existing_file(args.model, "model file")
    existing_file(args.observed, "--observed")
    if args.out is not None:
        output_file(args.out, "--out")
        if args.out.suffix.lower() not in _OUTPUT_TYPES:
            raise ValueError(f"unknown output type {args.out.suffix!r} of --out; use .csv, .npy or .nc")
    posterior = load_posterior(args.model)
    observed = _read_observed(args.observed, posterior, args.dt_ms)
    with working(args):
        return _infer(args, posterior, observed)


def _infer(args: argparse.Namespace, posterior, observed) -> int:
    from .posterior import sample_posterior

    if not args.no_check:
        if posterior.info.method in ("npe", "snpe-c"):
            _check(posterior, observed, args.seed)
        else:  # the check compares the features through an NPE posterior's embedding net
            print(
                f"vbi-dask infer: note: observations not checked against the simulations (the check needs an npe "
                f"or snpe-c model, this one is {posterior.info.method})",
                file=sys.stderr,
            )
    with warnings.catch_warnings(record=True) as caught:  # one line each (sbi's, e.g. draws outside the prior)
        warnings.simplefilter("default")
        samples = sample_posterior(
            posterior,
            observed,
            args.samples,
            seed=args.seed,
            reject_outside_prior=not args.no_reject,
            max_sampling_time=args.max_sampling_time,
        )
    for warning in caught:
        print(f"vbi-dask infer: warning: {warning.message}", file=sys.stderr)
    batch = samples.transpose("sample", ...).values.reshape(args.samples, -1, samples.sizes["param"])
    names = list(posterior.info.param_names)
    for k in range(batch.shape[1]):
        print(f"observation {k}: {args.samples} posterior samples")
        print(f"  {'parameter':<12} {'mean':>10} {'std':>10} {'5%':>10} {'50%':>10} {'95%':>10}")
        q = np.quantile(batch[:, k], [0.05, 0.5, 0.95], axis=0)
        for j, name in enumerate(names):
            print(
                f"  {name:<12} {batch[:, k, j].mean():10.4g} {batch[:, k, j].std():10.4g} {q[0, j]:10.4g} "
                f"{q[1, j]:10.4g} {q[2, j]:10.4g}"
            )
    if args.out is not None:
        suffix = args.out.suffix.lower()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".nc":
            samples.to_netcdf(args.out)
        elif suffix == ".npy":
            np.save(args.out, samples.values)
        else:  # .csv (the type is checked before sampling)
            flat = batch.reshape(-1, len(names))
            obs = np.repeat(np.arange(batch.shape[1])[None], args.samples, axis=0).reshape(-1, 1)
            np.savetxt(args.out, np.hstack([obs, flat]), delimiter=",", header=",".join(["obs"] + names), comments="")
        print(f"samples written to {args.out}")
    return 0


def _check(posterior, observed, seed: int) -> None:
    """One warning line per observation outside the simulated features; one note if the
    store to compare with cannot be read."""
    from ._misspecification import misspecification

    try:
        report = misspecification(posterior, observed, seed=seed)
    except (FileNotFoundError, NotADirectoryError) as error:
        print(
            f"vbi-dask infer: note: observations not checked against the simulations ({error}); --no-check skips "
            "the check",
            file=sys.stderr,
        )
        return
    alpha = report.attrs["alpha"]
    for k in np.flatnonzero(report["misspecified"].values):
        print(
            f"vbi-dask infer: warning: observation {k} lies outside the simulated features (MMD test, p-value "
            f"{float(report['p_value'][k]):.3g} < {alpha:g}): its posterior is not to be trusted",
            file=sys.stderr,
        )


def configure_demo(parser: argparse.ArgumentParser) -> None:
    from ..pipeline import DemoConfig

    defaults = DemoConfig()
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)")
    parser.add_argument("--n-sims", type=int, default=defaults.n_sims, help=f"budget (default {defaults.n_sims})")
    parser.add_argument(
        "--duration-ms",
        type=float,
        default=defaults.duration_ms,
        help=f"simulated time per run (default {defaults.duration_ms:g})",
    )
    parser.add_argument("--workers", type=int, default=defaults.n_workers, help="Dask workers (default 2)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--quiet", action="store_true")


def demo(args: argparse.Namespace) -> int:
    from ..pipeline import run_demo

    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; the demo writes a folder")
    with working(args):
        result = run_demo(
            args.out,
            n_sims=args.n_sims,
            duration_ms=args.duration_ms,
            n_workers=args.workers,
            seed=args.seed,
            progress=not args.quiet,
        )
    print(
        f"report: {args.out / 'report.md'}  (calibration {'passed' if result['calibration']['passed'] else 'FAILED'})"
    )
    return 0
