"""Optional dependencies, grouped as the extras of ``pyproject.toml``, and the one-line
error that names the extra to install when one is missing.

The base install simulates and runs budgets; ``pip install 'vbi-dask[train]'`` adds
training and inference (torch, Lightning, sbi, matplotlib, markdown), ``[fit]`` evolutionary fitting (cma), ``[slurm]``, ``[kubernetes]``
and ``[cuda]`` add cluster kinds. ``tests/test_extras.py`` checks :data:`EXTRAS` against
``pyproject.toml``.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Iterator, Sequence

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require", "deferred"]

# extra -> the top-level modules vbi-dask imports from it (distribution name: "_" -> "-")
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "lightning", "sbi", "matplotlib", "markdown"),
    "fit": ("cma",),
    "slurm": ("dask_jobqueue",),
    "kubernetes": ("dask_kubernetes",),
    "cuda": ("dask_cuda",),
}

_deferred: set[str] = set()


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is missing; the message (one line) names the extra that
    provides it and the ``pip install`` command."""


def missing_modules(extra: str, modules: Sequence[str] | None = None) -> list[str]:
    """The modules of ``extra`` (or ``modules``) that cannot be found; nothing is imported."""
    return [m for m in (EXTRAS[extra] if modules is None else modules) if importlib.util.find_spec(m) is None]


def require(extra: str, what: str, modules: Sequence[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` when a module of ``extra`` (or ``modules``) is missing:
    ``"{what} needs the '{extra}' extra: pip install 'vbi-dask[{extra}]' (missing: ...)"``.

    Passes inside :func:`deferred` for ``extra``.
    """
    if extra in _deferred:
        return
    missing = missing_modules(extra, modules)
    if missing:
        names = ", ".join(m.replace("_", "-") for m in missing)
        raise MissingExtraError(
            f"{what} needs the {extra!r} extra: pip install 'vbi-dask[{extra}]' (missing: {names})", name=missing[0]
        )


@contextlib.contextmanager
def deferred(extra: str) -> Iterator[None]:
    """Within, :func:`require` passes for ``extra``: the command line loads the training
    commands' argument parsers (``vbi_dask.train._cli``, inside the ``vbi_dask.train``
    package) without torch; their handlers call :func:`require` before they run."""
    added = extra not in _deferred
    _deferred.add(extra)
    try:
        yield
    finally:
        if added:
            _deferred.discard(extra)
