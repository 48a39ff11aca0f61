"""One writer per store (real processes), and damage that verify finds and a re-run repairs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vbi_dask.cli import main
from vbi_dask.store import StoreDamagedError, StoreLock, StoreLockedError, read_done, row_checksums, verify

from tests._processes import signal_when

from .conftest import assert_same_data, budget, slow_budget, store_done

ROOT = Path(__file__).parents[2]

DRIVER = """
import os, sys, time
from pathlib import Path
from tests.budget.conftest import slow_budget
from vbi_dask.store import StoreLockedError

store, barrier, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(barrier / str(os.getpid())).touch()
deadline = time.monotonic() + 120
while len(list(barrier.iterdir())) < n and time.monotonic() < deadline:
    time.sleep(0.002)
try:
    summary = slow_budget().run(store, scheduler="sync", progress=False)
except StoreLockedError as error:
    print("REFUSED", error, flush=True)
    sys.exit(3)
print("RAN", summary.ran, flush=True)
"""


def start_drivers(tmp_path: Path, store: Path, n: int) -> list[subprocess.Popen]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, str(script), str(store), str(barrier), str(n)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


@pytest.mark.slow
def test_two_drivers_started_together_one_runs_the_other_is_refused(tmp_path, slow_reference):
    path = tmp_path / "shared.zarr"
    drivers = start_drivers(tmp_path, path, 2)
    outputs = [driver.communicate(timeout=300) for driver in drivers]
    codes = [driver.returncode for driver in drivers]
    assert sorted(codes) == [0, 3], outputs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert outputs[winner][0].strip() == "RAN 64"
    refusal = outputs[loser][0]
    assert "being written by another driver" in refusal
    assert f"host {socket.gethostname()}, pid {drivers[winner].pid}, since " in refusal
    assert_same_data(path, slow_reference)
    assert not Path(str(path) + ".lock").exists()  # released


@pytest.mark.slow
def test_a_claim_left_by_a_killed_driver_is_taken_over(tmp_path, slow_reference):
    path = tmp_path / "killed.zarr"
    (driver,) = start_drivers(tmp_path, path, 1)
    _, stderr = signal_when(driver, lambda: store_done(path).sum() >= 8, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL, stderr[-2000:]
    claim = json.loads(Path(str(path) + ".lock").read_text())
    assert claim["pid"] == driver.pid and claim["host"] == socket.gethostname()
    done_before = int(store_done(path).sum())
    assert 8 <= done_before < 64

    summary = slow_budget().run(path, scheduler="sync", progress=False)
    assert summary.ran == 64 - done_before and summary.done == 64
    assert_same_data(path, slow_reference)
    assert not Path(str(path) + ".lock").exists()


def write_claim(store: Path, host: str, pid: int, age_s: float) -> Path:
    lock = Path(str(store) + ".lock")
    lock.write_text(json.dumps({"host": host, "pid": pid, "started": "2026-11-30 06:00:00 UTC", "token": "t0"}))
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


def test_a_claim_from_another_host_holds_until_its_lease_ends(tmp_path, reference_store):
    path = tmp_path / "nfs.zarr"
    lock = write_claim(path, "node-b", 4242, age_s=10)
    with pytest.raises(StoreLockedError, match=r"host node-b, pid 4242, since 2026-11-30 06:00:00 UTC"):
        budget().run(path, scheduler="sync", progress=False)
    assert not path.exists() and lock.exists()  # nothing touched
    write_claim(path, "node-b", 4242, age_s=10)
    with pytest.raises(StoreLockedError):  # 10 s old: stale only under a shorter lease
        StoreLock(path, lease_s=60).acquire()
    with StoreLock(path, lease_s=5) as claim:
        assert json.loads(lock.read_text())["token"] == claim.claim["token"]
    assert not lock.exists()

    write_claim(path, "node-b", 4242, age_s=1000)  # its driver stopped refreshing long ago
    assert budget().run(path, scheduler="sync", progress=False).done == 40
    assert_same_data(path, reference_store)
    assert not lock.exists()


def test_a_claim_this_module_did_not_write_is_never_taken_over(tmp_path):
    lock = Path(str(tmp_path / "s.zarr") + ".lock")
    lock.write_text("someone's notes")
    os.utime(lock, (0, 0))
    with pytest.raises(StoreLockedError, match="being written by another driver"):
        StoreLock(tmp_path / "s.zarr", lease_s=1).acquire()
    assert lock.read_text() == "someone's notes"


def test_a_driver_that_loses_its_claim_notices(tmp_path):
    claim = StoreLock(tmp_path / "s.zarr", lease_s=0.2).acquire()
    try:
        write_claim(tmp_path / "s.zarr", "node-c", 7, age_s=0)  # taken over behind its back
        deadline = time.monotonic() + 5
        while claim.lost is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(StoreLockedError, match="lost its claim .*host node-c, pid 7"):
            claim.check()
    finally:
        claim.release()
    assert json.loads(Path(str(tmp_path / "s.zarr") + ".lock").read_text())["host"] == "node-c"  # left to its holder


def test_row_checksums_cover_every_stored_byte_and_the_index():
    rng = np.random.default_rng(0)
    theta, x = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    valid = np.array([True, False, True])
    base = row_checksums(16, theta=theta, features=x, valid=valid)
    assert base.dtype == np.uint64 and len(set(base.tolist())) == 3
    assert np.array_equal(base, row_checksums(16, theta=theta.copy(), features=x.copy(), valid=valid.copy()))
    assert not np.any(row_checksums(17, theta=theta, features=x, valid=valid) == base)
    flipped = x.copy()
    flipped.view(np.uint32)[1, 2] ^= 1  # one bit of one feature
    changed = row_checksums(16, theta=theta, features=flipped, valid=valid) != base
    assert changed.tolist() == [False, True, False]
    assert (row_checksums(16, theta=theta, features=x, valid=~valid) != base).all()


def damage(path: Path, variable: str, block: int, how: str) -> None:
    chunk = path / variable / "c" / str(block)
    files = [p for p in chunk.rglob("*") if p.is_file()] if chunk.is_dir() else [chunk]
    for file in files:
        if how == "delete":
            file.unlink()
        else:
            data = file.read_bytes()
            file.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "variable, how, block",
    [("features", "delete", 2), ("theta", "truncate", 1), ("bold", "truncate", 4), ("checksum", "delete", 0)],
)
def test_damage_is_found_repaired_by_a_rerun_bit_identical(tmp_path, reference_store, variable, how, block, capsys):
    path = tmp_path / "damaged.zarr"
    shutil.copytree(reference_store, path)
    assert verify(path).ok and verify(path).checked_blocks == 5
    damage(path, variable, block, how)

    report = verify(path)
    assert not report.ok and report.damaged_blocks == [block]
    expected = {
        "delete": f"'{variable}' read as the fill value: chunk missing",
        "truncate": f"'{variable}' cannot be read",
    }
    assert expected[how] in str(report), str(report)
    assert main(["verify", str(path)]) == 1
    assert f"block {block} (simulations [{8 * block}, {8 * block + 8}))" in capsys.readouterr().out

    assert main(["verify", str(path), "--repair"]) == 0
    assert "re-run the budget" in capsys.readouterr().out
    done = read_done(path)
    assert not done[8 * block : 8 * block + 8].any() and done.sum() == 32
    summary = budget().run(path, scheduler="sync", progress=False)
    assert summary.ran == 8
    assert_same_data(path, reference_store)
    assert verify(path).ok


def test_training_refuses_damaged_rows_naming_them(tmp_path, reference_store):
    from vbi_dask.train import train_posterior
    from vbi_dask.train.data import StoreData

    missing = tmp_path / "missing.zarr"
    shutil.copytree(reference_store, missing)
    damage(missing, "features", 2, "delete")
    with pytest.raises(
        StoreDamagedError,
        match=r"simulations \[\d+.* in block \[16, 24\)\) are marked done and "
        r"valid but hold non-finite",
    ):
        StoreData(missing, validation_fraction=0.2).zscore()
    with pytest.raises(StoreDamagedError, match=r"in block \[16, 24\)"):
        train_posterior(missing, max_epochs=1)

    truncated = tmp_path / "truncated.zarr"
    shutil.copytree(reference_store, truncated)
    damage(truncated, "features", 3, "truncate")
    with pytest.raises(
        StoreDamagedError,
        match=r"variable 'features' at simulations \[24, 32\) cannot be read .*"
        r"vbi-dask verify .* --repair",
    ):
        StoreData(truncated, validation_fraction=0.2).zscore()
