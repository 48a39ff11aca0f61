"""Worker plugins for the fault tests (imported by name in the worker processes).

They wrap library functions in the worker process: a side channel that counts writes,
a log of which process computes which block, and a block that kills its worker.
"""

from __future__ import annotations

import os
import signal

from distributed.diagnostics.plugin import WorkerPlugin

from .conftest import append_line


class _Patch(WorkerPlugin):
    """Replace ``owner.attr`` by ``self.wrap(original)`` on setup; restore on teardown."""

    owner_path: str
    attr: str

    def _owner(self):
        module, _, cls = self.owner_path.partition(":")
        owner = __import__(module, fromlist=["_"])
        return getattr(owner, cls) if cls else owner

    def setup(self, worker=None):
        owner = self._owner()
        key = f"_original_{self.attr}"
        original = owner.__dict__.get(key) or getattr(owner, self.attr)
        setattr(owner, key, original)
        setattr(owner, self.attr, self.wrap(original))

    def teardown(self, worker=None):
        owner = self._owner()
        key = f"_original_{self.attr}"
        if key in owner.__dict__:
            setattr(owner, self.attr, owner.__dict__[key])
            delattr(owner, key)


class CountWrites(_Patch):
    """Append the block's start to ``log`` whenever a task begins writing a block."""

    owner_path, attr = "vbi_dask.store", "write_block"

    def __init__(self, log: str):
        self.log = log

    def wrap(self, original):
        log = self.log

        def write_block(path, start, stop, **arrays):
            append_line(log, str(start))
            return original(path, start, stop, **arrays)

        return write_block


class LogComputeStarts(_Patch):
    """Append ``pid:start`` to ``log`` when a worker starts computing a block."""

    owner_path, attr = "vbi_dask.budget:Budget", "compute_block"

    def __init__(self, log: str):
        self.log = log

    def wrap(self, original):
        log = self.log

        def compute_block(budget, start, stop):
            append_line(log, f"{os.getpid()}:{start}")
            return original(budget, start, stop)

        return compute_block


class PoisonBlock(_Patch):
    """The block starting at ``start`` kills its worker process (SIGKILL), every time."""

    owner_path, attr = "vbi_dask.budget:Budget", "compute_block"

    def __init__(self, start: int):
        self.start = start

    def wrap(self, original):
        poisoned = self.start

        def compute_block(budget, start, stop):
            if start == poisoned:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(budget, start, stop)

        return compute_block
