"""Every model's CUDA shell compiles to GPU machine code (sm_90), without a GPU.

The CUDA simulator runs the shells' Python source and so never meets Numba's CUDA
compiler, NVVM or ptxas. Before this check, no shell compiled with Numba 0.68's CUDA
target (the builtin two-argument min/max, numba issue #10753, and ``np.sqrt`` in the
generator), and ALN's transfer tables (269 KB, frozen as constants) exceeded the 64 KB
constant bank that ptxas allows. Needs a CUDA toolkit (libnvvm and ptxas); skipped
where there is none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vbi_dask.kernels.cuda import ptxas_path
from vbi_dask.models import MODELS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(ptxas_path() is None, reason="no CUDA toolkit (ptxas, libnvvm) on this machine")


def test_every_model_compiles_and_assembles_for_sm90():
    """float32 (the GPU's dtype): NVVM -> PTX -> ptxas, in a process of its own (the
    compile-only path replaces Numba's device query). No module-level constant data (the
    tables travel as kernel inputs, in global memory)."""
    run = subprocess.run(
        [sys.executable, "bench/cuda_compile.py", "--dtype", "float32", "--json", "--no-record"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    reports = {r["case"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert set(reports) >= {f"{name}.float32" for name in MODELS}, run.stderr[-2000:]
    failed = {case: f"{r['stage']}: {r['error']}" for case, r in reports.items() if not r["ok"]}
    assert not failed, failed
    assert run.returncode == 0, run.stderr[-2000:]
    for case, r in reports.items():
        assert r["const_bytes"] < 64 * 1024, (case, r["const_bytes"])
        assert 0 < r["registers"] <= 255, (case, r["registers"])
