"""Budgets on a real LocalCluster (nanny worker processes): worker kills, poison blocks,
and identical stores across chunk sizes and worker counts."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import dask
import pytest
import zarr
from distributed import Client, LocalCluster

from ._plugins import CountWrites, LogComputeStarts, PoisonBlock
from .conftest import assert_same_data, budget, read_lines, run_in_thread, slow_budget, store_done

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """2 nanny workers x 1 thread. One worker death makes a task 'suspicious' enough for
    KilledWorker (allowed-failures=1), and each worker holds one task at a time."""
    config = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env={"NUMBA_NUM_THREADS": "1"}
        )
        client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_a_worker_killed_mid_budget_loses_and_repeats_nothing(client, tmp_path, slow_reference):
    writes, starts = tmp_path / "writes.log", tmp_path / "starts.log"
    client.register_plugin(CountWrites(str(writes)), name="count-writes")
    client.register_plugin(LogComputeStarts(str(starts)), name="log-starts")
    try:
        path = tmp_path / "killed.zarr"
        thread, result = run_in_thread(slow_budget(), path, client)
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            done = store_done(path)
            if done.sum() >= 16:  # two blocks written: now kill a worker while it computes
                current = {}
                for line in read_lines(starts):
                    pid, start = map(int, line.split(":"))
                    current[pid] = start
                busy = [(pid, start) for pid, start in current.items() if not store_done(path)[start]]
                if busy:
                    victim = busy[-1]
                    os.kill(victim[0], signal.SIGKILL)
            time.sleep(0.02)
        assert victim is not None, "the budget finished before a worker could be killed"
        thread.join(180)
        assert "error" not in result, result.get("error")
        summary = result["summary"]
        assert summary.complete and summary.failed == 0
        counts = Counter(int(s) for s in read_lines(writes))
        assert counts == {start: 1 for start in range(0, 64, 8)}  # every block written exactly once
        computed = Counter(int(line.split(":")[1]) for line in read_lines(starts))
        assert computed[victim[1]] == 2  # the killed block was computed again, elsewhere
        assert_same_data(path, slow_reference)
    finally:
        client.unregister_worker_plugin("count-writes")
        client.unregister_worker_plugin("log-starts")


def test_a_block_that_keeps_killing_workers_fails_alone(client, tmp_path, reference_store):
    path = tmp_path / "poison.zarr"
    client.register_plugin(PoisonBlock(16), name="poison")
    try:
        summary = budget().run(path, scheduler=client, progress=False)
    finally:
        client.unregister_worker_plugin("poison")
    assert summary.failed == 8 and summary.failed_blocks == (16,) and summary.done == 32
    assert "KilledWorker" in summary.errors[0] or "killing workers" in summary.errors[0]
    done = store_done(path)
    assert not done[16:24].any() and done[:16].all() and done[24:].all()
    again = budget().run(path, scheduler=client, progress=False)  # the re-run retries only that block
    assert (again.ran, again.failed, again.done) == (8, 0, 40)
    assert_same_data(path, reference_store)


def test_same_store_for_any_chunk_size_and_worker_count(client, tmp_path, reference_store):
    """The reference: chunk 8, synchronous. Here chunk 8 on 2 workers and chunk 32 on 1."""
    summary = budget(chunk_size=8).run(tmp_path / "c8w2.zarr", scheduler=client, progress=False)
    assert summary.done == 40
    assert_same_data(tmp_path / "c8w2.zarr", reference_store)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as one:
            summary = budget(chunk_size=32).run(tmp_path / "c32w1.zarr", scheduler=one, progress=False)
    assert summary.done == 40
    assert zarr.open_group(str(tmp_path / "c32w1.zarr"))["done"].chunks == (32,)
    assert_same_data(tmp_path / "c32w1.zarr", reference_store)
