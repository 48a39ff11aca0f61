#!/bin/sh
# The CUDA kernel tests on the CPU, through Numba's CUDA simulator (no GPU needed).
# NUMBA_ENABLE_CUDASIM must be in the environment before numba is imported, hence a
# separate pytest process. They reuse the CPU kernels that the main test run cached.
set -e
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
NUMBA_ENABLE_CUDASIM=1 exec "$PY" -m pytest -q tests/gpu "$@"
