"""Command line: ``vbi-dask <command> ...`` (thin: parse arguments, call the public API).

    vbi-dask simulate CONFIG.yaml --store PATH [--cluster KIND|ADDRESS] [--cluster-config YAML] [--workers N]
    vbi-dask train STORE [--out MODEL] [--estimator nsf] [--features NAME ...]
    vbi-dask infer MODEL --observed FILE [--samples N] [--out SAMPLES]
    vbi-dask verify STORE [--repair]
    vbi-dask demo [--out demo_output] [--n-sims N]

Each command is a ``(configure, handler)`` pair in :data:`COMMANDS`: ``configure(parser)``
adds the command's arguments, ``handler(args) -> int`` runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .train import _cli as _train_cli  # torch-free: torch loads when a training command runs

__all__ = ["main", "COMMANDS"]


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="budget configuration (YAML), e.g. examples/mpr_budget.yaml")
    parser.add_argument("--store", required=True, type=Path, help="Zarr store to create, resume or extend")
    parser.add_argument("--cluster", default=None, metavar="KIND|ADDRESS",
                        help="where the budget runs: local, cuda, auto, slurm, kubernetes, or a scheduler address "
                             "(tcp://host:8786); options come from the 'cluster:' section of CONFIG (or of "
                             "--cluster-config); default: that section's kind, else local")
    parser.add_argument("--cluster-config", type=Path, default=None, metavar="YAML",
                        help="a YAML file with a 'cluster:' section (e.g. deploy/slurm/cluster.yaml), used "
                             "instead of CONFIG's")
    parser.add_argument("--scheduler", default=None, choices=("sync", "threads"),
                        help="run in this process with dask's local scheduler instead of a cluster")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers of a local cluster (default: CPU count)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _simulate(args: argparse.Namespace) -> int:
    from .budget import budget_from_config
    from .cluster import close_client, cluster_from_config, get_client

    config = _read_yaml(args.config)
    budget = budget_from_config(config, base_dir=args.config.parent)
    if args.scheduler:
        summary = budget.run(args.store, scheduler=args.scheduler, n_workers=args.workers, progress=not args.quiet)
    else:
        section = _read_yaml(args.cluster_config).get("cluster") if args.cluster_config else config.get("cluster")
        kind, options = cluster_from_config(section, args.cluster)
        if args.workers is not None:
            if kind not in ("local", "cuda", "auto"):
                raise ValueError(f"--workers applies to a local cluster, not to {kind!r}: size it in its options")
            options["n_workers"] = args.workers
        client = get_client(kind, **options)
        try:
            summary = budget.run(args.store, scheduler=client, progress=not args.quiet)
        finally:
            close_client(client)
    if args.quiet:
        print(summary)
    return 0 if summary.failed == 0 else 1


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return config


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="budget store (Zarr) made by 'vbi-dask simulate'")
    parser.add_argument("--repair", action="store_true",
                        help="mark damaged blocks not done, so that re-running the budget recomputes exactly those")


def _verify(args: argparse.Namespace) -> int:
    from .store import verify

    report = verify(args.store, repair=args.repair)
    print(report)
    return 0 if report.ok or report.repaired else 1


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "simulate": ("run a simulation budget into a resumable Zarr store", _configure_simulate, _simulate),
    "train": ("train a neural posterior by streaming a store", _train_cli.configure_train, _train_cli.train),
    "infer": ("sample the posterior given observed features", _train_cli.configure_infer, _train_cli.infer),
    "verify": ("check that every done block of a store reads back as written (--repair: mark damaged ones "
               "not done)", _configure_verify, _verify),
    "demo": ("run the end-to-end inference demo (budget, training, diagnostics)", _train_cli.configure_demo,
             _train_cli.demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vbi-dask", description="Simulation-based inference on virtual brains.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, configure, _) in COMMANDS.items():
        configure(sub.add_parser(name, help=text, description=text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vbi-dask``; returns the exit status (2: bad input)."""
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command][2]
    try:
        return handler(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"vbi-dask {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
