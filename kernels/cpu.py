"""Batched CPU loop shell: integrate a block of simulations of any model, Numba-compiled.

The shell is model-agnostic. Its source is generated from the model's arity (number of
states, parameters, coupled and observed signals) and compiled once per configuration
around the model's scalar functions (``drift``, ``efferent``, ``observe``), the
coupling's ``pre``/``post`` and the counter-based generator. No equation is written here.

Layout: states ``(svar, node, lane)`` with the lane (simulation) axis contiguous, in
blocks of ``LANES`` simulations; every inner loop runs over lanes with a compile-time trip
count, so LLVM turns it into SIMD code. The tail of a batch runs in a one-lane shell
generated from the same code. Every simulation goes through the same arithmetic whatever
its block, lane or shell (lanes never mix, IEEE operations round per lane and nothing is
contracted into fused multiply-adds): results are bit-identical across batch sizes.
Blocks are independent: threads run disjoint ranges of blocks (the shell releases the
GIL). Nothing is allocated inside the time loop. With delays, time advances in blocks
of steps (see :mod:`.edges`).
"""

from __future__ import annotations

import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numba
import numpy as np

from . import _codegen
from ._codegen import MONITOR_NONE, MONITOR_RAW, MONITOR_TAVG, Gen as _Gen

__all__ = ["KernelConfig", "lanes_for", "batch_columns", "build_kernel", "MONITOR_NONE", "MONITOR_RAW", "MONITOR_TAVG"]

INTEGRATORS = ("euler", "heun", "rk4")


LANES = 16  # simulations per SIMD block (one 512-bit register of float32, two of float64)


def lanes_for(dtype) -> int:
    """Simulations per SIMD block."""
    return LANES


@dataclass(frozen=True)
class KernelConfig:
    """Everything that changes the generated code (the cache key of a compiled kernel).

    ``equations(ftype, jit) -> (drift, efferent, observe)`` is the model's factory
    and the coupling's ``pre``/``post``. The equations' arguments are bound by name:
    ``state_names``, ``coupling_inputs`` and ``param_names`` give the rows of the state,
    coupling-input and parameter arrays. ``noisy`` lists the state indices with noise.
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


@lru_cache(maxsize=None)
def _argument_names(equations: Callable) -> dict[str, tuple[str, ...]]:
    eq = equations(np.float64, lambda fn: fn)
    return {role: tuple(inspect.signature(fn).parameters) for role, fn in zip(("drift", "efferent", "observe"), eq)}


def _shell_source(cfg: KernelConfig, lanes: int) -> str:
    layout = _codegen.cpu_layout(lanes)
    g = _Gen()
    _codegen.emit_helpers(g, cfg, layout)
    g("@numba.njit(error_model='numpy', nogil=True, cache=CACHE)")
    g("def integrate(x0, P, indptr, split, indices, weights, back, rowsum, sigma, dt, nsteps,")
    g("              seed_lo, seed_hi, sim0, n_cut, decim, out_mon,")
    g("              bold_decim, tr_decim, q_cut, bold_dt, bc, out_bold, stim, H, T, col0, block0, block1):")
    g.indent()
    g("N = x0.shape[1]")
    g("half_dt = dt * HALF")
    g("sixth_dt = dt * SIXTH")
    g("sqrt_dt = np.sqrt(dt)")
    g("TBLK = T + 1  # coupling times of a block: rows of the block buffer D")
    g("HP = H + TBLK if DELAYS else 1  # history slots: the ring and its mirror")
    g("UH, UHP, UTBLK, UW = np.uint64(H), np.uint64(HP), np.uint64(TBLK), np.uint64(L)")
    g("CHS = np.uint64(N) * UHP * UW  # history stride between channels")
    g("for b in range(block0, block1):")
    g.indent()
    g("lo = col0 + b * L")
    g("Pb = np.empty((P.shape[0], N, L), dtype=DT)  # contiguous copy: unit-stride lanes")
    g("Pb[:] = P[:, :, lo:lo + L]")
    g("x = np.empty((S, N, L), dtype=DT)")
    g("x[:] = x0[:, :, lo:lo + L]")
    g("xt = np.empty((S, N, L), dtype=DT)")
    g("F = np.empty((S, N, L), dtype=DT)")
    g("Z = np.zeros((S, N, L), dtype=DT)")
    g("cpl = np.empty((K, N, L), dtype=DT)")
    g("EF = np.empty((K, N, L), dtype=DT)")
    g("E = np.empty((NCH, N, HP, L), dtype=DT)  # history: (channel, node, slot, lane)")
    g("Ef = E.reshape(NCH * N * HP * L)")
    g("D = np.empty((TBLK if DELAYS else 1, NCH, N, L), dtype=DT)  # long-edge sums of a block")
    g("mon = np.zeros((O, N, L), dtype=DT)")
    g("bst = np.empty((4, N, L), dtype=DT)")
    g("bacc = np.zeros((N, L), dtype=DT)")
    g("for i in range(N):")
    g("    for l in range(L):")
    g("        bst[0, i, l], bst[1, i, l], bst[2, i, l], bst[3, i, l] = ZERO, ONE, ONE, ONE")
    if cfg.delays:  # constant initial history: the initial state's efferent signals
        with _codegen.loops(g, layout):
            _codegen.emit_pre(g, cfg, "x", "E[{ch}, i, 0, l]")
        g("for h in range(1, HP):")
        g("    E[:, :, h, :] = E[:, :, 0, :]")
    _codegen.emit_time_loop(g, cfg, layout, "0", "nsteps")
    g.dedent()  # blocks
    g("return 0")
    return g.source()


_HEADER = """\
# Generated by vbi_dask.kernels.cpu: the loop shell of one kernel configuration.
import math

