"""vbi_dask._extras: each extra of pyproject.toml provides the modules vbi-dask imports from
it, and a missing one is one line naming the extra. The base install itself (a venv with
no extras) is checked by tests/base_install/check_base.py (`make test-base`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vbi_dask._extras import EXTRAS, MissingExtraError, deferred, require

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", r).group(0).lower() for r in requirements}


def test_extras_match_pyproject():
    optional = PROJECT["optional-dependencies"]
    base = _names(PROJECT["dependencies"])
    for extra, modules in EXTRAS.items():
        for module in modules:
            assert module.replace("_", "-") in _names(optional[extra]), (extra, module)
            assert module.replace("_", "-") not in base, f"{module} is in the base install"
    assert "torch>=2.4" in optional["train"]
    assert {"vbi-dask[train]"} <= _names(optional["dev"]) and {"vbi-dask[train]"} <= _names(optional["notebooks"])
    assert {"numpy", "numba", "scipy", "xarray", "zarr", "dask[array]", "distributed", "pyyaml", "tqdm"} == base


def test_require_names_the_extra_and_what_is_missing(monkeypatch):
    require("train", "training")  # installed here
    monkeypatch.setitem(sys.modules, "sbi", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError) as info:
        require("train", "training")
    assert str(info.value) == (
        "training needs the 'train' extra: pip install 'vbi-dask[train]' (missing: sbi, matplotlib)"
    )
    assert isinstance(info.value, ModuleNotFoundError) and info.value.name == "sbi"
    with deferred("train"):
        require("train", "training")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(
        MissingExtraError,
        match=r"^x needs the 'slurm' extra: pip install 'vbi-dask\[slurm\]' "
        r"\(missing: dask-jobqueue\)$",
    ):
        require("slurm", "x")
    with pytest.raises(MissingExtraError):  # deferral ended
        require("train", "training")


def test_training_names_without_torch_fail_with_one_line():
    """In a process where torch cannot be imported: the package, a name from it, and the
    same after vbi_dask.cli loaded the training commands' parsers without torch."""
    code = """
import sys
sys.modules["torch"] = None  # as if not installed
from vbi_dask._extras import MissingExtraError
for statement in ("import vbi_dask.train", "from vbi_dask.train import train_posterior", "import vbi_dask.cli",
                  "from vbi_dask.train import heldout"):
    try:
        exec(statement)
        print(statement, "-> ok")
    except MissingExtraError as error:
        print(statement, "->", error)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    message = "vbi_dask.train needs the 'train' extra: pip install 'vbi-dask[train]' (missing: torch)"
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"import vbi_dask.train -> {message}",
        f"from vbi_dask.train import train_posterior -> {message}",
        "import vbi_dask.cli -> ok",
        f"from vbi_dask.train import heldout -> {message}",
    ]


def test_priors_other_than_uniform_need_torch(monkeypatch):
    from vbi_dask import Prior

    monkeypatch.setitem(sys.modules, "torch", None)
    assert Prior({"G": (0.0, 1.0)}, model="mpr", n_nodes=4).sample(3, seed=1).shape == (3, 1)
    with pytest.raises(
        MissingExtraError,
        match=r"^a prior other than Uniform needs the 'train' extra: pip install "
        r"'vbi-dask\[train\]' \(missing: torch\)$",
    ):
        Prior({"G": {"dist": "Normal", "loc": 0.5, "scale": 0.1}}, model="mpr", n_nodes=4)
