"""Pieces of the loop-shell generators shared by the CPU and CUDA shells.

Both shells run the same statements for one (node ``i``, simulation ``l``) pair; they
differ in how ``l`` is produced: the CPU shell loops over the lanes of a block of
simulations (``for l in range(L)``, output column ``lo + l``), the CUDA shell is one
thread per simulation (``l`` is the thread's column, no lane loop). Everything written
once here (the integrators' update formulas, the noise counters, the monitors and the
Balloon-Windkessel step) is emitted for both, so the two shells cannot drift apart.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from . import rng as _rng

MONITOR_NONE, MONITOR_RAW, MONITOR_TAVG = 0, 1, 2


@dataclass(frozen=True)
class Layout:
    """How a shell maps simulations: ``lane_loop`` (CPU: an inner loop over the lanes of
    a block) and ``column``, the expression of the simulation's column in the batch."""

    lane_loop: bool
    column: str


CPU_LAYOUT = Layout(lane_loop=True, column="lo + l")
CUDA_LAYOUT = Layout(lane_loop=False, column="l")


def csv(items) -> str:
    return ", ".join(items)


def tuple_lhs(names) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


class Gen:
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


@contextmanager
def loops(g: Gen, layout: Layout, *outer: str):
    """``for`` headers: the ``outer`` ones, then nodes, then (CPU) lanes."""
    headers = [*outer, "i in range(N)"] + (["l in range(L)"] if layout.lane_loop else [])
    for header in headers:
        g(f"for {header}:")
        g.indent()
    yield
    g.dedent(len(headers))


def clamp(cfg, s: int, expr: str) -> str:
    lo, hi = cfg.bounds[s]
    if lo is not None:
        expr = f"max({expr}, DT({lo!r}))"
    if hi is not None:
        expr = f"min({expr}, DT({hi!r}))"
    return expr


