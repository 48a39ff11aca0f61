"""Fixtures shared by the test packages."""

from __future__ import annotations

import pytest

from vbi_dask import store as _store

from tests.budget.conftest import append_line


@pytest.fixture
def count_writes(monkeypatch, tmp_path):
    """Log the start of every block written in this process."""
    log = tmp_path / "writes.log"
    original = _store.write_block

    def counted(path, start, stop, **arrays):
        append_line(log, str(start))
        return original(path, start, stop, **arrays)

    monkeypatch.setattr(_store, "write_block", counted)
    return log
