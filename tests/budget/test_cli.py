"""The command line: a driver killed mid-budget resumes to the same store; bad input."""

from __future__ import annotations

import os
import re
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
from vbi_dask.budget import Budget, budget_from_config
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


def one_line_error(capsys, command: str = "simulate") -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"vbi-dask {command}: error: "), err
    return err.strip()


def test_configuration_and_path_errors_are_one_line_usage_errors(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: mpr\nprior:\n  G: [0.0, 1.0\nn_sims: 8\n")
    assert main(["simulate", str(bad), "--store", str(store)]) == 2
    assert one_line_error(capsys) == (f"vbi-dask simulate: error: {bad}: invalid YAML at line 4, column 7: "
                                      "expected ',' or ']', but got ':'")
    bad.write_text("model: mpr\n  seed: 1\n")
    assert main(["simulate", str(bad), "--store", str(store)]) == 2
    assert "invalid YAML at line 2, column 7: mapping values are not allowed here" in one_line_error(capsys)
    assert main(["simulate", str(tmp_path), "--store", str(store)]) == 2
    assert f"configuration {str(tmp_path)!r} is a directory, not a file" in one_line_error(capsys)
    assert main(["simulate", str(tmp_path / "none.yaml"), "--store", str(store)]) == 2
    assert "does not exist" in one_line_error(capsys)
    config = write_config(tmp_path)
    assert main(["simulate", str(config), "--store", str(store), "--cluster-config", str(tmp_path)]) == 2
    assert f"--cluster-config {str(tmp_path)!r} is a directory" in one_line_error(capsys)

    folder = tmp_path / "connectome"
    folder.mkdir()
    config = write_config(tmp_path, connectome=str(folder))
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync"]) == 2
    assert f"connectome path {folder} is a directory, not a TVB connectome zip file" in one_line_error(capsys)
    config = write_config(tmp_path, connectome={"weights": "connectome", "normalise": "none"})
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync"]) == 2
    assert f"connectome path {folder} is a directory, not a weights" in one_line_error(capsys)
    assert not store.exists()

    for argv in (["--debug", "simulate", str(config)], ["simulate", str(config), "--debug"]):
        assert main(argv + ["--store", str(store)]) == 2  # still a usage error, with the traceback
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and "IsADirectoryError" in err
        assert err.strip().splitlines()[-1].startswith("vbi-dask simulate: error: connectome path")


def test_failure_while_running_is_exit_1_with_one_line(tmp_path, capsys, monkeypatch):
    """A ValueError or OSError raised by a library while the budget runs is a failure of the
    run (1), not a usage error (2) as it would be while reading the configuration."""
    config = write_config(tmp_path)
    for error in (OSError(28, "No space left on device"), ValueError("Expected parameter loc to be finite")):
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(Budget, "run", fail)
        assert main(["simulate", str(config), "--store", str(tmp_path / "s.zarr"), "--scheduler", "sync",
                     "--no-check"]) == 1
        err = capsys.readouterr().err
        assert err == f"vbi-dask simulate: failed: {type(error).__name__}: {error}\n"
        assert main(["--debug", "simulate", str(config), "--store", str(tmp_path / "s.zarr"), "--scheduler",
                     "sync", "--no-check"]) == 1
        assert capsys.readouterr().err.startswith("Traceback")


def test_ctrl_c_says_how_many_blocks_are_done_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) after the first block:
    one line naming the done simulations and blocks, no traceback, and the count is the store's."""
    config = write_config(tmp_path)
    path = tmp_path / "interrupted.zarr"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "vbi_dask.cli", "simulate", str(config), "--store", str(path), "--scheduler", "sync",
         "--quiet", "--no-check"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                done = zarr.open_group(str(path), mode="r")["done"][:]
            except (FileNotFoundError, KeyError, ValueError):
                done = np.zeros(0, dtype=bool)
            if done.sum() >= 8:
                os.killpg(process.pid, signal.SIGINT)
                break
            time.sleep(0.02)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    match = re.fullmatch(r"vbi-dask simulate: interrupted: (\d+) of 64 simulations \((\d+) of 8 blocks\) of (.+) are "
                         r"done; run the same command again to resume\n", err)
    assert match, err
    done = store_module.read_done(path)
    assert 8 <= int(match[1]) == done.sum() < 64 and int(match[2]) == int(match[1]) // 8
    assert Path(match[3]) == path


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "vbi_dask.cli", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0 and "simulate" in out.stdout
