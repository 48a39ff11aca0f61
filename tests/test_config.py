"""Package settings through dask.config (vbi_dask.*), with the environment as override."""

from __future__ import annotations

import dask
import pytest

from vbi_dask import _config
from vbi_dask.kernels import _codegen

from .budget.conftest import budget


def test_budget_chunk_size_defaults_to_the_setting():
    assert budget(chunk_size=None).chunk_size == 64
    with dask.config.set({"vbi_dask.chunk-size": 24}):
        assert budget(chunk_size=None).chunk_size == 24
        assert budget(chunk_size=8).chunk_size == 8  # given: the setting does not apply
    with dask.config.set({"vbi_dask.chunk-size": 0}), pytest.raises(ValueError, match="chunk_size must be a positive"):
        budget(chunk_size=None)


def test_kernel_cache_folder_from_the_setting_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("VBI_DASK_CACHE_DIR", raising=False)
    with dask.config.set({"vbi_dask.cache-dir": str(tmp_path / "setting")}):
        assert _codegen.cache_dir() == tmp_path / "setting"
        monkeypatch.setenv("VBI_DASK_CACHE_DIR", str(tmp_path / "env"))
        assert _codegen.cache_dir() == tmp_path / "env"  # the documented override
    assert (tmp_path / "setting").is_dir() and (tmp_path / "env").is_dir()


def test_unknown_settings_are_named():
    assert _config.get("store-lease") == 120.0
    with pytest.raises(KeyError, match="unknown vbi_dask setting 'chunk_sizes'; valid: cache-dir, chunk-size"):
        _config.get("chunk_sizes")
