"""CUDA loop shell: integrate a batch of simulations of any model, one thread per simulation.

The shell is generated from the same :class:`~vbi_dask.kernels.config.KernelConfig` as the
CPU shell and compiled around the same scalar functions: the model's ``drift`` /
``efferent`` / ``observe``, the coupling's ``pre`` / ``post``, the Balloon-Windkessel
functions and the counter-based generator (``rng.make_rng`` built with
``cuda.jit(device=True)``). The per-(node, simulation) statements (integrator updates,
noise counters, monitors, BOLD) come from :mod:`._codegen`, shared with the CPU shell.
No equation is written here; a simulation gets the same noise on either device.

Thread mapping: one thread integrates one simulation, over all nodes, for a range of
steps. Whole-brain batches have N ~ 68-400 nodes and B ~ 1e3-1e5 simulations, so B
fills the device (tens of thousands of threads) without any synchronisation: a thread
only reads its own column. Every thread of a warp walks the same CSR row at the same
time, so ``indptr`` / ``indices`` / ``weights`` / ``back`` reads are warp-uniform
(one broadcast transaction, served from L1/L2), and the states, parameters and
delay history are laid out ``(..., node, sim)`` with ``sim`` contiguous, so the
per-thread reads and writes of a warp coalesce into 128-byte transactions. The CPU
shell's SIMD lanes are this layout's threads: both run exactly the same operations
per simulation. A block per simulation (threads over nodes, state in shared memory)
would need a barrier per coupling evaluation, idles most threads for N < 128 and caps
the grid's parallelism at B blocks of N threads; it wins only for few simulations of
large networks, which is not the inference workload.

Delays follow the CPU shell's block design (:mod:`.edges`): each thread sums its long
edges once per block of ``T`` steps, ``T + 1`` consecutive history slots per edge, and
its short edges at every evaluation. On the GPU the history of 1e4-1e5 simulations lives
in device memory (each slot of a node is one coalesced row across the warp) and the
delayed coupling is bound by reading it: the block design reads every long edge's value
once per coupling time where the step-by-step sum read it at both of Heun's
evaluations, halving that traffic, and the reads of consecutive times are consecutive
rows. The same design on both devices also keeps the summation order, hence the
results, the same on both.

Memory: everything lives in global memory, allocated once per launch chunk: states
``x``, ``xt``, ``F``, ``Z`` ``(svar, node, sim)``, the efferent history
``E`` ``(channel, node, slot, sim)`` (a ring of H = max(max delay, T) + 2 slots and a
mirror of its first T + 1; one slot without delays; ``Ef`` is the same memory, flat),
the block's long-edge sums ``D`` ``(T + 1, channel, node, sim)``, monitor accumulators,
Balloon states, and the outputs ``(time, obs, node, sim)`` / ``(time, node, sim)``.
Only the requested outputs are copied back. A batch whose buffers do not fit the free
device memory is run in chunks of simulations; a long run is split into launches of
``steps_per_launch`` steps (state persists on the device; a launch starts a block).

Numerics: results equal the CPU shell's to floating-point rounding, not bit for bit:
the GPU contracts ``a * b + c`` into fused multiply-adds and uses libdevice's math
functions (the CUDA simulator evaluates float32 ``math`` calls in float64).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import shutil
from contextlib import contextmanager
from functools import lru_cache
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from . import _codegen
from ._codegen import CUDA_LAYOUT, MONITOR_NONE, MONITOR_TAVG, Gen, loops
from .config import INPUT_NAMES, INTEGRATORS, KernelConfig, KernelInputs

__all__ = ["build_kernel", "device_jit", "CudaKernel", "THREADS_PER_BLOCK", "STEPS_PER_LAUNCH"]

THREADS_PER_BLOCK = 128  # 4 warps: enough blocks per SM at B >= 1e4, few idle threads at B ~ 1e3
STEPS_PER_LAUNCH = 4096  # keeps each launch well under display-watchdog limits
MEMORY_FRACTION = 0.8  # of the free device memory, for one chunk's buffers


def device_jit():
    """The decorator compiling a scalar function as an inlined CUDA device function.

    numba-cuda forces inlining with ``forceinline=True`` (LLVM ``alwaysinline``); the
    CUDA target built into Numba (and its simulator) accepts ``inline=`` and leaves
    inlining to NVVM, which inlines such small functions at ``-opt=3``.
    """
    if "forceinline" in inspect.signature(cuda.jit).parameters:
        return cuda.jit(device=True, forceinline=True)
    return cuda.jit(device=True, inline=True)


def _shell_source(cfg: KernelConfig) -> str:
    g = Gen()
    _codegen.emit_helpers(g, cfg, CUDA_LAYOUT)
    g("@cuda.jit(cache=CACHE)")
    # the state (x0: device memory, advanced in place) and the inputs, then the buffers
    g(f"def integrate({_codegen.csv(INPUT_NAMES)},")
    g("              xt, F, Z, cpl, EF, E, Ef, D, mon, bst, bacc, step0, step1):")
    g.indent()
    g("x = x0")
    g("l = cuda.grid(1)  # this thread's simulation (column)")
    g("B = x.shape[2]")
    g("if l >= B:")
    g("    return")
    g("N = x.shape[1]")
    g("Pb = P  # read in place: (param, node, sim) coalesces across the warp")
    g("half_dt = dt * HALF")
    g("sixth_dt = dt * SIXTH")
    g("sqrt_dt = DT(math.sqrt(dt))")
    g("TBLK = T + 1  # coupling times of a block: rows of the block buffer D")
    g("HP = E.shape[2]  # history slots: the ring and its mirror")
    g("UH, UHP, UTBLK, UW = np.uint64(H), np.uint64(HP), np.uint64(TBLK), np.uint64(B)")
    g("CHS = np.uint64(N) * UHP * UW  # history stride between channels")
    if cfg.bold or cfg.monitor == MONITOR_TAVG or cfg.delays:
        g("if step0 == 0:")
        g.indent()
        with loops(g, CUDA_LAYOUT):
            if cfg.bold:
                g("bst[0, i, l], bst[1, i, l], bst[2, i, l], bst[3, i, l] = ZERO, ONE, ONE, ONE")
                g("bacc[i, l] = ZERO")
            if cfg.monitor == MONITOR_TAVG:
                g("for c in range(O):")
                g("    mon[c, i, l] = ZERO")
            if cfg.delays:  # constant initial history: the initial state's efferent signals
                _codegen.emit_pre(g, cfg, CUDA_LAYOUT, "x", "E[{ch}, i, 0, l]")
        if cfg.delays:
            with loops(g, CUDA_LAYOUT, "ch in range(NCH)", "h in range(1, HP)"):
                g("E[ch, i, h, l] = E[ch, i, 0, l]")
        g.dedent()
    _codegen.emit_time_loop(g, cfg, CUDA_LAYOUT, "step0", "step1")
    return g.source()


_HEADER = """\
# Generated by vbi_dask.kernels.cuda: the CUDA loop shell of one kernel configuration.
import math

