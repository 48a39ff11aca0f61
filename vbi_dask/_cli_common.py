"""What the commands of ``vbi-dask`` share: argument types, checks of paths before any
work, and the mark of where a command's work starts (see :func:`working`).

Exit statuses (:func:`vbi_dask.cli.main`): 2 for a usage or configuration error (bad
arguments, a missing or unreadable path, an invalid configuration, a refusal by
vbi-dask's own checks, a missing optional dependency), 1 for a failure while the work
runs, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path
from typing import Iterator

from ._extras import MissingExtraError

__all__ = ["positive_int", "positive_float", "existing_file", "output_file", "read_yaml", "working", "is_usage_error"]

_PACKAGE = Path(__file__).resolve().parent


def positive_int(text: str) -> int:
    """An argparse ``type``: a positive integer (else a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite positive number (else a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def existing_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; else FileNotFoundError or IsADirectoryError naming ``what``."""
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory, not a file")
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def output_file(path: Path, what: str) -> Path:
    """``path`` if a file can be written there: not a directory, and its folder exists or
    can be created (the nearest existing folder above it is a writable folder)."""
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is an existing directory; give a file name")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {what} {str(path)!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {what} {str(path)!r}: folder {str(ancestor)!r} is not writable")
    return path


def read_yaml(path: Path) -> dict:
    """The YAML mapping in ``path``; a syntax error names its line and column (from 1)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ValueError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return config


@contextlib.contextmanager
def working(args: argparse.Namespace) -> Iterator[None]:
    """Mark the part of a command that does its work (simulating, training, sampling,
    writing results): see :func:`is_usage_error`."""
    args.working = True
    yield
    args.working = False


def is_usage_error(error: Exception, args: argparse.Namespace) -> bool:
    """Whether ``error`` is the user's to fix (exit 2) rather than a failure of the run (1).

    A missing optional dependency (:class:`~vbi_dask._extras.MissingExtraError`, whose
    message names the extra to install) always is. Before the command's work starts
    (:func:`working`), a ValueError, KeyError, TypeError or OSError is: arguments, paths,
    the configuration. Once it runs, only a ValueError or KeyError raised by vbi-dask's
    own checks is (a refused store, a bad observation); anything else, such as an error
    from torch, Dask or Zarr, an OSError or a RuntimeError
    (:class:`~vbi_dask.train.SamplingTimeout`, a store held by another driver), is a
    failure of the run.
    """
    if isinstance(error, MissingExtraError):
        return True
    if not getattr(args, "working", False):
        return isinstance(error, (ValueError, KeyError, TypeError, OSError))
    return isinstance(error, (ValueError, KeyError)) and _raised_by_vbi_dask(error)


def _raised_by_vbi_dask(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is vbi-dask code."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
