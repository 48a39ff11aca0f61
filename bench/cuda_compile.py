"""Every model's CUDA shell compiled to GPU machine code, with no GPU: NVVM -> PTX -> ptxas.

A kernel that the CUDA simulator runs may still fail on a GPU: the simulator executes
the Python source, so it never meets Numba's CUDA compiler (which refuses, e.g., the
builtin two-argument ``max`` since Numba 0.66, numba issue #10753), nor NVVM, nor
``ptxas`` (which refuses more than 64 KB of constant data, e.g. tables frozen into the
equations). This compiles each model's shell for ``sm_90`` (the H200) through all three
and reports, per model and dtype, the registers per thread, spills and stack from
``ptxas -v``. Needs CUDA's libnvvm and ptxas (a CUDA toolkit: ``CUDA_HOME``, or
``/usr/local/cuda``); no driver, no device.

    python bench/cuda_compile.py                     # every model, float32 and float64
    python bench/cuda_compile.py --dtype float32 --json --no-record

Exit status 1 if any shell fails to compile or assemble. Rows go to bench.jsonl
(``cuda.sass.<case>.registers``) unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _common import record


def cases(dtypes: list[str], models: list[str] | None = None) -> list[tuple[str, object]]:
    """(label, Simulation): each model with delays, every state noisy, temporal average
    and BOLD (the fullest shell), on the default connectome; and MPR's other integrators,
    monitors and a stimulus (the generator's other branches)."""
    from vbi_dask import Bold, Raw, Simulation, TemporalAverage, default_connectome
    from vbi_dask.models import MODELS
    from vbi_dask.stimulus import Pulses, Stimulus

    connectome = default_connectome().normalised("max")
    out = []
    for dtype in dtypes:
        for name in models or sorted(MODELS):
            model = MODELS[name]
            dt = model.dt_ms
            sim = Simulation(
                name,
                connectome=connectome,
                dt_ms=dt,
                duration_ms=20 * dt,
                noise={s.name: 1e-3 for s in model.states},
                speed_mm_per_ms=10.0,
                monitors=(TemporalAverage(4 * dt), Bold(tr_ms=20 * dt, dt_ms=5 * dt)),
                dtype=dtype,
            )
            out.append((f"{name}.{dtype}", sim))
        if models is None or "mpr" in models:
            dt = MODELS["mpr"].dt_ms
            base = dict(connectome=connectome, dt_ms=dt, duration_ms=20 * dt, dtype=dtype)
            out += [
                (f"mpr.euler.raw.{dtype}", Simulation("mpr", integrator="euler", monitors=(Raw(dt),), **base)),
                (
                    f"mpr.rk4.{dtype}",
                    Simulation(
                        "mpr", integrator="rk4", noise={"r": 0.0, "v": 0.0}, monitors=(TemporalAverage(dt),), **base
                    ),
                ),
                (
                    f"mpr.stimulus.{dtype}",
                    Simulation(
                        "mpr",
                        monitors=(Raw(dt),),
                        stimulus=Stimulus(Pulses(onset_ms=dt, width_ms=dt, period_ms=5 * dt), state="r", nodes=[0]),
                        **base,
                    ),
                ),
            ]
    return out


def compile_case(sim, cc: tuple[int, int]) -> dict:
    from vbi_dask.kernels import cuda as kcuda

    t0 = time.perf_counter()
    try:
        ptx = kcuda.build_kernel(sim.kernel_config()).ptx(sim.kernel_inputs(n_sims=1), cc=cc)
    except Exception as err:  # a compiler error is the finding: report it, go on
        return {"ok": False, "stage": "numba/nvvm", "error": f"{type(err).__name__}: {str(err)[:400]}"}
    t1 = time.perf_counter()
    report = kcuda.assemble(ptx, cc)
    report.update(stage="ptxas" if not report["ok"] else "", nvvm_s=round(t1 - t0, 2))
    report["ptxas_s"] = round(time.perf_counter() - t1, 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"], help="repeatable; default both")
    parser.add_argument("--model", action="append", help="repeatable; default every registered model")
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0: H100/H200)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case on stdout")
    parser.add_argument("--no-record", action="store_true", help="do not append rows to bench.jsonl")
    args = parser.parse_args()
    from vbi_dask.kernels.cuda import ptxas_path

    if ptxas_path() is None:
        print("cuda_compile: ptxas not found (set CUDA_HOME to a CUDA toolkit); nothing compiled", file=sys.stderr)
        return 2
    cc = tuple(int(x) for x in args.cc.split("."))
    failed = 0
    for label, sim in cases(args.dtype or ["float32", "float64"], args.model):
        report = {"case": label, "cc": args.cc, **compile_case(sim, cc)}
        failed += not report["ok"]
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            status = "ok" if report["ok"] else f"FAILED ({report['stage']}): {report['error']}"
            print(
                f"{label:28s} registers {report.get('registers')!s:>4}  spills {report.get('spill_stores')!s:>4} B"
                f"  stack {report.get('stack_bytes')!s:>4} B  const {report.get('const_bytes')!s:>6} B  {status}",
                flush=True,
            )
        if not args.no_record and report["ok"]:
            record(
                f"cuda.sass.{label}.registers",
                report["registers"],
                "registers/thread",
                cc=args.cc,
                spill_stores_bytes=report["spill_stores"],
                spill_loads_bytes=report["spill_loads"],
                stack_bytes=report["stack_bytes"],
                const_bytes=report["const_bytes"],
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