import numpy as np
from numba import cuda

from vbi_dask.kernels import bold as _bold
from vbi_dask.kernels import rng as _rng
from vbi_dask.kernels._codegen import at_least as _at_least, at_most as _at_most
from vbi_dask.kernels.cuda import device_jit as _device_jit
from {eq_module} import {eq_name} as _equations
from {pre_module} import {pre_name} as _pre
from {post_module} import {post_name} as _post

_device = _device_jit()
DT = np.{dtype}
ZERO, ONE, TWO, HALF, SIXTH = DT(0.0), DT(1.0), DT(2.0), DT(0.5), DT(1.0 / 6.0)
S, K, O, NCH, DELAYS = {S}, {K}, {O}, {NCH}, {DELAYS}
drift, efferent, observe = (_device(f) for f in _equations(DT, _device))
pre, post = _device(_pre), _device(_post)
_generator = _rng.make_rng(_device)
normal_pair, normals4 = _generator.normal_pair, _generator.normals4
balloon, bold_signal = _device(_bold.balloon_drift), _device(_bold.bold_signal)
at_least, at_most = _device(_at_least), _device(_at_most)
CACHE = {CACHE}


"""


def _simulator() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


@lru_cache(maxsize=None)
def build_kernel(cfg: KernelConfig) -> "CudaKernel":
    """The CUDA loop shell for ``cfg`` (generated once per process; compiled by Numba at
    the first launch, cached on disk when the equations are importable by name)."""
    if cfg.integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {cfg.integrator!r}; valid: {list(INTEGRATORS)}")
    source, namespace = _codegen.build_shell(
        cfg,
        _HEADER,
        _shell_source(cfg),
        "cuda_shell",
        __name__,
        f"<vbi_dask cuda shell {cfg.integrator}>",
        disk_cache=not _simulator(),
    )
    return CudaKernel(namespace["integrate"], source, cfg)


def _history_shape(cfg: KernelConfig, H: int, T: int) -> tuple[int, int]:
    """(history slots, block rows): the ring of ``H`` steps and its mirror, and the rows
    of the block buffer (see :mod:`.edges`); (1, 1) without delays."""
    if not cfg.delays:
        return 1, 1
    return H + T + 1, T + 1


def _buffer_shapes(cfg: KernelConfig, n_nodes: int, n_sims: int, H: int, T: int, n_t: int, n_q: int) -> dict:
    """Device buffers of one chunk: name -> (shape, used); an unused buffer is allocated
    as a one-element placeholder of the same rank."""
    S, K, O, NCH = cfg.n_states, cfg.n_coupled, cfg.n_obs, cfg.n_coupled * cfg.n_pre
    N, B = n_nodes, n_sims
    slots, rows = _history_shape(cfg, H, T)
    stages = cfg.integrator != "euler"
    return {
        "xt": ((S, N, B), stages),
        "F": ((S, N, B), stages),
        "Z": ((S, N, B), bool(cfg.noisy)),
        "cpl": ((K, N, B), True),
        "EF": ((K, N, B), True),
        "E": ((NCH, N, slots, B), True),
        "D": ((rows, NCH, N, B), cfg.delays),
        "mon": ((O, N, B), cfg.monitor == MONITOR_TAVG),
        "bst": ((4, N, B), cfg.bold),
        "bacc": ((N, B), cfg.bold),
        "out_mon": ((n_t, O, N, B), cfg.monitor != MONITOR_NONE),
        "out_bold": ((n_q, N, B), cfg.bold),
    }


def bytes_per_sim(cfg: KernelConfig, n_nodes: int, n_params: int, H: int, T: int, n_t: int, n_q: int) -> int:
    """Device memory one simulation needs: state, parameters, buffers and outputs (bytes);
    ``H`` and ``T`` are the history ring's length and the block length (:class:`~.edges.EdgePlan`)."""
    elements = (cfg.n_states + n_params) * n_nodes  # x and P
    for shape, used in _buffer_shapes(cfg, n_nodes, 1, H, T, n_t, n_q).values():
        elements += math.prod(shape) if used else 0
    return elements * np.dtype(cfg.dtype).itemsize


