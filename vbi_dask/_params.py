"""Broadcasting of parameter values to the kernel's (param, node, sim) layout."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

from .models import ModelSpec

__all__ = ["broadcast_param", "param_array", "resolve_n_sims"]


def broadcast_param(name: str, value, n_nodes: int, n_sims: int) -> np.ndarray:
    """One parameter's values as a float64 (node, sim) array.

    Accepted: a scalar; an ``xarray.DataArray`` with dims among ``sim``/``node``; a 1-D
    array of length n_sims (per simulation) or n_nodes (per region); a 2-D (sim, node)
    array. A 1-D array is ambiguous when n_sims == n_nodes: pass a DataArray then.
    """
    if isinstance(value, xr.DataArray):
        extra = set(value.dims) - {"sim", "node"}
        if extra:
            raise ValueError(f"parameter {name!r}: dims must be among ('sim', 'node'), got {value.dims}")
        arr = value.transpose(*[d for d in ("node", "sim") if d in value.dims]).values.astype(np.float64)
        if value.dims == ("sim",) or set(value.dims) == {"sim"}:
            arr = arr[None, :]
        elif set(value.dims) == {"node"}:
            arr = arr[:, None]
        sizes = dict(zip(("node", "sim"), (n_nodes, n_sims)))
        for dim in value.dims:
            if value.sizes[dim] != sizes[dim]:
                raise ValueError(f"parameter {name!r}: dim {dim!r} has size {value.sizes[dim]}, expected {sizes[dim]}")
        out = np.broadcast_to(arr, (n_nodes, n_sims))
    else:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            out = np.broadcast_to(arr, (n_nodes, n_sims))
        elif arr.ndim == 1:
            per_sim, per_node = arr.size == n_sims, arr.size == n_nodes
            if per_sim and per_node and n_sims != 1:
                raise ValueError(
                    f"parameter {name!r}: a 1-D array of length {arr.size} is ambiguous when there are "
                    f"{n_sims} simulations and {n_nodes} nodes; pass xarray.DataArray(values, dims='sim' or 'node')"
                )
            if per_sim:
                out = np.broadcast_to(arr[None, :], (n_nodes, n_sims))
            elif per_node:
                out = np.broadcast_to(arr[:, None], (n_nodes, n_sims))
            else:
                raise ValueError(
                    f"parameter {name!r}: length {arr.size} matches neither the number of simulations "
                    f"({n_sims}) nor of nodes ({n_nodes})"
                )
        elif arr.ndim == 2:
            if arr.shape != (n_sims, n_nodes):
                raise ValueError(
                    f"parameter {name!r}: a 2-D array must be (sim, node) = ({n_sims}, {n_nodes}), got {arr.shape}"
                )
            out = arr.T
        else:
            raise ValueError(f"parameter {name!r}: expected at most 2 dims (sim, node), got shape {arr.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"parameter {name!r} has {int(np.sum(~np.isfinite(out)))} non-finite values")
    return out


def resolve_n_sims(params: Mapping, n_sims: int | None, n_nodes: int) -> int:
    """The batch size: given, or read from the params (a DataArray's 'sim' dim, the first
    dim of 2-D arrays, the length of 1-D arrays that cannot be per node)."""
    if n_sims is not None:
        if int(n_sims) < 1:
            raise ValueError(f"n_sims must be >= 1, got {n_sims}")
        return int(n_sims)
    sizes = set()
    for value in params.values():
        if isinstance(value, xr.DataArray) and "sim" in value.dims:
            sizes.add(value.sizes["sim"])
        elif np.ndim(value) == 2:
            sizes.add(np.shape(value)[0])
        elif np.ndim(value) == 1 and np.size(value) != n_nodes:
            sizes.add(np.size(value))
    if len(sizes) > 1:
        raise ValueError(f"parameters disagree on the number of simulations: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def param_array(model: ModelSpec, params: Mapping, n_nodes: int, n_sims: int, n_padded: int, dtype) -> np.ndarray:
    """All parameters (model's then G) as a contiguous (param, node, padded sim) array."""
    model.check_param_names(params)
    out = np.empty((len(model.all_params), n_nodes, n_padded), dtype=dtype)
    for k, p in enumerate(model.all_params):
        values = broadcast_param(p.name, params.get(p.name, p.default), n_nodes, n_sims)
        out[k, :, :n_sims] = values
        out[k, :, n_sims:] = values[:, :1]  # padding lanes repeat simulation 0
    return out
