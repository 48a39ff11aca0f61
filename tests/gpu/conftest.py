import pytest

from tests.gpu import SIMULATOR


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    """The simulator runs every thread of a block as a Python thread: one block of 32."""
    if SIMULATOR:
        from vbi_dask.kernels import cuda

        monkeypatch.setattr(cuda, "THREADS_PER_BLOCK", 32)
