"""Priors over named model parameters, and grid designs for parameter sweeps.

>>> prior = Prior({"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 5, 9]}},
...               model="mpr", n_nodes=84)
>>> prior.param_names
['G', 'eta[0]', 'eta[5]', 'eta[9]']
>>> theta = prior.sample(16, seed=1)             # (16, 4), reproducible per simulation
>>> params = prior.to_params(theta)              # for Simulation.run(params)

A draw is a pure function of (seed, global simulation index, column): simulation ``k``
gets the same parameters whatever the chunking, worker count or batch it is drawn in.
Each column's uniform comes from the counter-based Philox generator of
:mod:`vbi_dask.kernels.rng` (stream ``STREAM_PRIOR``, counters ``(k mod 2**32, column,
k >> 32)``; two 32-bit words give a 52-bit uniform on (0, 1)) and is mapped through the
column's inverse CDF.

Distributions are named torch distributions (``torch.distributions.<dist>``) with
their arguments, so a prior is JSON-able. Inverse CDFs come, in this order, from torch's
``icdf`` (Uniform, Normal, LogNormal, Exponential, HalfNormal, Laplace, Cauchy, Gumbel,
...), from SciPy's ``ppf`` for the torch distributions without one (Gamma, Beta, Chi2,
StudentT, Weibull, InverseGamma, Pareto), and from the Cholesky factor for
MultivariateNormal. Any other continuous distribution is sampled with torch's own
sampler under a generator seeded from the same counters (in a forked RNG state):
reproducible and chunk independent, but not an inverse-CDF transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .kernels import rng as _rng
from .models import ModelSpec, get_model

__all__ = ["ParamPrior", "Prior", "Grid", "prior_from_dict"]

# torch distributions without icdf whose quantile function SciPy provides:
# name -> (scipy.stats name, function of the torch args giving scipy's keyword args)
_SCIPY_PPF = {
    "Gamma": ("gamma", lambda a: {"a": a["concentration"], "scale": 1.0 / a["rate"]}),
    "Beta": ("beta", lambda a: {"a": a["concentration1"], "b": a["concentration0"]}),
    "Chi2": ("chi2", lambda a: {"df": a["df"]}),
    "StudentT": ("t", lambda a: {"df": a["df"], "loc": a.get("loc", 0.0), "scale": a.get("scale", 1.0)}),
    "Weibull": ("weibull_min", lambda a: {"c": a["concentration"], "scale": a["scale"]}),
    "InverseGamma": ("invgamma", lambda a: {"a": a["concentration"], "scale": a["rate"]}),
    "Pareto": ("pareto", lambda a: {"b": a["alpha"], "scale": a["scale"]}),
}


def _torch(what: str = "a prior other than Uniform"):
    """torch (the 'train' extra): priors other than Uniform and ``to_torch`` use it; uniform
    priors and grids need no torch."""
    from ._extras import require

    require("train", what, ["torch"])
    import torch

    return torch


def _plain(value: Any) -> Any:
    """Numbers and nested lists as plain Python (JSON-able)."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else array.tolist()


def _uniforms(seed: int, sims: np.ndarray, columns: int) -> np.ndarray:
    """(len(sims), columns) float64 uniforms on (0, 1), 52 random bits each."""
    sims = np.asarray(sims, dtype=np.uint64)
    cols = np.arange(columns, dtype=np.uint64)
    lo, hi = sims & np.uint64(0xFFFFFFFF), sims >> np.uint64(32)
    u = _rng.uniforms_numpy(seed, lo[:, None], cols[None, :], hi[:, None], _rng.STREAM_PRIOR, 0)
    words = np.rint(u[..., :2] * 2.0**32 - 0.5).astype(np.uint64)  # the two 32-bit words
    k = (words[..., 0] << np.uint64(20)) | (words[..., 1] >> np.uint64(12))  # 52 bits
    return (k.astype(np.float64) + 0.5) * 2.0**-52


