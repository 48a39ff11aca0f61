"""CUDA kernel tests: on a GPU, or on the CPU through Numba's CUDA simulator.

The simulator must be enabled before Numba is imported, so these tests run in their own
process: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/gpu`` (``tests/gpu/run_cudasim.sh``).
In the main test run, without a GPU, they are skipped.
"""

import pytest
from numba.core import config as _numba_config

from vbi_dask.backend import cuda_available

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)
SKIP_REASON = (
    "needs a CUDA GPU or Numba's CUDA simulator: run `NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/gpu` "
    "(tests/gpu/run_cudasim.sh); the variable must be set before numba is imported"
)
requires_cuda = pytest.mark.skipif(not (SIMULATOR or cuda_available()), reason=SKIP_REASON)