import numba
import numpy as np

from vbi_dask.kernels import bold as _bold
from vbi_dask.kernels import rng as _rng
from {eq_module} import {eq_name} as _equations
from {pre_module} import {pre_name} as _pre
from {post_module} import {post_name} as _post

_inline = numba.njit(inline="always", error_model="numpy")
DT = np.{dtype}
ZERO, ONE, TWO, HALF, SIXTH = DT(0.0), DT(1.0), DT(2.0), DT(0.5), DT(1.0 / 6.0)
L, S, K, O, NCH, DELAYS = {L}, {S}, {K}, {O}, {NCH}, {DELAYS}
drift, efferent, observe = (_inline(f) for f in _equations(DT, _inline))
pre, post = _inline(_pre), _inline(_post)
normal_pair, normals4 = _rng.normal_pair, _rng.normals4
balloon, bold_signal = _inline(_bold.balloon_drift), _inline(_bold.bold_signal)
CACHE = {CACHE}


"""


@lru_cache(maxsize=None)
def build_kernel(cfg: KernelConfig) -> "Kernel":
    """The loop shells for ``cfg``: blocks of ``cfg.lanes`` simulations, and single
    simulations for the tail of a batch (see :func:`batch_columns`).

    Each shell's source is written as a module under the kernel cache directory
    (``$VBI_DASK_CACHE_DIR`` or ``~/.cache/vbi_dask/kernels``) named by a hash of the
    source and of the modules it inlines, so Numba's on-disk cache serves later
    processes (Dask workers, test runs). Equations that cannot be imported by name
    (defined in ``__main__`` or a closure) are compiled in memory only.
    """
    if cfg.integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {cfg.integrator!r}; valid: {list(INTEGRATORS)}")
    return Kernel(cfg)


TAIL_LANES = 1  # the tail shell runs one simulation per block
MAX_TAIL = 3  # at most this many tail simulations run one by one; more fill a padded block


def batch_columns(n_sims: int, lanes: int = LANES) -> int:
    """Columns of the state arrays for ``n_sims`` simulations: whole blocks of ``lanes``,
    then up to :data:`MAX_TAIL` single columns, else one more (padded) block.

    Every simulation goes through the same operations in either shell (the lanes of a
    block are independent and IEEE arithmetic is exact per lane), so results do not
    depend on where a simulation lands.
    """
    whole, tail = divmod(int(n_sims), lanes)
    return whole * lanes + (tail if tail <= MAX_TAIL else lanes if tail else 0)


_COMPILE_LOCK = threading.Lock()


class Kernel:
    """The compiled shells of one configuration. A call runs the blocks of ``cfg.lanes``
    columns (split over threads: the shells release the GIL) and the remaining columns
    one by one. Shells compile at first use with LLVM's SLP vectorizer enabled (Numba
    leaves it off by default; the lane-unrolled accumulators depend on it)."""

    def __init__(self, cfg: KernelConfig):
        self.cfg = cfg
        self._shells: dict[int, object] = {}

    def source(self, lanes: int | None = None) -> str:
        return _shell_source(self.cfg, lanes or self.cfg.lanes)

    def _shell(self, lanes: int, args: tuple):
        dispatcher = self._shells.get(lanes)
        if dispatcher is None:
            cfg = self.cfg
            _, namespace = _codegen.build_shell(
                cfg, _HEADER, _shell_source(cfg, lanes), "shell", __name__,
                f"<vbi_dask shell {cfg.integrator} L={lanes}>", L=lanes,
            )
            dispatcher = self._shells.setdefault(lanes, namespace["integrate"])
        if not dispatcher.signatures:
            with _COMPILE_LOCK:
                previous = numba.core.config.SLP_VECTORIZE
                numba.core.config.SLP_VECTORIZE = 1
                try:
                    dispatcher.compile(tuple(numba.typeof(a) for a in args + (0, 0, 0)))
                finally:
                    numba.core.config.SLP_VECTORIZE = previous
        return dispatcher

    def __call__(self, *args, threads: int = 1):
        """``args``: the shell's arguments up to ``T``; the state columns ``x0.shape[2]``
        are run as blocks of ``cfg.lanes`` and a tail of single columns."""
        lanes = self.cfg.lanes
        width = args[0].shape[2]
        n_blocks, tail = divmod(width, lanes)
        tasks = []  # (shell, first column, first block, end block)
        if n_blocks:
            block = self._shell(lanes, args)
            parts = max(1, min(int(threads), n_blocks))
            bounds = np.linspace(0, n_blocks, parts + 1).round().astype(int)
            tasks += [(block, 0, int(b0), int(b1)) for b0, b1 in zip(bounds[:-1], bounds[1:])]
        if tail:
            tasks.append((self._shell(TAIL_LANES, args), n_blocks * lanes, 0, tail // TAIL_LANES))
        if threads <= 1 or len(tasks) == 1:
            for shell, col0, b0, b1 in tasks:
                shell(*args, col0, b0, b1)
            return
        with ThreadPoolExecutor(min(int(threads), len(tasks))) as pool:
            for f in [pool.submit(shell, *args, col0, b0, b1) for shell, col0, b0, b1 in tasks]:
                f.result()
