"""ModelSpec: a neural-mass model described once, as data plus scalar equations."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["State", "Param", "Equations", "ModelSpec", "no_jit", "argument_names", "TABLES"]


@lru_cache(maxsize=None)
def _compiled_drift(equations: Callable, ftype: type):
    import numba

    jit = numba.njit(error_model="numpy")
    return jit(equations(ftype, jit).drift)


def no_jit(fn):
    """The identity decorator: equations' helpers as plain Python (references, docs)."""
    return fn


@dataclass(frozen=True)
class State:
    """A state variable: random initial range, hard bounds, default noise amplitude."""

    name: str
    initial: tuple[float, float]
    unit: str = ""
    doc: str = ""
    bounds: tuple[float | None, float | None] = (None, None)
    noise: float = 0.0  # sigma of the additive noise sigma dW, (state unit) / sqrt(ms)


@dataclass(frozen=True)
class Param:
    """A model parameter: default with its literature source, typical prior range, unit."""

    name: str
    default: float
    range: tuple[float, float]
    unit: str = ""
    doc: str = ""

    def __post_init__(self):
        lo, hi = self.range
        if not lo <= self.default <= hi:
            raise ValueError(f"parameter {self.name}: default {self.default} outside range {self.range}")


class Equations(NamedTuple):
    """Scalar functions of one node, built for a float type, whose arguments are bound
    by name (in each function's own order):

    ``drift(<every state>, <every coupling input>, <any parameters>) -> d(state)/dt``
    (a tuple in the order of the spec's states)
    ``efferent(<any states and parameters>) -> tuple`` (signals sent through the connectome)
    ``observe(<any states and parameters>) -> tuple`` (signals seen by monitors)

    The coupling input of the coupled signal ``k`` is named ``c_<k>`` (``c_r`` for
    ``coupled=("r",)``). A model with data tables (``ModelSpec.tables``) receives them as
    the argument ``tables`` of any of the three.
    """

    drift: Callable
    efferent: Callable
    observe: Callable


def argument_names(fn: Callable) -> tuple[str, ...]:
    """An equation's argument names in its own order: callers bind values by these names."""
    return tuple(inspect.signature(fn).parameters)


MS_PER_TIME_UNIT = {"ms": 1.0, "s": 1000.0}  # the time units a model's equations may use
TABLES = "tables"  # the equations' argument bound to the model's data tables


