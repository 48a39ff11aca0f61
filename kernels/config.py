"""What a kernel is built from and what it is called with, shared by the CPU and CUDA shells.

:class:`KernelConfig` is everything that changes the generated code (the cache key of a
compiled kernel); :class:`KernelInputs` is one call's arrays and scalars, named once: the
generated shells' signatures are written from its field names (:data:`INPUT_NAMES`) and
the shells' wrappers pass :meth:`KernelInputs.args` in that order, so the call cannot
drift out of step with the shells.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Callable

import numpy as np

__all__ = ["KernelConfig", "KernelInputs", "INPUT_NAMES", "INTEGRATORS", "LANES", "lanes_for", "no_tables"]

INTEGRATORS = ("euler", "heun", "rk4")
LANES = 16  # simulations per SIMD block of the CPU shell (one 512-bit register of float32, two of float64)


def lanes_for(dtype) -> int:
    """Simulations per SIMD block."""
    return LANES


@dataclass(frozen=True)
class KernelConfig:
    """Everything that changes the generated code (the cache key of a compiled kernel).

    ``equations(ftype, jit) -> (drift, efferent, observe)`` is the model's factory
    and the coupling's ``pre``/``post``. The equations' arguments are bound by name:
    ``state_names``, ``coupling_inputs`` and ``param_names`` give the rows of the state,
    coupling-input and parameter arrays; the argument ``tables`` is bound to the input of
    that name. ``noisy`` lists the state indices with noise.
    """

    equations: Callable
    pre: Callable
    post: Callable
    state_names: tuple[str, ...]
    coupling_inputs: tuple[str, ...]  # the drift's argument for each coupled signal
    param_names: tuple[str, ...]  # model parameters, G excluded (G is the row after them)
    n_pre: int
    n_obs: int
    bold_obs: int  # index of the observable driving BOLD
    noisy: tuple[int, ...]
    bounds: tuple[tuple[float | None, float | None], ...]
    integrator: str
    delays: bool
    monitor: int
    bold: bool
    dtype: str
    stimulus: int = -1  # index of the state receiving a stimulus (parameter row n_params + 1), -1: none
    squared: tuple[int, ...] = ()  # coupled signals summed with squared weights w_ij^2
    tables: Callable | None = None  # the model's tables(ftype) (importable by name), None: none

    @property
    def tables_fn(self) -> Callable:
        """``tables(ftype)``: the model's, or :func:`no_tables`."""
        return self.tables or no_tables

    @property
    def lanes(self) -> int:
        return lanes_for(np.dtype(self.dtype))

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def n_coupled(self) -> int:
        return len(self.coupling_inputs)

    def arguments(self, role: str) -> tuple[str, ...]:
        """The argument names of ``role`` (``"drift"``, ``"efferent"`` or ``"observe"``) in
        the function's own order: the generated call passes them positionally in this order."""
        return _argument_names(self.equations)[role]


def no_tables(ftype) -> np.ndarray:
    """The tables of a model without: a one-element placeholder (kernels take an array)."""
    return np.zeros(1, dtype=ftype)


@lru_cache(maxsize=None)
def _argument_names(equations: Callable) -> dict[str, tuple[str, ...]]:
    eq = equations(np.float64, lambda fn: fn)
    return {role: tuple(inspect.signature(fn).parameters) for role, fn in zip(("drift", "efferent", "observe"), eq)}


@dataclass
class KernelInputs:
    """One kernel call: the state, parameters, edges, noise, monitors' outputs (filled in
    place), the stimulus and the model's tables, by name. ``x0`` (state, node, sim) and ``P`` (param, node,
    sim) hold every simulation of the batch; the outputs ``out_mon`` (time, obs, node,
    sim) and ``out_bold`` (time, node, sim) are written.
    """

    x0: np.ndarray
    P: np.ndarray
    indptr: np.ndarray
    split: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    back: np.ndarray
    rowsum: np.ndarray
    sigma: np.ndarray
    dt: Any
    nsteps: int
    seed_lo: np.uint64
    seed_hi: np.uint64
    sim0: np.uint64
    n_cut: int
    decim: int
    out_mon: np.ndarray
    bold_decim: int
    tr_decim: int
    q_cut: int
    bold_dt: Any
    bc: np.ndarray
    out_bold: np.ndarray
    stim: np.ndarray
    tables: np.ndarray  # the model's data tables (global memory on CUDA), a placeholder if none
    H: int  # the delay history ring's length (see .edges.EdgePlan)
    T: int  # steps per block of the delay pass

    def args(self) -> tuple:
        """The values in :data:`INPUT_NAMES` order (the shells' positional order)."""
        return tuple(getattr(self, name) for name in INPUT_NAMES)


INPUT_NAMES = tuple(f.name for f in fields(KernelInputs))
