"""Batched CPU loop shell: integrate a block of simulations of any model, Numba-compiled.

The shell is model-agnostic. Its source is generated from the model's arity (number of
states, parameters, coupled and observed signals) and compiled once per configuration
around the model's scalar functions (``drift``, ``efferent``, ``observe``), the
coupling's ``pre``/``post`` and the counter-based generator. No equation is written here.

Layout: states ``(svar, node, lane)`` with the lane (simulation) axis contiguous, in
blocks of ``LANES`` simulations; every inner loop runs over lanes with a compile-time trip
count, so LLVM turns it into SIMD code and every simulation goes through exactly the same
instructions whatever its position: results are bit-identical across batch sizes.
Blocks are independent: threads run disjoint ranges of blocks (the shell releases the
GIL). Nothing is allocated inside the time loop.
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
from ._codegen import MONITOR_NONE, MONITOR_RAW, MONITOR_TAVG, Gen as _Gen, csv as _csv

__all__ = ["KernelConfig", "lanes_for", "build_kernel", "MONITOR_NONE", "MONITOR_RAW", "MONITOR_TAVG"]

INTEGRATORS = ("euler", "heun", "rk4")


def lanes_for(dtype) -> int:
    """Simulations per SIMD block (one 512-bit register of float32, two of float64)."""
    return 16


@dataclass(frozen=True)
class KernelConfig:
    """Everything that changes the generated code (the cache key of a compiled kernel).

    ``equations(ftype, jit) -> (drift, efferent, observe)`` is the model's factory
    and the coupling's ``pre``/``post``. ``noisy`` lists the state indices with noise.
    """

    equations: Callable
    pre: Callable
    post: Callable
    n_states: int
    n_params: int  # model parameters, G excluded (G is passed last)
    n_coupled: int
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

    @property
    def lanes(self) -> int:
        return lanes_for(np.dtype(self.dtype))

    @property
    def arity(self) -> tuple[int, int]:
        """Parameters taken by (efferent, observe): after the states, as many parameters as
        their signatures name (``efferent(r, v)`` takes none)."""
        eq = self.equations(np.float64, lambda fn: fn)
        return tuple(len(inspect.signature(fn).parameters) - self.n_states for fn in (eq.efferent, eq.observe))


def _shell_source(cfg: KernelConfig) -> str:
    g = _Gen()
    g("def integrate(x0, P, indptr, indices, weights, delays, rowsum, sigma, dt, nsteps,")
    g("              seed_lo, seed_hi, sim0, n_cut, decim, out_mon,")
    g("              bold_decim, tr_decim, q_cut, bold_dt, bc, out_bold, H, block0, block1):")
    g.indent()
    g("N = x0.shape[1]")
    g("half_dt = dt * HALF")
    g("sixth_dt = dt * SIXTH")
    g("sqrt_dt = np.sqrt(dt)")
    g("for b in range(block0, block1):")
    g.indent()
    g("lo = b * L")
    g("Pb = np.empty((P.shape[0], N, L), dtype=DT)  # contiguous copy: unit-stride lanes")
    g("Pb[:] = P[:, :, lo:lo + L]")
    g("x = np.empty((S, N, L), dtype=DT)")
    g("x[:] = x0[:, :, lo:lo + L]")
    g("xt = np.empty((S, N, L), dtype=DT)")
    g("F = np.empty((S, N, L), dtype=DT)")
    g("Z = np.zeros((S, N, L), dtype=DT)")
    g("cpl = np.empty((K, N, L), dtype=DT)")
    g("EF = np.empty((K, N, L), dtype=DT)")
    g("E = np.empty((H if DELAYS else 1, NCH, N, L), dtype=DT)")
    g("mon = np.zeros((O, N, L), dtype=DT)")
    g("bst = np.empty((4, N, L), dtype=DT)")
    g("bacc = np.zeros((N, L), dtype=DT)")
    g("for i in range(N):")
    g("    for l in range(L):")
    g("        bst[0, i, l], bst[1, i, l], bst[2, i, l], bst[3, i, l] = ZERO, ONE, ONE, ONE")
    if cfg.delays:  # constant initial history: the initial state's efferent signals
        g("for i in range(N):")
        g.indent()
        g("for l in range(L):")
        g.indent()
        _codegen.emit_pre(g, cfg, "x", "E[0, {ch}, i, l]")
        g.dedent(2)
        g("for h in range(1, H):")
        g("    E[h] = E[0]")

    g("for n in range(nsteps):")
    g.indent()
    _codegen.emit_step(g, cfg, _codegen.CPU_LAYOUT, _emit_coupling)
    _codegen.emit_monitors(g, cfg, _codegen.CPU_LAYOUT)
    g.dedent()  # time loop
    g.dedent()  # blocks
    g("return 0")
    return g.source()


def _emit_coupling(g: _Gen, cfg: KernelConfig, X: str, step: str):
    """Coupling input cpl[k, i, l] for the state in array X at step index ``step``."""
    K, C = cfg.n_coupled, cfg.n_pre
    NCH = K * C
    if cfg.delays:
        g(f"head = ({step}) % H")
        slot = "head"
    else:
        slot = "0"
    g("for i in range(N):")
    g.indent()
    g("for l in range(L):")
    g.indent()
    _codegen.emit_pre(g, cfg, X, f"E[{slot}, {{ch}}, i, l]", keep_efferent=True)
    g.dedent(2)
    # Accumulate in named scalars, one per (channel, lane): LLVM's SLP vectorizer packs
    # them into registers (a loop over a lane array would round-trip through memory and
    # serialise on store-to-load forwarding).
    lanes = range(cfg.lanes)
    acc = lambda ch, l: f"a{ch}_{l}"  # noqa: E731
    g("for i in range(N):")
    g.indent()
    for ch in range(NCH):
        g(" = ".join(acc(ch, l) for l in lanes) + " = ZERO")
    _codegen.emit_edge_head(g, cfg)
    for ch in range(NCH):
        for l in lanes:
            g(f"{acc(ch, l)} += w * E[src, {ch}, j, {l}]")
    g.dedent()
    for l in lanes:
        for k in range(K):
            sums = [acc(k * C + c, l) for c in range(C)]
            g(f"cpl[{k}, i, {l}] = post(Pb[{cfg.n_params}, i, {l}], rowsum[i], EF[{k}, i, {l}], {_csv(sums)})")
    g.dedent()


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


@numba.njit(error_model="numpy", nogil=True, cache={cache})
"""