@dataclass(frozen=True)
class ModelSpec:
    """A whole-brain node model.

    ``equations(ftype, jit)`` returns :class:`Equations` whose constants are of float type
    ``ftype`` (``np.float32`` or ``np.float64``) and whose helper functions are compiled
    with ``jit`` (``numba.njit(inline="always")``, ``cuda.jit(device=True)``, or the
    identity for plain Python): the same source serves every precision, the CPU shell,
    the CUDA shell and the NumPy reference.

    ``tables(ftype) -> ndarray``: the model's data (e.g. ALN's transfer functions), passed
    to the kernels as an input (CUDA global memory: constant memory holds 64 KB) and to
    the equations as their argument ``tables``; None for a model without. Only the
    tables' grid geometry may be frozen into the equations.

    ``weights_squared``: coupled signals whose network sum uses the squared weights,
    ``G sum_j w_ij^2 e_j(t - d_ij)`` (ALN's input variance); linear coupling only (checked
    by :class:`~vbi_dask.simulation.Simulation`, which may choose another coupling).
    """

    name: str
    states: tuple[State, ...]
    params: tuple[Param, ...]
    equations: Callable[[type, Callable], Equations]
    coupled: tuple[str, ...]
    observed: tuple[str, ...]
    coupling: str
    G: Param
    dt_ms: float = 0.1  # recommended integration step (ms) at the defaults
    time_unit: str = "ms"
    reference: str = ""
    doc: str = field(default="", repr=False)
    tables: Callable[[type], np.ndarray] | None = None
    weights_squared: tuple[str, ...] = ()

    def __post_init__(self):
        names = self.state_names + self.coupling_inputs + self.param_names + ("G", TABLES)
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model {self.name}: duplicated names {sorted(dupes)}")
        if self.G.name != "G":
            raise ValueError(f"model {self.name}: the coupling strength must be named 'G'")
        if self.time_unit not in MS_PER_TIME_UNIT:
            raise ValueError(
                f"model {self.name}: time_unit {self.time_unit!r} is not one of {sorted(MS_PER_TIME_UNIT)}"
            )
        unknown = [name for name in self.weights_squared if name not in self.coupled]
        if unknown:
            raise ValueError(f"model {self.name}: weights_squared names {unknown}, not coupled signals {self.coupled}")
        self._check_signatures()

    def _check_signatures(self) -> None:
        """Each equation names only states, coupling inputs (drift) and parameters;
        drift names every state and every coupling input; every parameter is used."""
        eq = self.equations(np.float64, no_jit)
        states, inputs = self.state_names, self.coupling_inputs
        params = self.param_names + ((TABLES,) if self.tables is not None else ())
        used: set[str] = set()
        for role, fn in zip(Equations._fields, eq):
            kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
            if kinds - {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
                raise ValueError(
                    f"model {self.name}: {role} must name its arguments "
                    f"(no *args, **kwargs, keyword-only or positional-only arguments)"
                )
            args = argument_names(fn)
            valid = states + params + (inputs if role == "drift" else ())
            unknown = [a for a in args if a not in valid]
            if unknown:
                raise ValueError(
                    f"model {self.name}: {role} takes unknown argument(s) {unknown}; it may take the states "
                    f"({', '.join(states)})"
                    + (f", the coupling inputs ({', '.join(inputs)})" if role == "drift" else "")
                    + f" and the parameters ({', '.join(params)})"
                    + (f" ('{TABLES}': the model's tables)" if self.tables is not None else "")
                )
            if role == "drift":
                missing = [a for a in states + inputs if a not in args]
                if missing:
                    raise ValueError(
                        f"model {self.name}: drift must take every state and coupling input; "
                        f"missing {missing} (it takes {', '.join(args)})"
                    )
            used.update(args)
        unused = [p for p in self.param_names if p not in used]
        if unused:
            raise ValueError(f"model {self.name}: parameter(s) {unused} are taken by none of drift, efferent, observe")

    def table_values(self, ftype=np.float64) -> np.ndarray:
        """The tables as ``ftype`` (C-contiguous); a one-element placeholder for a model
        without (the kernels take an array either way)."""
        from ..kernels.config import no_tables

        return np.ascontiguousarray((self.tables or no_tables)(ftype), dtype=ftype)

    @property
    def ms_per_time_unit(self) -> float:
        """Milliseconds in one unit of the model's time (its equations' d/dt)."""
        return MS_PER_TIME_UNIT[self.time_unit]

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def coupling_inputs(self) -> tuple[str, ...]:
        """The drift's coupling-input arguments: ``c_<k>`` for each coupled signal ``k``."""
        return tuple(f"c_{k}" for k in self.coupled)

    @property
    def all_params(self) -> tuple[Param, ...]:
        """Model parameters followed by the global coupling strength G."""
        return self.params + (self.G,)

    @property
    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.all_params}

    def param(self, name: str) -> Param:
        for p in self.all_params:
            if p.name == name:
                return p
        raise KeyError(self.unknown_param_message(name))

    def unknown_param_message(self, name: str) -> str:
        valid = ", ".join(p.name for p in self.all_params)
        return f"unknown parameter {name!r} for model {self.name}; valid parameters: {valid}"

    def check_param_names(self, names) -> None:
        valid = set(self.param_names) | {"G"}
        for name in names:
            if name not in valid:
                raise KeyError(self.unknown_param_message(name))

    def noise_defaults(self) -> dict[str, float]:
        return {s.name: s.noise for s in self.states}

    def table(self) -> str:
        """A Markdown table of parameters (derived, never typed twice)."""
        rows = ["| parameter | default | range | unit | meaning |", "|---|---|---|---|---|"]
        for p in self.all_params:
            rows.append(f"| {p.name} | {p.default:g} | [{p.range[0]:g}, {p.range[1]:g}] | {p.unit} | {p.doc} |")
        return "\n".join(rows)

    def drift_at(self, values: dict[str, float] | None = None, coupling=None, ftype=np.float64):
        """The drift of one node, compiled as the kernels compile it (IEEE semantics:
        an overflowing exp is inf, not a Python OverflowError)."""
        values = {**{s.name: float(np.mean(s.initial)) for s in self.states}, **self.defaults, **(values or {})}
        coupling = (0.0,) * len(self.coupled) if coupling is None else tuple(coupling)
        values.update(zip(self.coupling_inputs, coupling))
        values[TABLES] = self.table_values(ftype)
        drift = _compiled_drift(self.equations, ftype)
        names = argument_names(self.equations(ftype, no_jit).drift)
        return drift(*(values[n] if n == TABLES else ftype(values[n]) for n in names))
