"""Budgets from configuration mappings (YAML): a model's :class:`~vbi_dask.Budget`, or an
external simulator's (:func:`vbi_dask.external.external_budget_from_config`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .budget import Budget
from .connectome import Connectome, default_connectome, load_connectome, load_tvb_zip
from .features import FeatureSet
from .monitors import Monitor, monitor_from_dict
from .prior import Grid, Prior
from .simulation import Simulation

if TYPE_CHECKING:
    from .external import ExternalBudget

__all__ = ["budget_from_config"]


_CONFIG_KEYS = (
    "model",
    "connectome",
    "simulation",
    "prior",
    "grid",
    "n_sims",
    "chunk_size",
    "seed",
    "features",
    "keep_bold",
    "backend",
    "cluster",
)  # cluster: where it runs (vbi_dask.cluster), not part of the budget


def _monitor(name: str, options: Mapping | None) -> Monitor:
    from .monitors import _monitors

    wanted = name.replace("_", "").lower()
    types = {kind.lower(): kind for kind in _monitors._TYPES}
    if wanted not in types:
        raise ValueError(
            f"unknown monitor {name!r}; valid: {', '.join(k.lower() for k in _monitors._TYPES)} "
            "(case and underscores ignored, e.g. temporal_average)"
        )
    return monitor_from_dict({"type": types[wanted], **dict(options or {})})


def _connectome(spec: Any, base: Path) -> Connectome:
    if spec is None or spec == "default":
        return default_connectome().normalised("max")
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"connectome must be 'default', a TVB zip path or a mapping; got {spec!r}")
    spec = dict(spec)
    normalise = spec.pop("normalise", "max")
    name = spec.pop("name", None)
    resolve = lambda p: str(p if Path(p).is_absolute() else base / p)  # noqa: E731
    if "path" in spec:
        connectome = load_tvb_zip(resolve(spec.pop("path")))
    elif "weights" in spec:
        connectome = load_connectome(
            resolve(spec.pop("weights")), resolve(spec.pop("tract_lengths")) if "tract_lengths" in spec else None
        )
    else:
        connectome = default_connectome()
    if spec:
        raise ValueError(
            f"unknown connectome key(s) {sorted(spec)}; valid: path, weights, tract_lengths, normalise, name"
        )
    connectome = connectome.normalised(normalise)
    return dataclasses.replace(connectome, name=name) if name else connectome


def budget_from_config(
    config: Mapping[str, Any], *, base_dir: str | os.PathLike | None = None
) -> "Budget | ExternalBudget":
    """A :class:`Budget` from a configuration mapping (e.g. read from YAML).

    Keys: ``model``; ``connectome`` ("default", a TVB zip path, or ``{weights,
    tract_lengths, normalise}``); ``simulation`` (:class:`Simulation` options; ``monitors``
    as ``{bold: {tr_ms: 2000}, temporal_average: {period_ms: 1}}``); ``prior`` (a
    :class:`Prior` mapping) or ``grid`` (a :class:`Grid` mapping); ``n_sims``,
    ``chunk_size``, ``seed``, ``features`` (a :class:`FeatureSet` list), ``keep_bold``,
    ``backend`` (cpu, cuda or auto). With ``simulator`` instead of ``model``: an
    external simulator's budget (:func:`vbi_dask.external.external_budget_from_config`).
    ``cluster`` (where it runs) is read by
    :func:`vbi_dask.cluster.cluster_from_config`, not here. Relative file paths are
    relative to ``base_dir``. See ``examples/mpr_budget.yaml``.

    Raises
    ------
    ValueError
        Unknown or missing keys (the message lists the valid ones), and anything the
        objects reject.
    """
    if "simulator" in config:  # a user's function instead of a model
        from .external import external_budget_from_config

        return external_budget_from_config(config)
    config = dict(config)
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown configuration key(s) {unknown}; valid keys: {', '.join(_CONFIG_KEYS)}")
    missing = [k for k in ("model", "n_sims", "features") if k not in config]
    if ("prior" in config) == ("grid" in config):
        missing.append("prior (or grid, not both)")
    if missing:
        raise ValueError(f"configuration lacks {', '.join(missing)}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    options = dict(config.get("simulation") or {})
    for key in ("model", "connectome"):
        if key in options:
            raise ValueError(f"give {key!r} at the top level of the configuration, not under 'simulation'")
    monitors = options.pop("monitors", None)
    if monitors is not None:
        if not isinstance(monitors, Mapping):
            raise ValueError(f"simulation.monitors must be a mapping like {{bold: {{tr_ms: 2000}}}}, got {monitors!r}")
        options["monitors"] = tuple(_monitor(name, opts) for name, opts in monitors.items())
    simulation = Simulation(config["model"], connectome=_connectome(config.get("connectome"), base), **options)
    n_nodes = simulation.connectome.n_nodes
    if "grid" in config:
        prior = Grid(dict(config["grid"]), model=simulation.model, n_nodes=n_nodes)
    else:
        if not isinstance(config["prior"], Mapping):
            raise ValueError(f"prior must be a mapping of parameter -> spec, got {config['prior']!r}")
        prior = Prior(dict(config["prior"]), model=simulation.model, n_nodes=n_nodes)
    return Budget(
        simulation,
        prior,
        n_sims=config["n_sims"],
        features=FeatureSet.from_dict(config["features"]),
        chunk_size=config.get("chunk_size"),
        seed=config.get("seed", 0),
        keep_bold=config.get("keep_bold", False),
        backend=config.get("backend", "cpu"),
    )
