"""The base install (``pip install .``, no extras) simulates and runs budgets, and training
names and commands fail with one line naming the 'train' extra.

Run by ``make test-base`` with the python of a venv holding only that install, from any
folder (it works in a temporary one, so ``vbi_dask`` comes from the install, not the
source tree). Not collected by pytest: the main venv has the extras. Kernels compile into
a fresh cache, as on a user's first run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="vbi-dask-base-"))
os.environ["VBI_DASK_CACHE_DIR"] = str(WORK / "kernels")  # before vbi_dask compiles anything

import numpy as np  # noqa: E402
import zarr  # noqa: E402

import vbi_dask as vd  # noqa: E402
from vbi_dask._extras import EXTRAS, MissingExtraError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRAIN_MESSAGE = (
    "vbi_dask.train needs the 'train' extra: pip install 'vbi-dask[train]' "
    "(missing: torch, lightning, sbi, matplotlib, markdown)"
)
COMMAND_MESSAGE = (
    "this command needs the 'train' extra: pip install 'vbi-dask[train]' "
    "(missing: torch, lightning, sbi, matplotlib, markdown)"
)
SLURM_MESSAGE = "cluster kind 'slurm' needs the 'slurm' extra: pip install 'vbi-dask[slurm]' (missing: dask-jobqueue)"
PRIOR_MESSAGE = "a prior other than Uniform needs the 'train' extra: pip install 'vbi-dask[train]' (missing: torch)"


def connectome() -> vd.Connectome:
    weights = np.full((4, 4), 0.25)
    np.fill_diagonal(weights, 0.0)
    return vd.Connectome(weights=weights, name="four")


def simulation() -> vd.Simulation:
    return vd.Simulation(
        "mpr", connectome=connectome(), dt_ms=0.1, duration_ms=300.0, monitors=(vd.TemporalAverage(10.0),)
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m vbi_dask.cli ARGS`` in the temporary folder."""
    return subprocess.run(
        [sys.executable, "-m", "vbi_dask.cli", *args], cwd=WORK, capture_output=True, text=True, timeout=300
    )


def check_installed_without_extras() -> None:
    package = Path(vd.__file__).resolve()
    assert not package.is_relative_to(REPO / "vbi_dask"), f"vbi_dask imported from the source tree: {package}"
    assert vd.__version__ == version("vbi-dask"), vd.__version__
    present = [m for modules in EXTRAS.values() for m in modules if importlib.util.find_spec(m) is not None]
    assert not present, f"the base install brought optional packages: {present}"


def check_simulation() -> None:
    """Finite output; a simulation's result does not depend on the batch it runs in."""
    sim = simulation()
    batch = sim.run({"G": [0.1, 0.3, 0.5]}, seed=3)
    assert batch["r"].shape == (3, 30, 4) and np.isfinite(batch["r"].values).all()
    alone = sim.run({"G": [0.5]}, seed=3, first_sim=2)
    assert np.array_equal(alone["r"].values[0], batch["r"].values[2])
    assert not np.array_equal(batch["r"].values[0], batch["r"].values[1])


def check_budget() -> Path:
    """A tiny budget, run twice into two stores with the synchronous scheduler: every block
    done, theta inside the prior, and the two stores bit-identical."""

    def run(name: str, progress: bool) -> Path:
        prior = vd.Prior({"G": (0.0, 0.5), "eta": {"low": -5.0, "high": -4.0, "nodes": [0, 2]}}, model="mpr", n_nodes=4)
        budget = vd.Budget(simulation(), prior, n_sims=10, features=["fc", "moments"], chunk_size=4, seed=5)
        summary = budget.run(WORK / name, scheduler="sync", progress=progress)
        assert summary.done == 10 and summary.failed == 0, summary
        return WORK / name

    first, second = run("a.zarr", progress=False), run("b.zarr", progress=True)
    a, b = zarr.open_group(str(first), mode="r"), zarr.open_group(str(second), mode="r")
    for name in ("theta", "features", "valid", "checksum", "done"):
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name][:].view(np.uint8), b[name][:].view(np.uint8)), f"{name} differs"
    theta = a["theta"][:]
    assert a["done"][:].all() and theta.shape == (10, 3)
    assert ((0.0 <= theta[:, 0]) & (theta[:, 0] <= 0.5)).all() and ((-5 <= theta[:, 1:]) & (theta[:, 1:] <= -4)).all()
    assert a["valid"][:].all() and np.isfinite(a["features"][:]).all()
    ds = vd.open_store(first)
    assert list(ds["param"].values) == ["G", "eta[0]", "eta[2]"]
    return first


def check_training_names_need_the_extra() -> None:
    for statement in ("import vbi_dask.train", "from vbi_dask.train import train_posterior"):
        try:
            exec(statement, {})
        except MissingExtraError as error:
            assert isinstance(error, ModuleNotFoundError) and str(error) == TRAIN_MESSAGE, (statement, str(error))
        else:
            raise AssertionError(f"{statement!r} worked without the train extra")
    try:
        vd.Prior({"G": {"dist": "Normal", "loc": 0.5, "scale": 0.1}}, model="mpr", n_nodes=4)
    except MissingExtraError as error:
        assert str(error) == PRIOR_MESSAGE, str(error)
    else:
        raise AssertionError("a Normal prior worked without torch")


def check_cli(store: Path) -> None:
    """Training commands and a missing cluster extra: exit 2, one line; --version and
    status work without the extras."""
    for command in ("train", "infer", "demo"):
        args = {"train": ["train", "x"], "infer": ["infer", "x", "--observed", "y"], "demo": ["demo"]}[command]
        out = cli(*args)
        expected = (2, "", f"vbi-dask {command}: error: {COMMAND_MESSAGE}\n")
        assert (out.returncode, out.stdout, out.stderr) == expected, out
    config = WORK / "budget.yaml"
    config.write_text(
        "model: mpr\nsimulation: {dt_ms: 0.1, duration_ms: 300.0}\nprior: {G: [0.0, 0.5]}\n"
        "n_sims: 4\nchunk_size: 4\nseed: 1\nfeatures: [moments]\n"
    )
    out = cli("simulate", str(config), "--store", str(WORK / "slurm.zarr"), "--cluster", "slurm", "--no-check")
    assert (out.returncode, out.stderr) == (2, f"vbi-dask simulate: error: {SLURM_MESSAGE}\n"), out
    assert not (WORK / "slurm.zarr").exists()
    out = subprocess.run(
        [str(Path(sys.executable).parent / "vbi-dask"), "--version"],
        capture_output=True,
        text=True,
        cwd=WORK,
        timeout=120,
    )
    assert (out.returncode, out.stdout) == (0, f"vbi-dask {version('vbi-dask')}\n"), out
    out = cli("status", str(store))
    assert out.returncode == 0 and "blocks done       3 / 3" in out.stdout, out
    assert "simulations done  10 / 10 (10 valid, 0 invalid" in out.stdout, out.stdout


def main() -> int:
    start = time.perf_counter()
    check_installed_without_extras()
    check_simulation()
    store = check_budget()
    check_training_names_need_the_extra()  # before anything imports vbi_dask.cli in this process
    check_cli(store)
    shutil.rmtree(WORK, ignore_errors=True)  # kept when a check fails
    print(
        f"base install ({vd.__version__}, no extras): import, simulation, budget (bit-identical twice), "
        f"training and cluster extras named in one line: all checks passed in {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