def emit_step(g: Gen, cfg, layout: Layout, emit_coupling):
    """One integration step; ``emit_coupling(g, cfg, X, step)`` writes cpl[k, i, l]."""
    if cfg.integrator == "euler":
        emit_coupling(g, cfg, "x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="euler")
    elif cfg.integrator == "heun":
        emit_coupling(g, cfg, "x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="predict")
        emit_coupling(g, cfg, "xt", "n + 1")
        emit_drift_update(g, cfg, layout, "xt", first=False, final="correct")
    else:  # rk4, deterministic and delay-free
        emit_coupling(g, cfg, "x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="rk1")
        for stage in ("rk2", "rk3"):
            emit_coupling(g, cfg, "xt", "n")
            emit_drift_update(g, cfg, layout, "xt", first=False, final=stage)
        emit_coupling(g, cfg, "xt", "n")
        emit_drift_update(g, cfg, layout, "xt", first=False, final="rk4")


def emit_pre(g: Gen, cfg, X: str, target: str, keep_efferent: bool = False):
    """Efferent signals of node i, simulation l, and their pre channels into ``target``."""
    S, K, C = cfg.n_states, cfg.n_coupled, cfg.n_pre
    e_names = [f"e{k}" for k in range(K)]
    args = [f"{X}[{s}, i, l]" for s in range(S)] + [f"Pb[{p}, i, l]" for p in range(cfg.arity[0])]
    g(f"{tuple_lhs(e_names)} = efferent({csv(args)})")
    for k in range(K):
        q_names = [f"q{k}_{c}" for c in range(C)]
        g(f"{tuple_lhs(q_names)} = pre(e{k})")
        for c in range(C):
            g(f"{target.format(ch=k * C + c)} = q{k}_{c}")
        if keep_efferent:
            g(f"EF[{k}, i, l] = e{k}")


def emit_edge_head(g: Gen, cfg, note: str = ""):
    """Open the loop over row ``i``'s CSR edges: source node ``j``, weight ``w`` and the
    history slot ``src`` it is read from (``head`` minus the edge's delay, wrapped in the
    ring buffer of ``H`` steps; 0 without delays). The caller emits the body and dedents."""
    g("for idx in range(indptr[i], indptr[i + 1]):")
    g.indent()
    g("j = indices[idx]" + note)
    g("w = weights[idx]")
    if cfg.delays:
        g("src = head - delays[idx]")
        g("if src < 0:")
        g("    src += H")
    else:
        g("src = 0")


def emit_noise(g: Gen, cfg, layout: Layout):
    """Z[s, i, l] = sigma_s sqrt(dt) xi for noisy states; xi keyed by (seed, n, i, sim, s)."""
    groups: dict[int, list[int]] = {}
    for s in cfg.noisy:
        groups.setdefault(s // 4, []).append(s)
    for word, members in groups.items():
        slots = [s % 4 for s in members]
        counter = (f"np.uint64(n), np.uint64(i), sim0 + np.uint64({layout.column}), "
                   f"np.uint64({(_rng.STREAM_NOISE << 16) | word})")
        if max(slots) < 2:
            g(f"xi0, xi1 = normal_pair(seed_lo, seed_hi, {counter})")
        else:
            g(f"xi0, xi1, xi2, xi3 = normals4(seed_lo, seed_hi, {counter})")
        for s in members:
            g(f"Z[{s}, i, l] = sigma[{s}] * sqrt_dt * DT(xi{s % 4})")


def emit_drift_update(g: Gen, cfg, layout: Layout, X: str, first: bool, final: str):
    S, P, K = cfg.n_states, cfg.n_params, cfg.n_coupled
    d = [f"d{s}" for s in range(S)]
    args = [f"{X}[{s}, i, l]" for s in range(S)] + [f"cpl[{k}, i, l]" for k in range(K)]
    args += [f"Pb[{p}, i, l]" for p in range(P)]
    with loops(g, layout):
        if first and cfg.noisy and final in ("euler", "predict"):
            emit_noise(g, cfg, layout)
        g(f"{tuple_lhs(d)} = drift({csv(args)})")
        for s in range(S):
            xs, zs = f"x[{s}, i, l]", f"Z[{s}, i, l]"
            noise = f" + {zs}" if s in cfg.noisy else ""
            if final == "euler":
                g(f"x[{s}, i, l] = {clamp(cfg, s, f'{xs} + dt * d{s}{noise}')}")
            elif final == "predict":
                g(f"F[{s}, i, l] = d{s}")
                g(f"xt[{s}, i, l] = {clamp(cfg, s, f'{xs} + dt * d{s}{noise}')}")
            elif final == "correct":
                g(f"x[{s}, i, l] = {clamp(cfg, s, f'{xs} + half_dt * (F[{s}, i, l] + d{s}){noise}')}")
            elif final == "rk1":
                g(f"F[{s}, i, l] = d{s}")
                g(f"xt[{s}, i, l] = {xs} + half_dt * d{s}")
            elif final in ("rk2", "rk3"):
                g(f"F[{s}, i, l] += TWO * d{s}")
                step = "half_dt" if final == "rk2" else "dt"
                g(f"xt[{s}, i, l] = {xs} + {step} * d{s}")
            else:  # rk4
                g(f"x[{s}, i, l] = {clamp(cfg, s, f'{xs} + sixth_dt * (F[{s}, i, l] + d{s})')}")


def emit_monitors(g: Gen, cfg, layout: Layout):
    """Sampled monitor (raw or temporal average) and BOLD after the step of index n."""
    O = cfg.n_obs
    col = layout.column
    xs = [f"x[{s}, i, l]" for s in range(cfg.n_states)]
    params = [f"Pb[{p}, i, l]" for p in range(cfg.arity[1])]
    o_names = [f"o{k}" for k in range(O)]
    observe_call = f"{tuple_lhs(o_names)} = observe({csv(xs + params)})"
    if cfg.monitor != MONITOR_NONE:
        g("if n >= n_cut:")
        g.indent()
        g("k = n - n_cut")
        g("sample = (k + 1) % decim == 0")
        g("t_idx = (k + 1) // decim - 1")
        if cfg.monitor == MONITOR_TAVG:
            g("inv = ONE / DT(decim)")
            with loops(g, layout):
                g(observe_call)
                for k in range(O):
                    g(f"mon[{k}, i, l] += o{k}")
            g("if sample:")
            g.indent()
            with loops(g, layout, "c in range(O)"):
                g(f"out_mon[t_idx, c, i, {col}] = mon[c, i, l] * inv")
                g("mon[c, i, l] = ZERO")
            g.dedent()
        else:
            g("if sample:")
            g.indent()
            with loops(g, layout):
                g(observe_call)
                for k in range(O):
                    g(f"out_mon[t_idx, {k}, i, {col}] = o{k}")
            g.dedent()
        g.dedent()
    if cfg.bold:
        with loops(g, layout):
            g(observe_call)
            g(f"bacc[i, l] += o{cfg.bold_obs}")
        g("if (n + 1) % bold_decim == 0:")
        g.indent()
        g("m = (n + 1) // bold_decim")
        g("inv_b = bc[10] / DT(bold_decim)")
        with loops(g, layout):
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
        g("if m % tr_decim == 0 and m // tr_decim > q_cut:")
        g.indent()
        g("q_idx = m // tr_decim - 1 - q_cut")
        with loops(g, layout):
            g(f"out_bold[q_idx, i, {col}] = bold_signal(bst[2, i, l], bst[3, i, l], bc[6], bc[7], bc[8], bc[9])")
        g.dedent(2)


def importable(fn) -> bool:
    """Whether ``fn`` can be imported by name (a generated module can then be cached)."""
    module = sys.modules.get(fn.__module__)
    return (
        module is not None
        and fn.__module__ != "__main__"
        and "<locals>" not in fn.__qualname__
        and getattr(module, fn.__qualname__, None) is fn
    )


def cache_dir() -> Path:
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


def load_shell(source: str, prefix: str, modules, cacheable: bool, label: str) -> dict:
    """Execute a generated shell; return its namespace.

    A cacheable shell is written as a module under :func:`cache_dir`, named by a hash of
    its source, of the files of ``modules`` (what it inlines) and of the Numba version, so
    Numba's on-disk cache serves later processes (Dask workers, test runs). Otherwise
    (equations defined in ``__main__`` or a closure) it is compiled in memory only.
    """
    if not cacheable:
        namespace: dict = {}
        exec(compile(source, label, "exec"), namespace)
        return namespace
    digest = hashlib.sha256(source.encode())
    for module in sorted(modules):
        digest.update(Path(sys.modules[module].__file__).read_bytes())
    digest.update(numba.__version__.encode())
    name = f"{prefix}_{digest.hexdigest()[:24]}"
    path = cache_dir() / f"{name}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent workers see a whole file
    spec = importlib.util.spec_from_file_location(f"vbi_dask_kernels_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return vars(module)


def build_shell(cfg, template: str, body: str, prefix: str, module: str, label: str,
                disk_cache: bool = True, **fields) -> tuple[str, dict]:
    """Header (from ``template``) + ``body``, loaded through :func:`load_shell`.

    The header names the model's equations and the coupling's functions by module and
    qualified name; Numba's disk cache is requested when all three are importable by
    name and ``disk_cache`` holds. ``module`` (the calling shell's module) joins the
    modules whose sources key the cache file. Returns (source, namespace).
    """
    from . import bold as _bold

    fns = (cfg.equations, cfg.pre, cfg.post)
    cacheable = all(importable(fn) for fn in fns)
    header = template.format(
        eq_module=cfg.equations.__module__, eq_name=cfg.equations.__qualname__,
        pre_module=cfg.pre.__module__, pre_name=cfg.pre.__qualname__,
        post_module=cfg.post.__module__, post_name=cfg.post.__qualname__,
        dtype=np.dtype(cfg.dtype).name, S=cfg.n_states, K=cfg.n_coupled, O=cfg.n_obs,
        NCH=cfg.n_coupled * cfg.n_pre, DELAYS=cfg.delays, cache=cacheable and disk_cache, **fields,
    )
    source = header + body
    modules = {fn.__module__ for fn in fns} | {_rng.__name__, _bold.__name__, __name__, module}
    return source, load_shell(source, prefix, modules, cacheable, label)