def ptxas_path() -> str | None:
    """CUDA's PTX assembler: ``$CUDA_HOME/bin/ptxas``, else on the ``PATH``, else
    ``/usr/local/cuda/bin/ptxas``; None if there is none."""
    for candidate in (
        os.path.join(os.environ["CUDA_HOME"], "bin", "ptxas") if os.environ.get("CUDA_HOME") else None,
        shutil.which("ptxas"),
        "/usr/local/cuda/bin/ptxas",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def assemble(ptx: str, cc: tuple[int, int] = (9, 0), timeout_s: float = 300.0) -> dict:
    """Assemble ``ptx`` to machine code for ``sm_<cc>`` with ``ptxas -v``, as the driver
    would before loading it: ``{"ok", "error", "registers", "spill_stores", "spill_loads",
    "stack_bytes", "const_bytes"}`` (``const_bytes``: module-level constant data, which
    must fit CUDA's 64 KB constant bank)."""
    import subprocess
    import tempfile

    ptxas = ptxas_path()
    if ptxas is None:
        raise FileNotFoundError("ptxas not found: set CUDA_HOME or put CUDA's bin folder on the PATH")
    const = sum(int(m) for m in re.findall(r"^\.const .*?\[(\d+)\]", ptx, flags=re.M))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        run = subprocess.run(
            [ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", src, "-o", os.path.join(tmp, "kernel.cubin")],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    log = run.stdout + run.stderr

    def number(pattern: str) -> int | None:
        found = re.search(pattern, log)
        return int(found.group(1)) if found else None

    return {
        "ok": run.returncode == 0,
        "error": "" if run.returncode == 0 else " ".join(line for line in log.splitlines() if "error" in line)[:500],
        "registers": number(r"Used (\d+) registers"),
        "spill_stores": number(r"(\d+) bytes spill stores"),
        "spill_loads": number(r"(\d+) bytes spill loads"),
        "stack_bytes": number(r"(\d+) bytes stack frame"),
        "const_bytes": const,
    }


def _launch_args(inputs: dict, buf: dict, flat, step0: int, step1: int) -> tuple:
    """The shell's arguments: the inputs by :data:`INPUT_NAMES`, the buffers, the flat view
    of the history and the launch's steps (the order of ``integrate``'s signature)."""
    buffers = tuple(buf[name] for name in ("xt", "F", "Z", "cpl", "EF", "E"))
    return (
        *(inputs[name] for name in INPUT_NAMES),
        *buffers,
        flat,
        *(buf[name] for name in ("D", "mon", "bst", "bacc")),
        step0,
        step1,
    )


@contextmanager
def _compute_capability(cc: tuple[int, int]):
    """Device functions are compiled for the current device's compute capability
    (``numba.cuda.dispatcher`` asks the driver); here, for ``cc`` without a device."""
    from numba.cuda import dispatcher

    device = SimpleNamespace(compute_capability=cc)
    previous = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: device
    try:
        yield
    finally:
        dispatcher.get_current_device = previous


def _free_device_memory() -> int:
    try:
        free, _ = cuda.current_context().get_memory_info()
        return int(free)
    except Exception:  # no context information: assume a modest device
        return 4 << 30


class CudaKernel:
    """A generated CUDA shell with the CPU shell's call signature (host arrays in, host
    outputs filled in place): ``kernel(inputs)`` with a :class:`~.config.KernelInputs`."""

    def __init__(self, dispatcher, source: str, cfg: KernelConfig):
        self.dispatcher = dispatcher
        self.source = source
        self.cfg = cfg

    def ptx(self, inputs: KernelInputs, cc: tuple[int, int] = (9, 0)) -> str:
        """The shell's PTX for ``inputs``' argument types and compute capability ``cc``,
        compiled by NVVM with no GPU needed (Numba must find CUDA's libnvvm: a toolkit under
        ``CUDA_HOME`` or a system location such as ``/usr/local/cuda``). ``ptxas`` then shows whether it would
        load: registers, spills, constant memory (see ``bench/cuda_compile.py``)."""
        n_nodes, n_sims = inputs.x0.shape[1], inputs.x0.shape[2]
        n_t, n_q = inputs.out_mon.shape[0], inputs.out_bold.shape[0]
        shapes = _buffer_shapes(self.cfg, n_nodes, n_sims, inputs.H, inputs.T, n_t, n_q)
        dtype = np.dtype(self.cfg.dtype)
        buf = {name: np.empty(shape if used else (1,) * len(shape), dtype) for name, (shape, used) in shapes.items()}
        host = {name: getattr(inputs, name) for name in INPUT_NAMES}
        host.update(
            {name: np.ascontiguousarray(value) for name, value in host.items() if isinstance(value, np.ndarray)}
        )
        args = _launch_args(host, buf, buf["E"].reshape(-1), 0, 0)
        with _compute_capability(cc):
            text, _ = cuda.compile_ptx(self.dispatcher.py_func, tuple(numba.typeof(a) for a in args), cc=cc)
        return text

    def __call__(
        self,
        inputs: KernelInputs,
        *,
        threads_per_block: int | None = None,
        steps_per_launch: int | None = None,
        max_sims: int | None = None,
    ) -> None:
        """Run the batch; ``out_mon`` / ``out_bold`` (host arrays) receive the outputs.

        ``threads_per_block`` (default :data:`THREADS_PER_BLOCK`), ``steps_per_launch``
        (default :data:`STEPS_PER_LAUNCH`) and ``max_sims`` (simulations per launch chunk;
        default: as many as fit :data:`MEMORY_FRACTION` of the free device memory) change
        the schedule, not the results.
        """
        cfg = self.cfg
        x0, P, out_mon, out_bold = inputs.x0, inputs.P, inputs.out_mon, inputs.out_bold
        H, T, nsteps = inputs.H, inputs.T, inputs.nsteps
        threads_per_block = threads_per_block or THREADS_PER_BLOCK
        steps_per_launch = steps_per_launch or STEPS_PER_LAUNCH
        dtype = np.dtype(cfg.dtype)
        n_nodes, n_sims = x0.shape[1], x0.shape[2]
        n_t, n_q = out_mon.shape[0], out_bold.shape[0]
        if max_sims is None:
            per_sim = bytes_per_sim(cfg, n_nodes, P.shape[0], H, T, n_t, n_q)
            max_sims = int(MEMORY_FRACTION * _free_device_memory()) // per_sim
            if max_sims < 1:
                raise MemoryError(
                    f"one simulation needs {per_sim / 2**30:.2f} GiB of device memory "
                    f"(delay history of {H} steps, {n_t} + {n_q} output samples)"
                )
            if max_sims >= threads_per_block:
                max_sims -= max_sims % threads_per_block
        shared = (
            "indptr",
            "split",
            "indices",
            "weights",
            "back",
            "rowsum",
            "sigma",
            "bc",
            "stim",
            "tables",
        )  # every simulation's
        device = {name: cuda.to_device(np.ascontiguousarray(getattr(inputs, name))) for name in shared}
        for c0 in range(0, n_sims, max_sims):
            c1 = min(n_sims, c0 + max_sims)
            b = c1 - c0
            d_x = cuda.to_device(np.ascontiguousarray(x0[:, :, c0:c1], dtype=dtype))
            d_P = cuda.to_device(np.ascontiguousarray(P[:, :, c0:c1], dtype=dtype))
            buf = {
                name: cuda.device_array(shape if used else (1,) * len(shape), dtype=dtype)
                for name, (shape, used) in _buffer_shapes(cfg, n_nodes, b, H, T, n_t, n_q).items()
            }
            flat = buf["E"].reshape(buf["E"].size)  # the same memory, indexed flat by the block pass
            blocks = -(-b // threads_per_block)
            launch = self.dispatcher[blocks, threads_per_block]
            for step0 in range(0, nsteps, steps_per_launch):
                step1 = min(nsteps, step0 + steps_per_launch)
                chunk = {
                    **{name: getattr(inputs, name) for name in INPUT_NAMES},
                    **device,
                    "x0": d_x,
                    "P": d_P,
                    "sim0": np.uint64(inputs.sim0) + np.uint64(c0),
                    "out_mon": buf["out_mon"],
                    "out_bold": buf["out_bold"],
                }
                launch(*_launch_args(chunk, buf, flat, step0, step1))
            if cfg.monitor != MONITOR_NONE:
                out_mon[..., c0:c1] = buf["out_mon"].copy_to_host()
            if cfg.bold:
                out_bold[..., c0:c1] = buf["out_bold"].copy_to_host()
