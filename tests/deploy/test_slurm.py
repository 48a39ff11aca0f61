"""Budgets on a real single-node SLURM cluster whose Dask workers are SLURM jobs.

Started here from Debian's slurm-wlm and munge as root (``.ci/run`` installs them); the
tests skip, saying why, where that cannot be done. One worker job is cancelled with
``scancel`` while it computes a block: the adaptive cluster replaces it and every block
is still written exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dask
import numpy as np
import pytest
import yaml
import zarr

from tests.budget._plugins import CountWrites, LogComputeStarts
from tests.budget.conftest import budget, read_lines, run_in_thread, store_done

from ._slurm import LocalSlurm, unavailable_reason

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (extra 'slurm')")
REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "slurm"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # sbatch/squeue/scancel called by dask-jobqueue
    yield cluster
    cluster.stop()
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    assert all(p.poll() is not None for p in cluster.pids.values())


def _worker_options(tmp_path, **overrides) -> dict:
    """Options for this sandbox: one-core jobs, scheduler and workers on loopback."""
    return {
        "queue": "debug",
        "cores": 1,
        "processes": 1,
        "memory": "1GiB",
        "walltime": "00:10:00",
        "interface": "lo",
        "python": sys.executable,
        "death_timeout": 30,
        "log_directory": str(tmp_path / "dask-logs"),
        "local_directory": str(tmp_path / "dask-tmp"),
        **overrides,
    }


def _job_of_busy_worker(client, cluster, path) -> str | None:
    """The SLURM job id of a worker computing a block that is not written yet."""
    done = store_done(path)
    info = client.scheduler_info(n_workers=-1)["workers"]
    for address, keys in client.processing().items():
        if not keys or address not in info:
            continue
        name = str(info[address]["name"])
        job = cluster.workers.get(name)
        if job is not None and done.size and not done.all():
            return job.job_id
    return None


@pytest.fixture
def quick_replacement():
    """A lost worker leaves the cluster's plan (and adaptive scaling replaces it) after
    ``distributed.deploy.lost-worker-timeout``: 15 s by default, 1 s here."""
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}):
        yield


def test_budget_on_slurm_worker_jobs_survives_a_cancelled_job(slurm, tmp_path, quick_replacement):
    from vbi_dask.cluster import close_client, get_client

    writes, starts = tmp_path / "writes.log", tmp_path / "starts.log"
    work = budget(n_sims=96, chunk_size=4, duration_ms=40000.0, keep_bold=False, G=(0.0, 0.4))
    path = tmp_path / "slurm.zarr"
    # short task-duration target: two workers for these ~0.5 s blocks
    client = get_client(
        "slurm", **_worker_options(tmp_path), adapt={"minimum_jobs": 0, "maximum_jobs": 2, "target_duration": "0.2s"}
    )
    cluster = client.cluster
    try:
        client.register_plugin(CountWrites(str(writes)), name="count-writes")
        client.register_plugin(LogComputeStarts(str(starts)), name="log-starts")
        thread, result = run_in_thread(work, path, client)
        cancelled, seen_jobs = None, set()
        deadline = time.monotonic() + 120
        while cancelled is None and time.monotonic() < deadline and thread.is_alive():
            seen_jobs |= set(slurm.job_ids())
            if store_done(path).sum() >= 8:  # two blocks written: cancel a busy worker job
                cancelled = _job_of_busy_worker(client, cluster, path)
                if cancelled:
                    done_at_cancel = int(store_done(path).sum())
                    slurm.run("scancel", cancelled)
            time.sleep(0.05)
        assert cancelled is not None, "no worker job could be cancelled mid-budget"
        thread.join(150)
        assert not thread.is_alive(), "the budget did not finish"
        assert "error" not in result, result.get("error")
        summary = result["summary"]
        assert summary.complete and summary.failed == 0 and summary.ran == 96
        assert done_at_cancel < 96
        counts = Counter(int(s) for s in read_lines(writes))
        assert counts == {start: 1 for start in range(0, 96, 4)}  # every block written exactly once
        computed = Counter(int(line.split(":")[1]) for line in read_lines(starts))
        assert max(computed.values()) == 2, "the cancelled job's block was not computed again"
        replacement = set(slurm.job_ids()) | {job.job_id for job in cluster.workers.values()}
        assert replacement - seen_jobs - {cancelled}, "adaptive scaling did not submit a replacement job"
    finally:
        close_client(client)
    # the store holds what an in-process run computes for the blocks, bit for bit
    group = zarr.open_group(str(path), mode="r")
    for start in (0, 48):
        expected = work.compute_block(start, start + 4)
        np.testing.assert_array_equal(group["features"][start : start + 4], expected["features"])
        np.testing.assert_array_equal(group["theta"][start : start + 4], expected["theta"])
    deadline = time.monotonic() + 20
    while slurm.job_ids() and time.monotonic() < deadline:  # closing the cluster cancels its jobs
        time.sleep(0.2)
    assert slurm.job_ids() == []


def _write_config(tmp_path, cluster_options: dict) -> tuple[Path, Path]:
    """A small MPR budget YAML and a cluster YAML built on deploy/slurm/cluster.yaml."""
    budget_yaml = {
        "model": "mpr",
        "connectome": {"weights": str(tmp_path / "w.txt"), "tract_lengths": str(tmp_path / "l.txt")},
        "simulation": {"dt_ms": 0.1, "duration_ms": 4000.0, "monitors": {"temporal_average": {"period_ms": 10.0}}},
        "prior": {"G": [0.0, 1.0], "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 1]}},
        "n_sims": 64,
        "chunk_size": 16,
        "seed": 3,
        "features": ["fc", "moments"],
    }
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (5, 5))
    np.fill_diagonal(weights, 0)
    np.savetxt(tmp_path / "w.txt", weights)
    np.savetxt(tmp_path / "l.txt", np.full((5, 5), 20.0))
    config = tmp_path / "budget.yaml"
    config.write_text(yaml.safe_dump(budget_yaml))
    section = yaml.safe_load((DEPLOY / "cluster.yaml").read_text())
    section["cluster"]["slurm"].update(cluster_options)
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(section))
    return config, cluster


def test_sbatch_launcher_runs_budget_and_training(slurm, tmp_path):
    """deploy/slurm/vbi-dask.sbatch as users submit it: driver job -> worker jobs -> model."""
    config, cluster = _write_config(tmp_path, _worker_options(tmp_path, adapt={"maximum_jobs": 2}))
    store, model, log = tmp_path / "store.zarr", tmp_path / "model.pt", tmp_path / "driver.out"
    env = {
        **slurm.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "VBI_DASK_TRAIN_ARGS": "--max-epochs 3 --batch-size 16 --num-transforms 1 --hidden-features 8 --estimator maf",
    }
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--cpus-per-task=1",
            "--mem=2G",
            "--time=10",
            f"--output={log}",
            f"--chdir={tmp_path}",
            str(DEPLOY / "vbi-dask.sbatch"),
            str(config),
            str(store),
            str(model),
            str(cluster),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 240
    while job in slurm.job_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    output = log.read_text() if log.exists() else "(no output file)"
    assert job not in slurm.job_ids(), f"the driver job did not finish:\n{output}"
    assert "done" in output.splitlines()[-1], output
    assert store_done(store).all() and store_done(store).size == 64, output
    assert model.stat().st_size > 0 and "model written to" in output, output
    from vbi_dask.train import load_posterior

    posterior = load_posterior(model)
    assert list(posterior.info.param_names) == ["G", "eta[0]", "eta[1]"]


def test_deploy_cluster_files_make_the_job_scripts_they_promise(tmp_path):
    """The example cluster and jobqueue files are accepted by SLURMCluster and give the job
    directives and worker options they document (no jobs are submitted)."""
    import dask

    from vbi_dask.cluster import cluster_from_config, make_cluster

    for name, expect in (
        ("cluster.yaml", ["--cpus-per-task=16", "--nthreads 1", "--nworkers 16"]),
        ("cluster-gpu.yaml", ["--gres=gpu:1", "--resources GPU=1", "--nthreads 4"]),
    ):
        kind, options = cluster_from_config(yaml.safe_load((DEPLOY / name).read_text())["cluster"])
        assert kind == "slurm"
        options.update(interface="lo", local_directory=str(tmp_path), log_directory=str(tmp_path))
        cluster = make_cluster(kind, **options)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
        for text in expect + [f"#SBATCH -p {options['queue']}", "export NUMBA_NUM_THREADS="]:
            assert text in script, f"{name}: {text!r} not in\n{script}"
    jobqueue = yaml.safe_load((DEPLOY / "jobqueue.yaml").read_text())["jobqueue"]["slurm"]
    with dask.config.set({f"jobqueue.slurm.{key}": value for key, value in jobqueue.items()}):  # merged, as dask
        # merges ~/.config/dask/jobqueue.yaml into its defaults
        cluster = make_cluster("slurm", interface="lo", local_directory=str(tmp_path), log_directory=str(tmp_path))
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert "#SBATCH -J vbi-dask-worker" in script and "--nworkers 16" in script and "--nthreads 1" in script


def test_slurm_options_are_checked():
    from vbi_dask.cluster import make_cluster

    with pytest.raises(ValueError, match=r"unknown slurm cluster option\(s\) \['queu'\]; valid: .*queue"):
        make_cluster("slurm", queu="debug", cores=1, memory="1GiB")
    with pytest.raises(ValueError, match="not both"):
        make_cluster("slurm", cores=1, memory="1GiB", jobs=2, adapt={"maximum_jobs": 2})
    with pytest.raises(ValueError, match="one worker per job"):
        make_cluster("slurm", cores=2, processes=2, memory="1GiB", gpus=1)
