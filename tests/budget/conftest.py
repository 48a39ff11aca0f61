"""Shared pieces of the budget tests: one small network, two simulation lengths of one
kernel configuration (compiled once, then served from the on-disk kernel cache)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from vbi_dask import Bold, Connectome, Simulation, TemporalAverage
from vbi_dask.budget import Budget
from vbi_dask.prior import Prior

N_NODES = 6
FEATURES = ["fc", {"name": "fcd", "window_samples": 5, "step_samples": 2}, "moments", {"name": "psd", "nperseg": 8}]
SIM_VARIABLES = ("theta", "features", "valid", "checksum", "done", "bold")


def connectome() -> Connectome:
    rng = np.random.default_rng(11)
    weights = rng.uniform(0.0, 1.0, (N_NODES, N_NODES))
    np.fill_diagonal(weights, 0.0)
    lengths = rng.uniform(10.0, 80.0, (N_NODES, N_NODES))
    return Connectome(weights=weights / weights.max(), tract_lengths_mm=(lengths + lengths.T) / 2, name="tiny")


def connectome_config(folder) -> dict:
    """:func:`connectome` written as text files into ``folder``, and the configuration's
    ``connectome`` section that reads them (paths relative to ``folder``)."""
    c = connectome()
    np.savetxt(Path(folder) / "w.txt", c.weights)
    np.savetxt(Path(folder) / "l.txt", c.tract_lengths_mm)
    return {"weights": "w.txt", "tract_lengths": "l.txt", "normalise": "none", "name": "tiny"}


def simulation(duration_ms: float = 2000.0) -> Simulation:
    """MPR, 6 nodes, dt 0.1 ms, temporal average + BOLD (TR 100 ms): one kernel for every test."""
    return Simulation(
        "mpr",
        connectome=connectome(),
        dt_ms=0.1,
        duration_ms=duration_ms,
        monitors=(TemporalAverage(10.0), Bold(tr_ms=100.0)),
    )


def prior(**overrides) -> Prior:
    spec = {"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}, **overrides}
    return Prior(spec, model="mpr", n_nodes=N_NODES)


def budget(
    n_sims: int = 40,
    chunk_size: int = 8,
    *,
    duration_ms: float = 2000.0,
    seed: int = 7,
    keep_bold: bool = True,
    **prior_overrides,
) -> Budget:
    return Budget(
        simulation(duration_ms),
        prior(**prior_overrides),
        n_sims=n_sims,
        features=FEATURES,
        chunk_size=chunk_size,
        seed=seed,
        keep_bold=keep_bold,
    )


def read_store(path) -> dict[str, np.ndarray]:
    """Every variable with a sim dim, read through zarr (no caching layers)."""
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in SIM_VARIABLES if name in group}


def assert_same_data(a, b) -> None:
    """Bit-for-bit equality of the simulation variables of two stores (NaN == NaN)."""
    x, y = read_store(a), read_store(b)
    assert sorted(x) == sorted(y)
    for name in x:
        assert x[name].dtype == y[name].dtype, name
        assert x[name].shape == y[name].shape, name
        assert np.array_equal(x[name].view(np.uint8), y[name].view(np.uint8)), f"{name} differs"


def tree(path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``path``."""
    root = Path(path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def append_line(path, text: str) -> None:
    """Append one line atomically (O_APPEND): a side channel that many processes share."""
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def read_lines(path) -> list[str]:
    return Path(path).read_text().split() if Path(path).exists() else []


@pytest.fixture(scope="session")
def reference_store(tmp_path_factory):
    """The 40-simulation budget of :func:`budget`, run once with the synchronous scheduler."""
    path = tmp_path_factory.mktemp("reference") / "ref.zarr"
    summary = budget().run(path, scheduler="sync", progress=False)
    assert summary.done == 40
    return path


SLOW_MS = 50_000.0  # ~0.5 s per block of <= 16 simulations: long enough to kill mid-run


def slow_budget(chunk_size: int = 8) -> Budget:
    return budget(n_sims=64, chunk_size=chunk_size, duration_ms=SLOW_MS, keep_bold=False)


@pytest.fixture(scope="session")
def slow_reference(tmp_path_factory):
    """:func:`slow_budget` run uninterrupted with the synchronous scheduler."""
    path = tmp_path_factory.mktemp("slow") / "slow.zarr"
    assert slow_budget().run(path, scheduler="sync", progress=False).done == 64
    return path


def store_done(path) -> np.ndarray:
    """The store's ``done`` flags, or an empty array while it does not exist yet."""
    try:
        return zarr.open_group(str(path), mode="r")["done"][:]
    except (FileNotFoundError, KeyError, ValueError):
        return np.zeros(0, dtype=bool)


def run_in_thread(budget_, path, client):
    """Run ``budget_`` on ``client`` in a thread: (thread, result) where ``result`` gets
    ``summary`` or ``error``."""
    result = {}

    def target():
        try:
            result["summary"] = budget_.run(path, scheduler=client, progress=False)
        except BaseException as error:  # noqa: BLE001 - surfaced by the test
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result