def _nodes(name: str, nodes: Any, n_nodes: int) -> tuple[int, ...] | None:
    if nodes is None:
        return None
    if isinstance(nodes, str):
        if nodes != "all":
            raise ValueError(f"prior for {name!r}: nodes must be 'all' or a list of node indices, got {nodes!r}")
        return tuple(range(n_nodes))
    out = []
    for node in np.atleast_1d(np.asarray(nodes, dtype=object)):
        if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
            raise ValueError(f"prior for {name!r}: nodes must be integer node indices, got {node!r}")
        if not 0 <= node < n_nodes:
            raise ValueError(f"prior for {name!r}: node index {node} out of range [0, {n_nodes})")
        out.append(int(node))
    if not out:
        raise ValueError(f"prior for {name!r}: nodes is empty")
    if len(set(out)) != len(out):
        raise ValueError(f"prior for {name!r}: nodes repeat: {sorted(n for n in set(out) if out.count(n) > 1)}")
    return tuple(out)


@dataclass(frozen=True)
class ParamPrior:
    """The prior of one named parameter: global (one column) or regional (one per node).

    Parameters
    ----------
    name : str
        A parameter of the model (``G`` included).
    dist : str
        A ``torch.distributions`` class name; ``"Uniform"`` (the default) is the box prior.
    args : mapping
        The distribution's arguments (``low``/``high`` for Uniform, ``loc``/``scale`` for
        Normal, ...): numbers, or per-node lists of length ``len(nodes)``. For
        ``MultivariateNormal``: ``loc`` (k,) and ``covariance_matrix`` or ``scale_tril``
        (k, k), one dimension per node.
    nodes : None, "all" or sequence of int
        None: one value for every node (column ``name``). Otherwise the regions whose
        values are drawn (columns ``name[i]``); the other regions keep the default.
    """

    name: str
    dist: str = "Uniform"
    args: Mapping[str, Any] = field(default_factory=dict)
    nodes: tuple[int, ...] | str | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Any) -> "ParamPrior":
        """From ``(low, high)``, a mapping (``{"low", "high", "nodes"}`` or ``{"dist":
        "Normal", "loc", "scale", "nodes"}``), or a ``torch.distributions`` object
        (optionally as ``{"dist": <object>, "nodes": ...}``)."""
        if isinstance(spec, ParamPrior):
            return spec
        nodes = None
        if isinstance(spec, Mapping):
            spec = dict(spec)
            nodes = spec.pop("nodes", None)
            dist = spec.pop("dist", "Uniform")
            if not isinstance(dist, str):  # a torch distribution object plus nodes
                if spec:
                    raise ValueError(
                        f"prior for {name!r}: with a distribution object, only 'nodes' may be given; got {sorted(spec)}"
                    )
                return cls(name, *_describe(name, dist), nodes=nodes)
            return cls(name, dist, spec, nodes)
        if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(np.ndim(v) == 0 for v in spec):
            return cls(name, "Uniform", {"low": spec[0], "high": spec[1]})
        if type(spec).__module__.startswith("torch.distributions") or hasattr(spec, "arg_constraints"):
            return cls(name, *_describe(name, spec))
        raise ValueError(
            f"prior for {name!r}: expected (low, high), a mapping like {{'low': .., 'high': .., 'nodes': ..}} "
            f"or {{'dist': 'Normal', 'loc': .., 'scale': ..}}, or a torch distribution; got {spec!r}"
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dist": self.dist,
            "args": dict(self.args),
            "nodes": None if self.nodes is None else list(self.nodes),
        }

    @property
    def n_columns(self) -> int:
        return 1 if self.nodes is None else len(self.nodes)

    @property
    def column_names(self) -> list[str]:
        if self.nodes is None:
            return [self.name]
        return [f"{self.name}[{i}]" for i in self.nodes]

    @property
    def multivariate(self) -> bool:
        return self.dist == "MultivariateNormal"

    def _validate(self, n_nodes: int) -> "ParamPrior":
        """A copy with nodes resolved and args as plain floats / lists; checks values."""
        nodes = _nodes(self.name, self.nodes, n_nodes)
        k = 1 if nodes is None else len(nodes)
        args = {str(a): _plain(v) for a, v in dict(self.args).items()}
        out = ParamPrior(self.name, str(self.dist), args, nodes)
        if out.dist == "Uniform":
            if set(args) != {"low", "high"}:
                raise ValueError(f"prior for {self.name!r}: a uniform prior takes 'low' and 'high', got {sorted(args)}")
            low, high = (np.broadcast_to(np.asarray(args[a], dtype=np.float64), (k,)) for a in ("low", "high"))
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise ValueError(
                    f"prior for {self.name!r}: low and high must be finite, got low={args['low']}, high={args['high']}"
                )
            bad = np.flatnonzero(~(low < high))
            if bad.size:
                where = "" if nodes is None else f" at node {nodes[bad[0]]}"
                raise ValueError(
                    f"prior for {self.name!r}: low ({low[bad[0]]:g}) must be < high ({high[bad[0]]:g}){where}"
                )
        else:
            out._torch_dist(k)  # validates arguments and shapes through torch
        return out

    def _torch_dist(self, k: int, dtype=None):
        """The torch distribution over this factor's k columns: batch (k,) for univariate
        distributions, event (k,) for multivariate ones."""
        torch = _torch()
        dtype = dtype or torch.float64
        cls = getattr(torch.distributions, self.dist, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.distributions.Distribution)):
            raise ValueError(
                f"prior for {self.name!r}: unknown distribution {self.dist!r} (a torch.distributions class name)"
            )
        try:
            if self.multivariate:
                tensors = {a: torch.as_tensor(v, dtype=dtype) for a, v in self.args.items()}
                dist = cls(**tensors, validate_args=True)
                if dist.event_shape != (k,):
                    raise ValueError(f"event shape {tuple(dist.event_shape)} does not match {k} column(s)")
            else:
                tensors = {a: torch.as_tensor(v, dtype=dtype).expand(k).clone() for a, v in self.args.items()}
                dist = cls(**tensors, validate_args=True)
                if dist.batch_shape != (k,) or dist.event_shape != ():
                    raise ValueError(
                        f"gives batch {tuple(dist.batch_shape)}, event {tuple(dist.event_shape)}; expected ({k},), ()"
                    )
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"prior for {self.name!r}: invalid {self.dist} with {dict(self.args)}: {error}") from None
        if getattr(dist.support, "is_discrete", False):
            raise ValueError(f"prior for {self.name!r}: {self.dist} is discrete; priors must be continuous")
        return dist

    def _inverse_cdf(self, u: np.ndarray, words_seed: np.ndarray) -> np.ndarray:
        """Map uniforms (n, k) to draws (n, k), float64."""
        n, k = u.shape
        if self.dist == "Uniform":
            low, high = (np.broadcast_to(np.asarray(self.args[a], dtype=np.float64), (k,)) for a in ("low", "high"))
            return low + (high - low) * u
        torch = _torch()
        dist = self._torch_dist(k)
        if self.dist == "MultivariateNormal":
            from scipy.special import ndtri

            z = ndtri(u)
            loc = dist.loc.numpy()
            tril = dist.scale_tril.numpy()
            return loc + z @ tril.T
        try:
            with np.errstate(all="ignore"):
                return dist.icdf(torch.as_tensor(u, dtype=torch.float64)).numpy()
        except NotImplementedError:
            pass
        if self.dist in _SCIPY_PPF:
            import scipy.stats

            scipy_name, kwargs = _SCIPY_PPF[self.dist]
            args = {a: np.broadcast_to(np.asarray(v, dtype=np.float64), (k,)) for a, v in self.args.items()}
            return getattr(scipy.stats, scipy_name).ppf(u, **kwargs(args))
        # No quantile function: torch's sampler, seeded per simulation from the counters.
        out = np.empty((n, k))
        with torch.random.fork_rng(devices=[]):
            for row in range(n):
                torch.manual_seed(int(words_seed[row]))
                out[row] = dist.sample().numpy()
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the support for each column; +-inf where unbounded."""
        k = self.n_columns
        if self.dist == "Uniform":
            return tuple(
                np.broadcast_to(np.asarray(self.args[a], dtype=np.float64), (k,)).copy() for a in ("low", "high")
            )
        support = self._torch_dist(k).support
        while hasattr(support, "base_constraint"):  # independent(...)
            support = support.base_constraint
        low = getattr(support, "lower_bound", -math.inf)
        high = getattr(support, "upper_bound", math.inf)
        return (
            np.broadcast_to(np.asarray(_plain(low)), (k,)).astype(np.float64),
            np.broadcast_to(np.asarray(_plain(high)), (k,)).astype(np.float64),
        )


def _describe(name: str, dist) -> tuple[str, dict]:
    """(class name, args) of a torch distribution object, checked to rebuild identically."""
    kind = type(dist).__name__
    torch = _torch()
    if kind == "MultivariateNormal":
        args = {"loc": _plain(dist.loc), "scale_tril": _plain(dist.scale_tril)}
    else:
        args = {a: _plain(getattr(dist, a)) for a in dist.arg_constraints}
    cls = getattr(torch.distributions, kind, None)
    try:
        if cls is not type(dist):
            raise TypeError("not a torch.distributions class")
        cls(**{a: torch.as_tensor(v) for a, v in args.items()})
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"prior for {name!r}: cannot describe {kind} by its arguments {sorted(args)} ({error}); "
            "use a torch.distributions class built from its arguments (Normal(loc, scale), Gamma(...), ...)"
        ) from None
    return kind, args


class _Design:
    """What budgets need of a prior or a grid (shared by :class:`Prior` and :class:`Grid`)."""

    model: ModelSpec | None  # None: a prior over free names
    n_nodes: int | None

    @property
    def param_names(self) -> list[str]:
        raise NotImplementedError

    def _columns(self) -> list[tuple[str, tuple[int, ...] | None]]:
        raise NotImplementedError

    def to_params(self, theta: np.ndarray) -> dict[str, xr.DataArray]:
        """Simulation parameters from ``theta`` (n, n_param).

        Returns a mapping parameter name -> ``DataArray``: dims ``("sim",)`` (one value per
        simulation) for global parameters, ``("sim", "node")`` for regional ones, whose
        regions outside the prior keep the model's default. DataArrays carry their dims,
        so a 1-D array is never ambiguous when n equals the number of nodes.
        """
        if self.model is None:
            raise ValueError(
                "a prior over free names (no model) gives no simulation parameters; its theta goes "
                "to an external simulator as it is"
            )
        theta = np.asarray(theta, dtype=np.float64)
        n_param = len(self.param_names)
        if theta.ndim == 1 and n_param == theta.size:
            theta = theta[None, :]
        if theta.ndim != 2 or theta.shape[1] != n_param:
            raise ValueError(
                f"theta must be (sim, param) with param={n_param} ({self.param_names}), got shape {theta.shape}"
            )
        out: dict[str, xr.DataArray] = {}
        j = 0
        for name, nodes in self._columns():
            if nodes is None:
                out[name] = xr.DataArray(theta[:, j].copy(), dims="sim")
                j += 1
            else:
                values = np.full((theta.shape[0], self.n_nodes), self.model.param(name).default)
                values[:, list(nodes)] = theta[:, j : j + len(nodes)]
                out[name] = xr.DataArray(values, dims=("sim", "node"))
                j += len(nodes)
        return out

    def in_bounds(self, theta: np.ndarray) -> np.ndarray:
        """Whether each row of ``theta`` is finite and inside the support (bounds
        included, compared in ``theta``'s precision)."""
        theta = np.asarray(theta)
        low, high = self.bounds()
        ftype = theta.dtype if theta.dtype.kind == "f" else np.float64
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(theta) & (theta >= low.astype(ftype)) & (theta <= high.astype(ftype))
        return ok.all(axis=1)


def _check_name(model: ModelSpec, name: str) -> None:
    from .stimulus import STIMULUS_AMPLITUDE

    if name == STIMULUS_AMPLITUDE:  # a simulation's stimulus amplitude (checked by the budget)
        return
    if name not in {p.name for p in model.all_params}:
        raise KeyError(model.unknown_param_message(name))


def _check_free_name(factor: ParamPrior) -> None:
    """A column of a prior without a model: a plain name, no regions."""
    if not isinstance(factor.name, str) or not factor.name or any(c in factor.name for c in "[]"):
        raise ValueError(
            f"prior without a model: parameter names must be non-empty strings without brackets, got {factor.name!r}"
        )
    if factor.nodes is not None:
        raise ValueError(f"prior for {factor.name!r}: 'nodes' needs a model (a prior over free names has no regions)")


@dataclass(frozen=True)
class Prior(_Design):
    """A prior over named model parameters, factorised across parameters.

    Parameters
    ----------
    params : mapping of name -> spec, or sequence of :class:`ParamPrior`
        Specs, in column order: ``(low, high)`` (uniform), ``{"low", "high", "nodes"}``,
        ``{"dist": "Normal", "loc": .., "scale": .., "nodes": ..}``, or a
        ``torch.distributions`` object (see :meth:`ParamPrior.from_spec`).
    model : str, ModelSpec or None
        The model whose parameters are named. None: a prior over free names (for a budget
        of an external simulator, :mod:`vbi_dask.external`): ``Prior({"a": (0, 1)})``;
        names are not checked against a model, and ``nodes`` and ``n_nodes`` are not
        given.
    n_nodes : int or None
        Number of regions (of the connectome the prior is for); None without a model.

    Raises
    ------
    KeyError
        Unknown parameter (the message lists the valid ones).
    ValueError
        ``low >= high``, non-finite bounds, node indices out of range or repeated, a
        parameter given twice, invalid distribution arguments; ``nodes`` or ``n_nodes``
        without a model, a free name with brackets.
    """

    params: tuple[ParamPrior, ...]
    model: ModelSpec | str | None = None
    n_nodes: int | None = None

    def __post_init__(self):
        model = None if self.model is None else get_model(self.model)
        object.__setattr__(self, "model", model)
        if model is None:
            if self.n_nodes is not None:
                raise ValueError(f"n_nodes={self.n_nodes!r} without a model: a prior over free names has no regions")
        elif isinstance(self.n_nodes, bool) or not isinstance(self.n_nodes, (int, np.integer)) or self.n_nodes < 1:
            raise ValueError(f"n_nodes must be a positive integer, got {self.n_nodes!r}")
        else:
            object.__setattr__(self, "n_nodes", int(self.n_nodes))
        items = self.params.items() if isinstance(self.params, Mapping) else [(None, p) for p in self.params]
        factors = []
        for name, spec in items:
            factor = ParamPrior.from_spec(name, spec) if name is not None else spec
            if not isinstance(factor, ParamPrior):
                raise TypeError(f"params must be a mapping of specs or ParamPrior objects, got {type(factor).__name__}")
            if model is None:
                _check_free_name(factor)
            else:
                _check_name(model, factor.name)
            factors.append(factor._validate(self.n_nodes))
        if not factors:
            valid = "any names (no model)" if model is None else ", ".join(p.name for p in model.all_params)
            raise ValueError(f"a prior needs at least one parameter; valid parameters: {valid}")
        names = [f.name for f in factors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameter(s) {dupes} given more than once")
        object.__setattr__(self, "params", tuple(factors))

    @property
    def param_names(self) -> list[str]:
        """Column names of theta: ``G`` for a global parameter, ``eta[i]`` for node i."""
        return [n for f in self.params for n in f.column_names]

    def _columns(self):
        return [(f.name, f.nodes) for f in self.params]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) float64 arrays (n_param,), +-inf where the support is unbounded."""
        lows, highs = zip(*(f.bounds() for f in self.params))
        return np.concatenate(lows), np.concatenate(highs)

    def sample(self, n_sims: int, *, seed: int, first_sim: int = 0) -> np.ndarray:
        """Draws for global simulation indices ``first_sim .. first_sim + n_sims - 1``.

        Returns
        -------
        theta : (n_sims, n_param) float64; row k depends only on (seed, first_sim + k).
        """
        if first_sim < 0 or n_sims < 0:
            raise ValueError(f"n_sims and first_sim must be >= 0, got {n_sims}, {first_sim}")
        sims = first_sim + np.arange(n_sims, dtype=np.uint64)
        n_param = len(self.param_names)
        u = _uniforms(seed, sims, n_param)
        words_seed = (u[:, 0] * 2.0**52).astype(np.uint64) ^ np.uint64(0x5DEECE66D)
        out = np.empty((n_sims, n_param))
        j = 0
        for factor in self.params:
            k = factor.n_columns
            out[:, j : j + k] = factor._inverse_cdf(u[:, j : j + k], words_seed + np.uint64(j))
            j += k
        return out

    def to_torch(self):
        """A torch distribution over theta (event shape (n_param,)), accepted by sbi's
        ``process_prior``: sbi's ``BoxUniform`` when every factor is uniform, else
        ``sbi.utils.MultipleIndependent`` of the factors (a single factor: itself)."""
        torch = _torch("Prior.to_torch")
        from sbi.utils import BoxUniform, MultipleIndependent

        if all(f.dist == "Uniform" for f in self.params):
            low, high = self.bounds()
            return BoxUniform(torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32))
        dists = []
        for f in self.params:
            d = f._torch_dist(f.n_columns, torch.float32)
            if f.dist == "Uniform":
                d = BoxUniform(d.low, d.high)
            elif not f.multivariate:
                d = torch.distributions.Independent(d, 1)
            dists.append(d)
        return dists[0] if len(dists) == 1 else MultipleIndependent(dists)

    def to_dict(self) -> dict:
        """JSON-able: ``{"kind": "prior", "model", "n_nodes", "params": [...]}`` (model and
        n_nodes None for a prior over free names)."""
        return {
            "kind": "prior",
            "model": None if self.model is None else self.model.name,
            "n_nodes": self.n_nodes,
            "params": [f.to_dict() for f in self.params],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Prior | Grid":
        """Rebuild from :meth:`to_dict`; a grid's dict (``kind: grid``) gives a :class:`Grid`."""
        return prior_from_dict(data)


@dataclass(frozen=True)
class Grid(_Design):
    """A grid design (parameter sweep): the Cartesian product of per-parameter values.

    Simulation ``k`` takes grid point ``k mod n_points`` (C order: the last parameter
    varies fastest), so a budget of ``r * n_points`` simulations repeats every point
    ``r`` times with different noise. A grid value applies to every region.

    Parameters
    ----------
    axes : mapping of name -> 1-D sequence of values
    model : str or ModelSpec
    n_nodes : int
    """

    axes: Mapping[str, Sequence[float]]
    model: ModelSpec | str
    n_nodes: int

    def __post_init__(self):
        model = get_model(self.model)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "n_nodes", int(self.n_nodes))
        if not isinstance(self.axes, Mapping) or not self.axes:
            raise ValueError("a grid needs a non-empty mapping of parameter name -> values")
        axes = {}
        for name, values in self.axes.items():
            _check_name(model, name)
            array = np.atleast_1d(np.asarray(values, dtype=np.float64))
            if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
                raise ValueError(
                    f"grid axis {name!r}: values must be a non-empty 1-D list of finite numbers, got {values!r}"
                )
            axes[name] = tuple(float(v) for v in array)
        object.__setattr__(self, "axes", axes)

    @property
    def param_names(self) -> list[str]:
        return list(self.axes)

    @property
    def n_points(self) -> int:
        return int(np.prod([len(v) for v in self.axes.values()]))

    def _columns(self):
        return [(name, None) for name in self.axes]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([min(v) for v in self.axes.values()]), np.array([max(v) for v in self.axes.values()]))

    def sample(self, n_sims: int, *, seed: int = 0, first_sim: int = 0) -> np.ndarray:
        """Grid points of simulations ``first_sim ..``; ``seed`` is accepted and unused."""
        index = (first_sim + np.arange(n_sims)) % self.n_points
        coords = np.unravel_index(index, [len(v) for v in self.axes.values()])
        return np.stack([np.asarray(v)[c] for v, c in zip(self.axes.values(), coords)], axis=1)

    def to_torch(self):
        """sbi's ``BoxUniform`` over the grid's bounding box (for training on a sweep)."""
        torch = _torch("Grid.to_torch")
        from sbi.utils import BoxUniform

        low, high = self.bounds()
        flat = [n for n, lo, hi in zip(self.axes, low, high) if not lo < hi]
        if flat:
            raise ValueError(f"grid axes {flat} hold a single value: no box prior spans them")
        return BoxUniform(torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32))

    def to_dict(self) -> dict:
        return {
            "kind": "grid",
            "model": self.model.name,
            "n_nodes": self.n_nodes,
            "axes": {k: list(v) for k, v in self.axes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Grid":
        return prior_from_dict(data)


def prior_from_dict(data: Mapping) -> Prior | Grid:
    """A :class:`Prior` or :class:`Grid` from its ``to_dict()``."""
    kind = data.get("kind", "prior")
    if kind == "grid":
        return Grid(dict(data["axes"]), model=data["model"], n_nodes=data["n_nodes"])
    if kind != "prior":
        raise ValueError(f"unknown prior kind {kind!r}; expected 'prior' or 'grid'")
    factors = [
        ParamPrior(p["name"], p.get("dist", "Uniform"), p.get("args", {}), p.get("nodes")) for p in data["params"]
    ]
    return Prior(tuple(factors), model=data.get("model"), n_nodes=data.get("n_nodes"))