@lru_cache(maxsize=None)
def build_kernel(cfg: KernelConfig) -> "Kernel":
    """The compiled loop shell for ``cfg`` (once per process; on disk across processes).

    The shell's source is written as a module under the kernel cache directory
    (``$VBI_DASK_CACHE_DIR`` or ``~/.cache/vbi_dask/kernels``) named by a hash of the
    source and of the modules it inlines, so Numba's on-disk cache serves later
    processes (Dask workers, test runs). Equations that cannot be imported by name
    (defined in ``__main__`` or a closure) are compiled in memory only.
    """
    if cfg.integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {cfg.integrator!r}; valid: {list(INTEGRATORS)}")
    source, namespace = _codegen.build_shell(
        cfg, _HEADER, _shell_source(cfg), "shell", __name__, f"<vbi_dask shell {cfg.integrator}>", L=cfg.lanes
    )
    dispatcher = namespace["integrate"]
    return Kernel(dispatcher, source, cfg.lanes)


_COMPILE_LOCK = threading.Lock()


class Kernel:
    """A compiled shell. Calls split the blocks of simulations over threads (the shell
    releases the GIL); the first call compiles with LLVM's SLP vectorizer enabled
    (Numba leaves it off by default; the lane-unrolled accumulators depend on it)."""

    def __init__(self, dispatcher, source: str, lanes: int):
        self.dispatcher = dispatcher
        self.source = source
        self.lanes = lanes

    def __call__(self, *args, threads: int = 1):
        x0 = args[0]
        n_blocks = x0.shape[2] // self.lanes
        if not self.dispatcher.signatures:
            with _COMPILE_LOCK:
                previous = numba.core.config.SLP_VECTORIZE
                numba.core.config.SLP_VECTORIZE = 1
                try:
                    self.dispatcher.compile(tuple(numba.typeof(a) for a in args + (0, 0)))
                finally:
                    numba.core.config.SLP_VECTORIZE = previous
        threads = max(1, min(int(threads), n_blocks))
        if threads == 1:
            self.dispatcher(*args, 0, n_blocks)
            return
        bounds = np.linspace(0, n_blocks, threads + 1).round().astype(int)
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(self.dispatcher, *args, int(b0), int(b1)) for b0, b1 in zip(bounds[:-1], bounds[1:])]
            for f in futures:
                f.result()
