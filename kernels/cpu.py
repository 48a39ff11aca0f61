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

import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numba
import numpy as np

from . import bold as _bold
from . import rng as _rng

__all__ = ["KernelConfig", "lanes_for", "build_kernel", "MONITOR_NONE", "MONITOR_RAW", "MONITOR_TAVG"]

MONITOR_NONE, MONITOR_RAW, MONITOR_TAVG = 0, 1, 2
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


def _csv(items) -> str:
    return ", ".join(items)


def _tuple_lhs(names) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


class _Gen:
    """Small source builder with indentation."""

    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = ""):
        self.lines.append("    " * self.depth + line)

    def indent(self, k: int = 1):
        self.depth += k

    def dedent(self, k: int = 1):
        self.depth -= k

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def _shell_source(cfg: KernelConfig) -> str:
    S, P, K, C, O = cfg.n_states, cfg.n_params, cfg.n_coupled, cfg.n_pre, cfg.n_obs
    NCH = K * C
    states = lambda X: [f"{X}[{s}, i, l]" for s in range(S)]  # noqa: E731
    params = [f"Pb[{p}, i, l]" for p in range(cfg.arity[1])]
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
        _emit_pre(g, cfg, "x", "E[0, {ch}, i, l]")
        g.dedent(2)
        g("for h in range(1, H):")
        g("    E[h] = E[0]")

    g("for n in range(nsteps):")
    g.indent()
    if cfg.integrator == "euler":
        _emit_coupling(g, cfg, "x", "n")
        _emit_drift_update(g, cfg, "x", first=True, final="euler")
    elif cfg.integrator == "heun":
        _emit_coupling(g, cfg, "x", "n")
        _emit_drift_update(g, cfg, "x", first=True, final="predict")
        _emit_coupling(g, cfg, "xt", "n + 1")
        _emit_drift_update(g, cfg, "xt", first=False, final="correct")
    else:  # rk4, deterministic and delay-free
        _emit_coupling(g, cfg, "x", "n")
        _emit_drift_update(g, cfg, "x", first=True, final="rk1")
        for stage in ("rk2", "rk3"):
            _emit_coupling(g, cfg, "xt", "n")
            _emit_drift_update(g, cfg, "xt", first=False, final=stage)
        _emit_coupling(g, cfg, "xt", "n")
        _emit_drift_update(g, cfg, "xt", first=False, final="rk4")
    _emit_monitors(g, cfg, states("x"), params)
    g.dedent()  # time loop
    g.dedent()  # blocks
    g("return 0")
    return g.source()


def _emit_pre(g: _Gen, cfg: KernelConfig, X: str, target: str, keep_efferent: bool = False):
    """Efferent signals of node i, lane l, and their pre channels into ``target``."""
    S, P, K, C = cfg.n_states, cfg.n_params, cfg.n_coupled, cfg.n_pre
    e_names = [f"e{k}" for k in range(K)]
    args = [f"{X}[{s}, i, l]" for s in range(S)] + [f"Pb[{p}, i, l]" for p in range(cfg.arity[0])]
    g(f"{_tuple_lhs(e_names)} = efferent({_csv(args)})")
    for k in range(K):
        q_names = [f"q{k}_{c}" for c in range(C)]
        g(f"{_tuple_lhs(q_names)} = pre(e{k})")
        for c in range(C):
            g(f"{target.format(ch=k * C + c)} = q{k}_{c}")
        if keep_efferent:
            g(f"EF[{k}, i, l] = e{k}")


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
    _emit_pre(g, cfg, X, f"E[{slot}, {{ch}}, i, l]", keep_efferent=True)
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
    g("for idx in range(indptr[i], indptr[i + 1]):")
    g.indent()
    g("j = indices[idx]")
    g("w = weights[idx]")
    if cfg.delays:
        g("src = head - delays[idx]")
        g("if src < 0:")
        g("    src += H")
    else:
        g("src = 0")
    for ch in range(NCH):
        for l in lanes:
            g(f"{acc(ch, l)} += w * E[src, {ch}, j, {l}]")
    g.dedent()
    for l in lanes:
        for k in range(K):
            sums = [acc(k * C + c, l) for c in range(C)]
            g(f"cpl[{k}, i, {l}] = post(Pb[{cfg.n_params}, i, {l}], rowsum[i], EF[{k}, i, {l}], {_csv(sums)})")
    g.dedent()


