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
    """How a shell maps simulations.

    ``lane_loop``: the CPU shell loops over the lanes of a block (``for l in range(L)``);
    the CUDA shell is one thread per simulation. ``column``: the expression of the
    simulation's column in the batch. ``lanes``: the lane expressions that the coupling
    sums unroll into named accumulators (CPU: ``0 .. L - 1``, so LLVM's SLP vectorizer
    packs them into SIMD registers; CUDA: the thread's ``l``). ``width``: the lane
    extent of the history buffer (the stride between history slots).
    """

    lane_loop: bool
    column: str
    lanes: tuple[str, ...]
    width: str
    helper: str  # decorator of the generated helper functions (coupling, block pass)
    thread: tuple[str, ...] = ()  # extra helper arguments (CUDA: the thread's column)
    tables: str = "tables"  # the model's tables: the kernel input, or (CPU) the header's constant


def cpu_layout(lanes: int) -> Layout:
    return Layout(
        lane_loop=True,
        column="lo + l",
        lanes=tuple(str(l) for l in range(lanes)),
        width="L",
        helper="@numba.njit(error_model='numpy', nogil=True, cache=CACHE)",
        tables="TABLES",  # frozen into the code: constant addresses (the input is 29% slower for ALN)
    )


CUDA_LAYOUT = Layout(lane_loop=False, column="l", lanes=("l",), width="B", helper="@_device", thread=("l",))


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
def loops(g: Gen, layout: Layout | None, *outer: str):
    """``for`` headers: the ``outer`` ones, then nodes, then (CPU) lanes; ``layout=None``:
    nodes only (the body unrolls the lanes itself)."""
    headers = [*outer, "i in range(N)"] + (["l in range(L)"] if layout and layout.lane_loop else [])
    for header in headers:
        g(f"for {header}:")
        g.indent()
    yield
    g.dedent(len(headers))


@contextmanager
def loops_over(g: Gen, header: str):
    g(f"for {header}:")
    g.indent()
    yield
    g.dedent()


def at_least(v, lo):
    """``max(v, lo)`` with Python's semantics (NaN stays NaN). The builtin's two-argument
    form fails to compile on Numba's CUDA target since 0.66 (numba issue #10753)."""
    return lo if lo > v else v


def at_most(v, hi):
    """``min(v, hi)``, likewise."""
    return hi if hi < v else v


def clamp(cfg, s: int, expr: str) -> str:
    lo, hi = cfg.bounds[s]
    if lo is not None:
        expr = f"at_least({expr}, DT({lo!r}))"
    if hi is not None:
        expr = f"at_most({expr}, DT({hi!r}))"
    return expr


