import sys

import pytest

from tests.gpu import SIMULATOR


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    """The simulator runs every thread of a block as a Python thread: one block of 32."""
    if SIMULATOR:
        from vbi_dask.kernels import cuda

        monkeypatch.setattr(cuda, "THREADS_PER_BLOCK", 32)


@pytest.fixture(autouse=True)
def _warning_registries(monkeypatch):
    """Give every module whose functions the simulator runs its ``__warningregistry__``.

    At each device-function call the simulator iterates the function's module globals
    (to swap its ``cuda`` for a fake one) while other threads run. The first warning that
    code of a module raises (NumPy's float32 overflow in a model's ``math.exp``, say)
    inserts ``__warningregistry__`` into those globals, and an iteration in another thread
    fails with "dictionary changed size during iteration". With the key present, a
    warning only updates the registry itself.
    """
    if not SIMULATOR:
        return
    from vbi_dask.kernels import _codegen

    for name, module in list(sys.modules.items()):
        if name.startswith("vbi_dask") and module is not None:
            vars(module).setdefault("__warningregistry__", {})
    load_shell = _codegen.load_shell

    def seeded(*args, **kwargs):
        namespace = load_shell(*args, **kwargs)
        namespace.setdefault("__warningregistry__", {})
        return namespace

    monkeypatch.setattr(_codegen, "load_shell", seeded)
