"""The command line: a driver killed mid-budget resumes to the same store; bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from vbi_dask import store as store_module
from vbi_dask.budget import budget_from_config
from vbi_dask.cli import main

from .conftest import FEATURES, SLOW_MS, append_line, connectome, read_lines, slow_budget, tree

ROOT = Path(__file__).parents[2]


def write_config(folder: Path, **overrides) -> Path:
    """The YAML of :func:`slow_budget`, with the connectome in text files."""
    c = connectome()
    np.savetxt(folder / "weights.txt", c.weights)
    np.savetxt(folder / "lengths.txt", c.tract_lengths_mm)
    config = {
        "model": "mpr",
        "connectome": {"weights": "weights.txt", "tract_lengths": "lengths.txt", "normalise": "none", "name": "tiny"},
        "simulation": {"dt_ms": 0.1, "duration_ms": SLOW_MS,
                       "monitors": {"temporal_average": {"period_ms": 10.0}, "bold": {"tr_ms": 100.0}}},
        "prior": {"G": [0.0, 1.0], "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}},
        "n_sims": 64, "chunk_size": 8, "seed": 7, "features": FEATURES, "keep_bold": False,
        **overrides,
    }
    path = folder / "budget.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_config_file_describes_the_slow_budget(tmp_path):
    config = write_config(tmp_path)
    assert budget_from_config(yaml.safe_load(config.read_text()), base_dir=tmp_path).attrs() == slow_budget().attrs()


@pytest.mark.slow
def test_driver_killed_mid_budget_resumes_to_the_same_store(tmp_path, slow_reference, monkeypatch):
    config = write_config(tmp_path)
    path = tmp_path / "driver.zarr"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "vbi_dask.cli", "simulate", str(config), "--store", str(path), "--scheduler", "sync",
         "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done_before = np.zeros(0, dtype=bool)
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                done_before = zarr.open_group(str(path), mode="r")["done"][:]
            except (FileNotFoundError, KeyError, ValueError):
                pass
            if done_before.sum() >= 16:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    done_before = zarr.open_group(str(path), mode="r")["done"][:]
    assert 16 <= done_before.sum() < 64

    log = tmp_path / "writes.log"
    original = store_module.write_block

    def counted(store, start, stop, **arrays):
        append_line(log, str(start))
        return original(store, start, stop, **arrays)

    monkeypatch.setattr(store_module, "write_block", counted)
    assert main(["simulate", str(config), "--store", str(path), "--scheduler", "sync", "--quiet"]) == 0
    missing = sorted({s for s in range(0, 64, 8) if not done_before[s:s + 8].all()})
    assert sorted(int(s) for s in read_lines(log)) == missing  # only the missing blocks ran
    assert tree(path) == tree(slow_reference)  # bit for bit, metadata included


def test_cli_reports_bad_input_without_touching_the_store(tmp_path, capsys, reference_store):
    config = write_config(tmp_path, prior={"Gx": [0.0, 1.0]})
    assert main(["simulate", str(config), "--store", str(tmp_path / "s.zarr"), "--scheduler", "sync"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'Gx'" in err and "valid parameters" in err
    assert not (tmp_path / "s.zarr").exists()

    config = write_config(tmp_path, chunk_size=0)
    assert main(["simulate", str(config), "--store", str(tmp_path / "s.zarr")]) == 2
    assert "chunk_size must be a positive integer, got 0" in capsys.readouterr().err

    file = tmp_path / "file.zarr"
    file.write_text("precious")
    config = write_config(tmp_path)
    assert main(["simulate", str(config), "--store", str(file), "--scheduler", "sync"]) == 2
    assert "is a file" in capsys.readouterr().err and file.read_text() == "precious"

    before = tree(reference_store)
    assert main(["simulate", str(config), "--store", str(reference_store), "--scheduler", "sync"]) == 2
    assert "another budget configuration" in capsys.readouterr().err
    assert tree(reference_store) == before


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "vbi_dask.cli", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0 and "simulate" in out.stdout