def emit_step(g: Gen, cfg, layout: Layout):
    """One integration step of index ``n`` (coupling inputs, drift, noise, update)."""

    def coupling(X: str, step: str):
        emit_coupling(g, cfg, layout, X, step)

    if cfg.integrator == "euler":
        coupling("x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="euler")
    elif cfg.integrator == "heun":
        coupling("x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="predict")
        coupling("xt", "n + 1")
        emit_drift_update(g, cfg, layout, "xt", first=False, final="correct")
    else:  # rk4, deterministic and delay-free
        coupling("x", "n")
        emit_drift_update(g, cfg, layout, "x", first=True, final="rk1")
        for stage in ("rk2", "rk3"):
            coupling("xt", "n")
            emit_drift_update(g, cfg, layout, "xt", first=False, final=stage)
        coupling("xt", "n")
        emit_drift_update(g, cfg, layout, "xt", first=False, final="rk4")


def emit_time_loop(g: Gen, cfg, layout: Layout, first: str, last: str):
    """Steps ``first .. last - 1``: with delays in blocks of ``T`` steps, each opened by
    the block's history write and long-edge pass (see :mod:`.edges`)."""
    if cfg.delays:
        g(f"for n0 in range({first}, {last}, T):")
        g.indent()
        g("head = np.uint64(n0 % H)")
        emit_history_write(g, cfg, layout, "x", keep_efferent=False)
        args = dict(zip(LONG_PASS_ARGS, LONG_PASS_ARGS), h0="head")
        g(f"long_pass({csv([args[a] for a in LONG_PASS_ARGS] + list(layout.thread))})")
        g(f"n_end = n0 + T if n0 + T < {last} else {last}  # (not min(): see at_least)")
        g("for n in range(n0, n_end):")
    else:
        g(f"for n in range({first}, {last}):")
    g.indent()
    emit_step(g, cfg, layout)
    emit_monitors(g, cfg, layout)
    g.dedent(2 if cfg.delays else 1)


def call_args(cfg, layout: Layout, role: str, X: str) -> str:
    """The arguments of the equation ``role`` for node i, simulation l, bound by name and
    listed in the function's own order (device functions take no keyword arguments)."""
    rows = {name: f"{X}[{s}, i, l]" for s, name in enumerate(cfg.state_names)}
    if role == "drift":
        rows.update({name: f"cpl[{k}, i, l]" for k, name in enumerate(cfg.coupling_inputs)})
    rows.update({name: f"Pb[{p}, i, l]" for p, name in enumerate(cfg.param_names)})
    rows["tables"] = layout.tables
    names = cfg.arguments(role)
    unknown = [name for name in names if name not in rows]
    if unknown:
        raise ValueError(f"{role} takes unknown argument(s) {unknown}; valid: {', '.join(rows)}")
    return csv(rows[name] for name in names)


def emit_pre(g: Gen, cfg, layout: Layout, X: str, target: str, keep_efferent: bool = False):
    """Efferent signals of node i, simulation l, and their pre channels into ``target``."""
    K, C = cfg.n_coupled, cfg.n_pre
    e_names = [f"e{k}" for k in range(K)]
    g(f"{tuple_lhs(e_names)} = efferent({call_args(cfg, layout, 'efferent', X)})")
    for k in range(K):
        q_names = [f"q{k}_{c}" for c in range(C)]
        g(f"{tuple_lhs(q_names)} = pre(e{k})")
        for c in range(C):
            g(f"{target.format(ch=k * C + c)} = q{k}_{c}")
        if keep_efferent:
            g(f"EF[{k}, i, l] = e{k}")


def chunk_steps(cfg) -> int:
    """Coupling times summed together per long edge in the block pass: enough
    accumulators to hide the add latency, few enough to stay in registers (eight 512-bit
    registers of 16 float32 lanes)."""
    per_time = cfg.n_coupled * cfg.n_pre * np.dtype(cfg.dtype).itemsize // 4
    return max(1, 8 // per_time)


def uconst(k: int) -> str:
    return f"np.uint64({k})"


def emit_history_write(g: Gen, cfg, layout: Layout, X: str, keep_efferent: bool):
    """Efferent signals of the state in ``X`` into the history slot ``head`` (slot 0
    without delays), and into the slot's mirror past ``H`` while ``head`` is among the
    first ``TBLK`` slots (so a block's window of slots never wraps)."""
    slot = "head" if cfg.delays else "0"
    with loops(g, layout):
        emit_pre(g, cfg, layout, X, f"E[{{ch}}, i, {slot}, l]", keep_efferent=keep_efferent)
    if cfg.delays:
        g("if head < UTBLK:")
        g.indent()
        with loops(g, layout, "ch in range(NCH)"):
            g("E[ch, i, head + UH, l] = E[ch, i, head, l]")
        g.dedent()


COUPLING_ARGS = (
    "X",
    "E",
    "D",
    "cpl",
    "EF",
    "Pb",
    "indptr",
    "split",
    "indices",
    "weights",
    "back",
    "rowsum",
    "head",
    "drow",
    "UH",
    "UTBLK",
    "tables",
)


def emit_coupling(g: Gen, cfg, layout: Layout, X: str, step: str):
    """Call the generated ``coupling`` helper for the state in ``X`` at step ``step``."""
    head = f"np.uint64(({step}) % H)" if cfg.delays else "np.uint64(0)"
    drow = f"({step}) - n0" if cfg.delays else "0"
    args = dict(zip(COUPLING_ARGS, COUPLING_ARGS), X=X, head=head, drow=drow)
    g(f"coupling({csv([args[a] for a in COUPLING_ARGS] + list(layout.thread))})")


def emit_coupling_helper(g: Gen, cfg, layout: Layout):
    """``coupling(...)``: the coupling input ``cpl[k, i, l]`` of the state in ``X``, whose
    efferent signals it first writes into the history slot ``head``.

    Written once per shell and called at every evaluation (twice per Heun step), so the
    unrolled sums are compiled once. Delay-free (or short, with delays) edges are summed
    with N_PARTIAL partial accumulators per channel and lane: edges in groups of four,
    one per accumulator, the remaining ones into the first; combined as
    ``(a0 + a1) + (a2 + a3)``. With delays, the block's long-edge sum ``D[drow]`` is
    added first.
    """
    from .edges import N_PARTIAL

    K, C = cfg.n_coupled, cfg.n_pre
    NCH = K * C
    g(layout.helper)
    g(f"def coupling({csv(list(COUPLING_ARGS) + list(layout.thread))}):")
    g.indent()
    g("N = X.shape[1]")
    emit_history_write(g, cfg, layout, "X", keep_efferent=True)
    acc = lambda p, ch, lane: f"a{p}_{ch}_{lane}"  # noqa: E731
    lanes = layout.lanes
    with loops(g, None):
        for p in range(N_PARTIAL):
            for ch in range(NCH):
                g(" = ".join(acc(p, ch, lane) for lane in lanes) + " = ZERO")
        g(f"e0 = {'split[i]' if cfg.delays else 'indptr[i]'}")
        g("e1 = indptr[i + 1]")
        g(f"e4 = e0 + (e1 - e0) // {uconst(N_PARTIAL)} * {uconst(N_PARTIAL)}")
        g(f"for idx in range(e0, e4, {uconst(N_PARTIAL)}):")
        g.indent()
        for p in range(N_PARTIAL):
            _emit_edge(g, cfg, f"idx + {uconst(p)}")
            for ch in range(NCH):
                for lane in lanes:
                    g(f"{acc(p, ch, lane)} += {weight(cfg, ch)} * E[{ch}, j, s, {lane}]")
        g.dedent()
        g("for idx in range(e4, e1):")
        g.indent()
        _emit_edge(g, cfg, "idx")
        for ch in range(NCH):
            for lane in lanes:
                g(f"{acc(0, ch, lane)} += {weight(cfg, ch)} * E[{ch}, j, s, {lane}]")
        g.dedent()
        for lane in lanes:
            for k in range(K):
                sums = []
                for c in range(C):
                    ch = k * C + c
                    total = f"({acc(0, ch, lane)} + {acc(1, ch, lane)}) + ({acc(2, ch, lane)} + {acc(3, ch, lane)})"
                    if cfg.delays:
                        total = f"D[drow, {ch}, i, {lane}] + ({total})"
                    g(f"s{ch} = {total}")
                    sums.append(f"s{ch}")
                g(
                    f"cpl[{k}, i, {lane}] = post(Pb[{cfg.n_params}, i, {lane}], rowsum[i], EF[{k}, i, {lane}], {csv(sums)})"
                )
    g.dedent()
    g()
    g()


def weight(cfg, ch: int) -> str:
    """The weight of channel ``ch``'s sums: ``w``, or ``ww = w * w`` for a coupled signal
    summed with squared weights."""
    return "ww" if ch // cfg.n_pre in cfg.squared else "w"


def _emit_weight(g: Gen, cfg, idx: str):
    g(f"w = weights[{idx}]")
    if cfg.squared:
        g("ww = w * w")


def _emit_edge(g: Gen, cfg, idx: str):
    """Source node ``j``, weight ``w`` (and ``ww``) and history slot ``s`` of edge ``idx``
    (unsigned arithmetic: the slot is ``head + back`` wrapped into the ring)."""
    g(f"j = indices[{idx}]")
    _emit_weight(g, cfg, idx)
    if cfg.delays:
        g(f"s = head + back[{idx}]")
        g("if s >= UH:")
        g("    s -= UH")
    else:
        g("s = np.uint64(0)")


LONG_PASS_ARGS = (
    "Ef",
    "D",
    "indptr",
    "split",
    "indices",
    "weights",
    "back",
    "h0",
    "UH",
    "UHP",
    "UW",
    "CHS",
    "TBLK",
    "N",
)


def emit_long_pass_helper(g: Gen, cfg, layout: Layout):
    """``long_pass(...)``: the long-edge sums of the block whose first step's history
    slot is ``h0``: ``D[t, ch, i, l]`` for its coupling times ``t < TBLK = T + 1``, each a
    sum over row i's long edges in order.

    An edge's window of history slots is contiguous (the ring's mirror); it is read in
    chunks of TB times, each time accumulating in its own register(s), then the
    remaining ``TBLK % TB`` times one by one."""
    TB = chunk_steps(cfg)
    g(layout.helper)
    g(f"def long_pass({csv(list(LONG_PASS_ARGS) + list(layout.thread))}):")
    g.indent()
    g(f"full = TBLK // {TB} * {TB}")
    with loops(g, None):
        with loops_over(g, f"c in range(0, full, {TB})"):
            _emit_window_chunk(g, cfg, layout, TB)
        with loops_over(g, "c in range(full, TBLK)"):
            _emit_window_chunk(g, cfg, layout, 1)
    g.dedent()
    g()
    g()


def _emit_window_chunk(g: Gen, cfg, layout: Layout, count: int):
    """Sums for the ``count`` times ``c .. c + count - 1`` of row i's long edges."""
    NCH = cfg.n_coupled * cfg.n_pre
    lanes = layout.lanes
    acc = lambda tb, ch, lane: f"b{tb}_{ch}_{lane}"  # noqa: E731
    for tb in range(count):
        for ch in range(NCH):
            g(" = ".join(acc(tb, ch, lane) for lane in lanes) + " = ZERO")
    g("for idx in range(indptr[i], split[i]):")
    g.indent()
    g("j = indices[idx]")
    _emit_weight(g, cfg, "idx")
    g("s = h0 + back[idx]")
    g("if s >= UH:")
    g("    s -= UH")
    g("base = (j * UHP + s + np.uint64(c)) * UW")
    for tb in range(count):
        for ch in range(NCH):
            for lane in lanes:
                if layout.lane_loop:  # CPU: the block's width L is known, the offset folds
                    offset = uconst(tb * len(lanes) + int(lane))
                else:
                    offset = f"{uconst(tb)} * UW + np.uint64({lane})"
                channel = f" + {uconst(ch)} * CHS" if ch else ""
                g(f"{acc(tb, ch, lane)} += {weight(cfg, ch)} * Ef[base{channel} + {offset}]")
    g.dedent()
    for tb in range(count):
        for ch in range(NCH):
            for lane in lanes:
                g(f"D[c + {tb}, {ch}, i, {lane}] = {acc(tb, ch, lane)}")


def emit_helpers(g: Gen, cfg, layout: Layout):
    """The helper functions a shell calls (before the shell's own definition)."""
    emit_coupling_helper(g, cfg, layout)
    if cfg.delays:
        emit_long_pass_helper(g, cfg, layout)


def emit_noise(g: Gen, cfg, layout: Layout):
    """Z[s, i, l] = sigma_s sqrt(dt) xi for noisy states; xi keyed by (seed, n, i, sim, s)."""
    groups: dict[int, list[int]] = {}
    for s in cfg.noisy:
        groups.setdefault(s // 4, []).append(s)
    for word, members in groups.items():
        slots = [s % 4 for s in members]
        counter = (
            f"np.uint64(n), np.uint64(i), sim0 + np.uint64({layout.column}), "
            f"np.uint64({(_rng.STREAM_NOISE << 16) | word})"
        )
        if max(slots) < 2:
            g(f"xi0, xi1 = normal_pair(seed_lo, seed_hi, {counter})")
        else:
            g(f"xi0, xi1, xi2, xi3 = normals4(seed_lo, seed_hi, {counter})")
        for s in members:
            g(f"Z[{s}, i, l] = sigma[{s}] * sqrt_dt * DT(xi{s % 4})")


def emit_drift_update(g: Gen, cfg, layout: Layout, X: str, first: bool, final: str):
    S = cfg.n_states
    d = [f"d{s}" for s in range(S)]
    with loops(g, layout):
        if first and cfg.noisy and final in ("euler", "predict"):
            emit_noise(g, cfg, layout)
        g(f"{tuple_lhs(d)} = drift({call_args(cfg, layout, 'drift', X)})")
        if cfg.stimulus >= 0:  # input to one state: amplitude x weight (a parameter row) x pattern(t)
            at = {
                "euler": "stim[n]",
                "predict": "stim[n]",
                "rk1": "stim[n]",
                "correct": "stim[n + 1]",
                "rk4": "stim[n + 1]",
            }.get(final, "HALF * (stim[n] + stim[n + 1])")
            s = cfg.stimulus
            g(f"d{s} = d{s} + Pb[{cfg.n_params + 1}, i, l] * {at}")
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
    o_names = [f"o{k}" for k in range(O)]
    observe_call = f"{tuple_lhs(o_names)} = observe({call_args(cfg, layout, 'observe', 'x')})"
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


# set by vbi_dask (a callable returning the ``vbi_dask.cache-dir`` Dask setting): these
# kernels import no Dask themselves
CACHE_DIR_SETTING = None


def cache_dir() -> Path:
    """``$VBI_DASK_CACHE_DIR``, else the ``vbi_dask.cache-dir`` setting, else
    ``~/.cache/vbi_dask/kernels``; a temporary folder when that is not writable."""
    root = os.environ.get("VBI_DASK_CACHE_DIR") or (CACHE_DIR_SETTING() if CACHE_DIR_SETTING else None)
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


def build_shell(
    cfg, template: str, body: str, prefix: str, module: str, label: str, disk_cache: bool = True, **fields
) -> tuple[str, dict]:
    """Header (from ``template``) + ``body``, loaded through :func:`load_shell`.

    The header names the model's equations and the coupling's functions by module and
    qualified name; Numba's disk cache is requested when all three are importable by
    name and ``disk_cache`` holds. ``module`` (the calling shell's module) joins the
    modules whose sources key the cache file. Returns (source, namespace).
    """
    from . import bold as _bold

    tables = cfg.tables_fn
    fns = (cfg.equations, cfg.pre, cfg.post, tables)
    cacheable = all(importable(fn) for fn in fns)
    header = template.format(
        eq_module=cfg.equations.__module__,
        eq_name=cfg.equations.__qualname__,
        tables_module=tables.__module__,
        tables_name=tables.__qualname__,
        pre_module=cfg.pre.__module__,
        pre_name=cfg.pre.__qualname__,
        post_module=cfg.post.__module__,
        post_name=cfg.post.__qualname__,
        dtype=np.dtype(cfg.dtype).name,
        S=cfg.n_states,
        K=cfg.n_coupled,
        O=cfg.n_obs,
        NCH=cfg.n_coupled * cfg.n_pre,
        DELAYS=cfg.delays,
        CACHE=cacheable and disk_cache,
        **fields,
    )
    source = header + body
    modules = {fn.__module__ for fn in fns} | {_rng.__name__, _bold.__name__, __name__, module}
    return source, load_shell(source, prefix, modules, cacheable, label)