def _clamp(cfg: KernelConfig, s: int, expr: str) -> str:
    lo, hi = cfg.bounds[s]
    if lo is not None:
        expr = f"max({expr}, DT({lo!r}))"
    if hi is not None:
        expr = f"min({expr}, DT({hi!r}))"
    return expr


def _emit_noise(g: _Gen, cfg: KernelConfig):
    """Z[s, i, l] = sigma_s sqrt(dt) xi for noisy states; xi keyed by (seed, n, i, sim, s)."""
    groups: dict[int, list[int]] = {}
    for s in cfg.noisy:
        groups.setdefault(s // 4, []).append(s)
    for word, members in groups.items():
        slots = [s % 4 for s in members]
        counter = f"np.uint64(n), np.uint64(i), sim0 + np.uint64(lo + l), np.uint64({(_rng.STREAM_NOISE << 16) | word})"
        if max(slots) < 2:
            g(f"xi0, xi1 = normal_pair(seed_lo, seed_hi, {counter})")
        else:
            g(f"xi0, xi1, xi2, xi3 = normals4(seed_lo, seed_hi, {counter})")
        for s in members:
            g(f"Z[{s}, i, l] = sigma[{s}] * sqrt_dt * DT(xi{s % 4})")


def _emit_drift_update(g: _Gen, cfg: KernelConfig, X: str, first: bool, final: str):
    S, P, K = cfg.n_states, cfg.n_params, cfg.n_coupled
    d = [f"d{s}" for s in range(S)]
    args = [f"{X}[{s}, i, l]" for s in range(S)] + [f"cpl[{k}, i, l]" for k in range(K)]
    args += [f"Pb[{p}, i, l]" for p in range(P)]
    g("for i in range(N):")
    g.indent()
    g("for l in range(L):")
    g.indent()
    if first and cfg.noisy and final in ("euler", "predict"):
        _emit_noise(g, cfg)
    g(f"{_tuple_lhs(d)} = drift({_csv(args)})")
    for s in range(S):
        xs, zs = f"x[{s}, i, l]", f"Z[{s}, i, l]"
        noise = f" + {zs}" if s in cfg.noisy else ""
        if final == "euler":
            g(f"x[{s}, i, l] = {_clamp(cfg, s, f'{xs} + dt * d{s}{noise}')}")
        elif final == "predict":
            g(f"F[{s}, i, l] = d{s}")
            g(f"xt[{s}, i, l] = {_clamp(cfg, s, f'{xs} + dt * d{s}{noise}')}")
        elif final == "correct":
            g(f"x[{s}, i, l] = {_clamp(cfg, s, f'{xs} + half_dt * (F[{s}, i, l] + d{s}){noise}')}")
        elif final == "rk1":
            g(f"F[{s}, i, l] = d{s}")
            g(f"xt[{s}, i, l] = {xs} + half_dt * d{s}")
        elif final in ("rk2", "rk3"):
            g(f"F[{s}, i, l] += TWO * d{s}")
            step = "half_dt" if final == "rk2" else "dt"
            g(f"xt[{s}, i, l] = {xs} + {step} * d{s}")
        else:  # rk4
            g(f"x[{s}, i, l] = {_clamp(cfg, s, f'{xs} + sixth_dt * (F[{s}, i, l] + d{s})')}")
    g.dedent(2)


def _emit_monitors(g: _Gen, cfg: KernelConfig, xs, params):
    O = cfg.n_obs
    o_names = [f"o{k}" for k in range(O)]
    observe_call = f"{_tuple_lhs(o_names)} = observe({_csv(xs + params)})"
    if cfg.monitor != MONITOR_NONE:
        g("if n >= n_cut:")
        g.indent()
        g("k = n - n_cut")
        g("sample = (k + 1) % decim == 0")
        g("t_idx = (k + 1) // decim - 1")
        if cfg.monitor == MONITOR_TAVG:
            g("inv = ONE / DT(decim)")
            g("for i in range(N):")
            g("    for l in range(L):")
            g(f"        {observe_call}")
            for k in range(O):
                g(f"        mon[{k}, i, l] += o{k}")
            g("if sample:")
            g("    for c in range(O):")
            g("        for i in range(N):")
            g("            for l in range(L):")
            g("                out_mon[t_idx, c, i, lo + l] = mon[c, i, l] * inv")
            g("                mon[c, i, l] = ZERO")
        else:
            g("if sample:")
            g("    for i in range(N):")
            g("        for l in range(L):")
            g(f"            {observe_call}")
            for k in range(O):
                g(f"            out_mon[t_idx, {k}, i, lo + l] = o{k}")
        g.dedent()
    if cfg.bold:
        g("for i in range(N):")
        g("    for l in range(L):")
        g(f"        {observe_call}")
        g(f"        bacc[i, l] += o{cfg.bold_obs}")
        g("if (n + 1) % bold_decim == 0:")
        g.indent()
        g("m = (n + 1) // bold_decim")
        g("inv_b = bc[10] / DT(bold_decim)")
        g("for i in range(N):")
        g.indent()
        g("for l in range(L):")
        g.indent()
        g("z = bacc[i, l] * inv_b")
        g("bacc[i, l] = ZERO")
        g("s0, f0, v0, q0 = bst[0, i, l], bst[1, i, l], bst[2, i, l], bst[3, i, l]")
        g("ds0, df0, dv0, dq0 = balloon(s0, f0, v0, q0, z, bc[0], bc[1], bc[2], bc[3], bc[4], bc[5])")
        g("s1, f1, v1, q1 = s0 + bold_dt * ds0, f0 + bold_dt * df0, v0 + bold_dt * dv0, q0 + bold_dt * dq0")
        g("ds1, df1, dv1, dq1 = balloon(s1, f1, v1, q1, z, bc[0], bc[1], bc[2], bc[3], bc[4], bc[5])")
        g("hb = HALF * bold_dt")
        g("bst[0, i, l] = s0 + hb * (ds0 + ds1)")
        g("bst[1, i, l] = f0 + hb * (df0 + df1)")
        g("bst[2, i, l] = v0 + hb * (dv0 + dv1)")
        g("bst[3, i, l] = q0 + hb * (dq0 + dq1)")
        g.dedent(2)
        g("if m % tr_decim == 0 and m // tr_decim > q_cut:")
        g("    q_idx = m // tr_decim - 1 - q_cut")
        g("    for i in range(N):")
        g("        for l in range(L):")
        g("            out_bold[q_idx, i, lo + l] = bold_signal(bst[2, i, l], bst[3, i, l], bc[6], bc[7], bc[8], bc[9])")
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


def _importable(fn) -> bool:
    module = sys.modules.get(fn.__module__)
    return (
        module is not None
        and fn.__module__ != "__main__"
        and "<locals>" not in fn.__qualname__
        and getattr(module, fn.__qualname__, None) is fn
    )


def _cache_dir() -> Path:
    root = os.environ.get("VBI_DASK_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "vbi_dask" / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".probe"
        probe.touch()
        probe.unlink()
    except OSError:
        path = Path(tempfile.gettempdir()) / f"vbi_dask_kernels_{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
    return path


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
    fns = (cfg.equations, cfg.pre, cfg.post)
    cacheable = all(_importable(fn) for fn in fns)
    header = _HEADER.format(
        eq_module=cfg.equations.__module__, eq_name=cfg.equations.__qualname__,
        pre_module=cfg.pre.__module__, pre_name=cfg.pre.__qualname__,
        post_module=cfg.post.__module__, post_name=cfg.post.__qualname__,
        dtype=np.dtype(cfg.dtype).name, L=cfg.lanes, S=cfg.n_states, K=cfg.n_coupled, O=cfg.n_obs,
        NCH=cfg.n_coupled * cfg.n_pre, DELAYS=cfg.delays, cache=cacheable,
    )
    source = header + _shell_source(cfg)
    if cacheable:
        digest = hashlib.sha256(source.encode())
        modules = {fn.__module__ for fn in fns} | {_rng.__name__, _bold.__name__, __name__}
        for module in sorted(modules):
            digest.update(Path(sys.modules[module].__file__).read_bytes())
        digest.update(numba.__version__.encode())
        name = f"shell_{digest.hexdigest()[:24]}"
        path = _cache_dir() / f"{name}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)  # atomic: concurrent workers see a whole file
        spec = importlib.util.spec_from_file_location(f"vbi_dask_kernels_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        dispatcher = module.integrate
    else:
        namespace: dict = {}
        exec(compile(source, f"<vbi_dask shell {cfg.integrator}>", "exec"), namespace)
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
