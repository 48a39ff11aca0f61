"""Command line: ``vbi-dask <command> ...`` (thin: parse arguments, call the public API).

    vbi-dask simulate CONFIG.yaml --store PATH [--cluster KIND|ADDRESS] [--cluster-config YAML] [--workers N]
                      [--no-check]
    vbi-dask train STORE [--out MODEL] [--estimator nsf] [--features NAME ...]
    vbi-dask infer MODEL --observed FILE [--samples N] [--out SAMPLES] [--max-sampling-time S] [--no-reject]
    vbi-dask sequential CONFIG.yaml --store PATH --observed FILE --rounds R --per-round N [--method tsnpe|snpe-c]
    vbi-dask verify STORE [--repair]
    vbi-dask status STORE
    vbi-dask check CONFIG.yaml [--duration-ms MS] [--n-runs N] [--tolerance X]
    vbi-dask demo [--out demo_output] [--n-sims N]

Each command is a ``(configure, handler)`` pair in :data:`COMMANDS`: ``configure(parser)``
adds the command's arguments, ``handler(args) -> int`` runs it and returns the exit status;
the part of a handler that does the work runs in ``with working(args):``.

Exit status (:data:`EXIT_STATUS`, also in ``vbi-dask --help``): 0 done; 2 a usage or
configuration error, a missing optional dependency included (one line ``vbi-dask CMD:
error: ...``); 1 a failure while working (one line ``vbi-dask CMD: failed: Type:
message``; the traceback with ``vbi-dask --debug CMD ...``); 130 interrupted (Ctrl-C).
Every option's help shows its default (:func:`_show_defaults`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import textwrap
import threading
import traceback
from pathlib import Path
from typing import Callable, Iterator

from ._cli_common import existing_file, is_usage_error, positive_int, read_yaml, working
from . import __version__, _check_cli, _sequential_cli
from ._extras import deferred, require

with deferred("train"):  # the parsers need no torch; a training command's handler requires the extra
    from .train import _cli as _train_cli

__all__ = ["main", "COMMANDS", "EXIT_STATUS"]


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="budget configuration (YAML), e.g. examples/mpr_budget.yaml")
    parser.add_argument("--store", required=True, type=Path, help="Zarr store to create, resume or extend")
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="KIND|ADDRESS",
        help="where the budget runs: local, cuda, auto, slurm, kubernetes, or a scheduler address "
        "(tcp://host:8786); options come from the 'cluster:' section of CONFIG (or of "
        "--cluster-config); default: that section's kind, else local",
    )
    parser.add_argument(
        "--cluster-config",
        type=Path,
        default=None,
        metavar="YAML",
        help="a YAML file with a 'cluster:' section (e.g. deploy/slurm/cluster.yaml), used instead of CONFIG's",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        choices=("sync", "threads"),
        help="run in this process with dask's local scheduler instead of a cluster",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="workers of a local cluster (default: CPU count)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the numerical pre-flight (vbi-dask check) run before a new store is filled",
    )


def _simulate(args: argparse.Namespace) -> int:
    from .configuration import budget_from_config

    config = read_yaml(existing_file(args.config, "configuration"))
    if args.store.exists() and not args.store.is_dir():
        raise NotADirectoryError(f"--store {str(args.store)!r} is a file, not a Zarr store folder; choose another path")
    budget = budget_from_config(config, base_dir=args.config.parent)
    # the pre-flight checks vbi-dask's own kernels; an external simulator has none
    preflight = not args.no_check and "simulator" not in config and _nothing_done(args.store)
    if args.scheduler:
        if preflight:
            _preflight_warnings(budget, args)
        with working(args), _interrupted_report(budget, args.store):
            summary = budget.run(args.store, scheduler=args.scheduler, n_workers=args.workers, progress=not args.quiet)
    else:
        kind, options = cluster_choice(args, config)
        if preflight:  # after every check of the arguments: it simulates for a few seconds
            _preflight_warnings(budget, args)
        with working(args), _interrupted_report(budget, args.store), cluster_client(kind, options) as client:
            summary = budget.run(args.store, scheduler=client, progress=not args.quiet)
    if args.quiet:
        print(summary)
    return 0 if summary.failed == 0 else 1


def cluster_choice(args: argparse.Namespace, config: dict) -> tuple[str, dict]:
    """The cluster kind and options of ``--cluster``, ``--cluster-config`` or CONFIG's
    ``cluster:`` section, and ``--workers``."""
    from .cluster import cluster_from_config

    if args.cluster_config:
        section = read_yaml(existing_file(args.cluster_config, "--cluster-config")).get("cluster")
    else:
        section = config.get("cluster")
    kind, options = cluster_from_config(section, args.cluster)
    if args.workers is not None:
        if kind not in ("local", "cuda", "auto"):
            raise ValueError(f"--workers applies to a local cluster, not to {kind!r}: size it in its options")
        options["n_workers"] = args.workers
    return kind, options


@contextlib.contextmanager
def cluster_client(kind: str, options: dict) -> Iterator:
    """A Dask client of the chosen cluster, closed at the end; Ctrl-C quietly."""
    from .cluster import close_client, get_client

    local = kind in ("local", "cuda", "auto")  # worker processes writing to this terminal
    # local workers start with Ctrl-C ignored: it reaches this driver alone, which shuts
    # them down (else each prints its own KeyboardInterrupt traceback)
    with _sigint_ignored(local):
        client = get_client(kind, **options)
    try:
        yield client
    except KeyboardInterrupt:
        # the shutdown cancels the tasks in flight, which Dask logs one by one
        _silence_dask_logs()
        if local:
            with contextlib.suppress(Exception):
                client.run(_silence_dask_logs)
        raise
    finally:
        close_client(client)


def _nothing_done(store: Path) -> bool:
    from .store import read_done

    try:
        return not read_done(store).any()
    except Exception:  # noqa: BLE001 - no store yet (or one the run will refuse with its own message)
        return True


def _preflight_warnings(budget, args: argparse.Namespace) -> None:
    """The numerical pre-flight before a new budget: findings are printed as warnings
    (the budget runs anyway; its summary tells where invalid rows lie)."""
    from .preflight import preflight

    with working(args):
        report = preflight(budget)
    if not report.ok:
        print(
            f"vbi-dask simulate: warning: the numerical pre-flight has {len(report.findings)} finding(s) (the "
            "budget runs anyway; 'vbi-dask check CONFIG' prints the whole report):\n"
            + "\n".join(f"  - {finding.message}" for finding in report.findings),
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def _interrupted_report(budget, store: Path) -> Iterator[None]:
    """Turn Ctrl-C into ``KeyboardInterrupt("N of M simulations (B of K blocks) of STORE are
    done; run the same command again to resume")``."""
    from .store import read_done

    try:
        yield
    except KeyboardInterrupt:
        try:
            done = read_done(store)
        except Exception:  # noqa: BLE001 - no store yet, or one that cannot be read: say less
            raise KeyboardInterrupt(
                f"no simulation of {store} is done yet; run the same command again to start over"
            ) from None
        blocks = budget.blocks()
        n_blocks = sum(bool(done[s:e].all()) for s, e in blocks)
        raise KeyboardInterrupt(
            f"{int(done.sum())} of {done.size} simulations ({n_blocks} of {len(blocks)} "
            f"blocks) of {store} are done; run the same command again to resume"
        ) from None


@contextlib.contextmanager
def _sigint_ignored(enabled: bool) -> Iterator[None]:
    """Ignore SIGINT while child processes start: they inherit that, and Python then leaves
    it ignored in them."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _silence_dask_logs() -> None:
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="budget store (Zarr) made by 'vbi-dask simulate'")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="mark damaged blocks not done, so that re-running the budget recomputes exactly those",
    )


def _verify(args: argparse.Namespace) -> int:
    from .store import verify

    report = verify(args.store, repair=args.repair)
    print(report)
    return 0 if report.ok or report.repaired else 1


def _configure_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="budget store (Zarr) made by 'vbi-dask simulate'")


def _status(args: argparse.Namespace) -> int:
    from .store import status

    print(status(args.store))
    return 0


def _needs(extra: str, handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler``, run only when the optional dependencies of ``extra`` are installed (else
    one line naming the extra, exit 2)."""

    def run(args: argparse.Namespace) -> int:
        require(extra, "this command")
        return handler(args)

    return run


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "simulate": ("run a simulation budget into a resumable Zarr store", _configure_simulate, _simulate),
    "train": (
        "train a neural posterior by streaming a store",
        _train_cli.configure_train,
        _needs("train", _train_cli.train),
    ),
    "infer": (
        "sample the posterior given observed features",
        _train_cli.configure_infer,
        _needs("train", _train_cli.infer),
    ),
    "sequential": (
        "rounds of simulations into one store, each drawn where the previous rounds' posterior puts the "
        "observation (TSNPE or SNPE-C); writes the final posterior",
        _sequential_cli.configure,
        _needs("train", _sequential_cli.run),
    ),
    "check": (
        "numerical pre-flight of a budget configuration: short runs at the prior's corners at dt and "
        "dt/2 (exit 1 when they diverge or disagree)",
        _check_cli.configure,
        _check_cli.check,
    ),
    "verify": (
        "check that every done block of a store reads back as written (--repair: mark damaged ones not done)",
        _configure_verify,
        _verify,
    ),
    "status": (
        "print a store's configuration and progress: blocks and simulations done, invalid rows, the "
        "driver holding it, what to do next (reads only)",
        _configure_status,
        _status,
    ),
    "demo": (
        "run the end-to-end inference demo (budget, training, diagnostics)",
        _train_cli.configure_demo,
        _needs("train", _train_cli.demo),
    ),
}

