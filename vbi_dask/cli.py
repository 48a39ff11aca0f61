"""Command line: ``vbi-dask <command> ...`` (thin: parse arguments, call the public API).

    vbi-dask simulate CONFIG.yaml --store PATH [--scheduler ADDRESS] [--workers N]
    vbi-dask train STORE [--out MODEL] [--estimator nsf] [--features NAME ...]
    vbi-dask infer MODEL --observed FILE [--samples N] [--out SAMPLES]
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
    parser.add_argument("--scheduler", default=None,
                        help="Dask scheduler address (tcp://host:8786), or 'sync' / 'threads' for a local "
                             "scheduler; default: a LocalCluster of single-threaded workers")
    parser.add_argument("--workers", type=int, default=None, help="workers of the LocalCluster (default: CPU count)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _simulate(args: argparse.Namespace) -> int:
    import yaml

    from .budget import budget_from_config

    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if not isinstance(config, dict):
        raise ValueError(f"{args.config}: expected a YAML mapping at the top level")
    budget = budget_from_config(config, base_dir=args.config.parent)
    summary = budget.run(args.store, scheduler=args.scheduler, n_workers=args.workers, progress=not args.quiet)
    if args.quiet:
        print(summary)
    return 0 if summary.failed == 0 else 1


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "simulate": ("run a simulation budget into a resumable Zarr store", _configure_simulate, _simulate),
    "train": ("train a neural posterior by streaming a store", _train_cli.configure_train, _train_cli.train),
    "infer": ("sample the posterior given observed features", _train_cli.configure_infer, _train_cli.infer),
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
