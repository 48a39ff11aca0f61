"""The ``sequential`` command of ``vbi-dask`` (registered in :mod:`vbi_dask.cli`)::

    vbi-dask sequential CONFIG.yaml --store S --observed obs.npy --rounds 5 --per-round 1000
                        [--method tsnpe|snpe-c] [--epsilon 1e-4] [--out posterior.pt] ...

CONFIG is a budget configuration (a model's, or an external simulator's ``simulator:``
section); its ``n_sims`` is not used. Running the command again resumes the store, or
continues it with more ``--rounds``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._cli_common import existing_file, output_file, positive_float, positive_int, working
from .sequential import TRAIN_KEYS

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="budget configuration (YAML); its n_sims is not used")
    parser.add_argument("--store", required=True, type=Path, help="sequential Zarr store to create, resume or continue")
    parser.add_argument(
        "--observed",
        required=True,
        type=Path,
        help="the observation's features: .npy, or a text file of numbers (the store's columns)",
    )
    parser.add_argument("--rounds", required=True, type=positive_int, help="rounds in all (round 0 from the prior)")
    parser.add_argument(
        "--per-round", required=True, type=positive_int, help="simulations per round (a multiple of the chunk size)"
    )
    parser.add_argument(
        "--method",
        choices=("tsnpe", "snpe-c"),
        default="tsnpe",
        help="truncated sequential NPE, or SNPE-C (automatic posterior transformation)",
    )
    parser.add_argument(
        "--epsilon", type=positive_float, default=1e-4, help="TSNPE: posterior mass left outside the truncated prior"
    )
    parser.add_argument("--out", type=Path, default=Path("posterior.pt"), help="the final posterior's model file")
    parser.add_argument(
        "--scheduler",
        default=None,
        choices=("sync", "threads"),
        help="simulate in this process with dask's local scheduler instead of a cluster",
    )
    parser.add_argument(
        "--cluster", default=None, metavar="KIND|ADDRESS", help="where the simulations run (as 'vbi-dask simulate')"
    )
    parser.add_argument(
        "--cluster-config", type=Path, default=None, metavar="YAML", help="a YAML file with a 'cluster:' section"
    )
    parser.add_argument("--workers", type=positive_int, default=None, help="workers of a local cluster")
    parser.add_argument("--log-dir", type=Path, default=None, help="training logs of every round (default: none kept)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads while training")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    from .train._cli import add_training_flags  # torch-free; loaded under vbi_dask.cli's deferred("train")

    add_training_flags(parser, only=TRAIN_KEYS)  # every round's training: TrainConfig's names and defaults


def _observed(path: Path) -> np.ndarray:
    existing_file(path, "--observed")
    values = (
        np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None)
    )
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 and not (values.ndim == 2 and 1 in values.shape):
        raise ValueError(
            f"--observed {str(path)!r} holds an array of shape {values.shape}; expected one feature vector"
        )
    return values.ravel()


def run(args: argparse.Namespace) -> int:
    from .configuration import budget_from_config
    from ._cli_common import read_yaml
    from .cli import cluster_choice, cluster_client
    from .sequential import run_sequential
    from .train import sample_posterior, save_posterior

    config = read_yaml(existing_file(args.config, "configuration"))
    observed = _observed(args.observed)
    output_file(args.out, "--out")
    budget = budget_from_config(config, base_dir=args.config.parent)
    from .train._cli import training_config

    config = training_config(args)
    train = {key: getattr(config, key) for key in TRAIN_KEYS}
    options = dict(
        rounds=args.rounds,
        per_round=args.per_round,
        method=args.method,
        epsilon=args.epsilon,
        train=train,
        progress=not args.quiet,
        log_dir=args.log_dir,
        threads=args.threads,
    )
    if args.scheduler:
        with working(args):
            result = run_sequential(
                budget, args.store, observed, scheduler=args.scheduler, n_workers=args.workers, **options
            )
    else:
        kind, cluster = cluster_choice(args, config)
        with working(args), cluster_client(kind, cluster) as client:
            result = run_sequential(budget, args.store, observed, scheduler=client, **options)
    path = save_posterior(result.posterior, args.out)
    samples = sample_posterior(result.posterior, observed, 2000, seed=config.seed).values
    if args.quiet:
        print(result)
    print("posterior at the observation (2000 samples):")
    for name, column in zip(result.posterior.info.param_names, samples.T):
        print(f"  {name:<12} mean {column.mean():.4g}   std {column.std():.4g}")
    print(f"model written to {path}")
    return 0