# status -> meaning, printed by `vbi-dask --help`
EXIT_STATUS = {
    0: "done",
    1: "a failure while working: one line 'vbi-dask CMD: failed: ...'",
    2: "a usage or configuration error, or a missing optional dependency: one line 'vbi-dask CMD: error: ...' "
    "(naming the extra to install)",
    130: "interrupted (Ctrl-C): one line saying what is done",
}


_DEBUG_HELP = "on an error, print the full traceback"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to the help of each option whose help does not state its
    default (a switch's is ``off``; a flag without help gets one that shows its default),
    ``(required)`` to a required option's."""
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = action.help or ""
        if "default" in text or "required" in text:
            continue
        if action.required:
            action.help = f"{text} (required)".lstrip()
            continue
        if action.nargs == 0:  # store_true / store_false
            shown = "on" if action.const is False else "off"
        elif action.default is None or action.default is argparse.SUPPRESS:
            shown = "none"
        elif isinstance(action.default, (list, tuple)):
            shown = " ".join(map(str, action.default)) or "none"
        else:
            shown = str(action.default)
        action.help = f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit status (--debug adds the traceback to the line of an error):\n" + "\n".join(
        textwrap.fill(meaning, 78, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code, meaning in EXIT_STATUS.items()
    )
    parser = argparse.ArgumentParser(
        prog="vbi-dask",
        description="Simulation-based inference on virtual brains.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vbi-dask {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, configure, _) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text)
        configure(command)
        # also after the command; SUPPRESS: an absent flag keeps the value parsed before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
        _show_defaults(command)
    _show_defaults(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vbi-dask``; returns the exit status.

    0: done. 2: a usage or configuration error: bad arguments, a missing path, invalid
    YAML or configuration, or a refusal by vbi-dask's checks (see
    :func:`vbi_dask._cli_common.is_usage_error`). 1: a failure while working. 130: Ctrl-C.
    Each prints one line to stderr (the traceback too with ``--debug``); bad arguments
    raise argparse's ``SystemExit(2)`` after its usage message.
    """
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command][2]
    prefix = f"vbi-dask {args.command}"
    try:
        return handler(args)
    except KeyboardInterrupt as interrupt:
        if args.debug:
            traceback.print_exc()
        print(f"{prefix}: interrupted" + (f": {interrupt}" if interrupt.args else ""), file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every error ends as one line and an exit status
        if args.debug:
            traceback.print_exc()
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        if is_usage_error(error, args):
            print(f"{prefix}: error: {message}", file=sys.stderr)
            return 2
        print(f"{prefix}: failed: {type(error).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
