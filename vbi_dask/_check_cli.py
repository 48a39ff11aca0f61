"""The ``check`` command of ``vbi-dask`` (registered in :mod:`vbi_dask.cli`): the
numerical pre-flight of a budget configuration, without running the budget.

    vbi-dask check CONFIG.yaml [--duration-ms MS] [--max-steps N] [--n-runs N] [--tolerance X]

Exit status: 0 when the pre-flight finds nothing, 1 when it has findings (printed), 2 for
a bad configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["configure", "check"]


def configure(parser: argparse.ArgumentParser) -> None:
    from ._cli_common import positive_float, positive_int
    from .preflight import PreflightOptions

    parser.add_argument("config", type=Path, help="budget configuration (YAML), e.g. examples/mpr_budget.yaml")
    for option in dataclasses.fields(PreflightOptions):  # one flag per option, named and typed by the field
        kind = {"float | None": positive_float, "float": positive_float, "int": positive_int}[str(option.type)]
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            dest=option.name,
            type=kind,
            default=option.default,
            help=option.metadata["help"] + (f" (default {option.default})" if option.default else ""),
        )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="kernel threads (default: the CPUs of this process)"
    )


def check(args: argparse.Namespace) -> int:
    from ._cli_common import existing_file, working
    from .configuration import budget_from_config
    from ._cli_common import read_yaml
    from .preflight import PreflightOptions, preflight

    config = read_yaml(existing_file(args.config, "configuration"))
    budget = budget_from_config(config, base_dir=args.config.parent)
    options = PreflightOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PreflightOptions)})
    with working(args):
        report = preflight(budget, options, threads=args.threads)
    print(report)
    return 0 if report.ok else 1
