"""Backend selection and cluster choice, without a GPU and with the device probe faked.

These run in the main test process (no CUDA simulator): the GPU case is simulated by
monkeypatching the probes and the CUDA kernel / dask-cuda entry points.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

from tests.models.test_contract import tiny_simulation
from vbi_dask import backend, cluster


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(backend, "_probe_device_count", lambda: 0)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(backend, "_probe_device_count", lambda: 1)


def test_probe_of_this_machine_answers():
    assert isinstance(backend.gpu_count(), int) and backend.gpu_count() >= 0
    assert backend.resolve_backend("auto") in ("cpu", "cuda")


def test_no_gpu_selects_cpu(no_gpu):
    assert not backend.cuda_available()
    assert backend.resolve_backend("auto") == "cpu"
    assert backend.resolve_backend("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="no GPU is usable"):
        backend.resolve_backend("cuda")
    assert backend.gpu_annotations() is None


def test_gpu_selects_cuda_when_asked_or_auto(one_gpu, monkeypatch):
    assert backend.cuda_available()
    assert backend.resolve_backend("auto") == "cuda"
    assert backend.resolve_backend("cuda") == "cuda"
    assert backend.resolve_backend("cpu") == "cpu"
    assert backend.gpu_annotations() == {"resources": {"GPU": 1}}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert backend.resolve_backend("auto") == "cuda"


@pytest.mark.parametrize("value", ["", "-1", " -1 "])
def test_cuda_visible_devices_hides_the_gpu(one_gpu, monkeypatch, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert backend.gpu_count() == 0
    assert backend.resolve_backend("auto") == "cpu"
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES"):
        backend.resolve_backend("cuda")


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'auto', 'cpu', 'cuda'"):
        backend.resolve_backend("gpu")


def test_gpu_annotations_follow_the_cluster_resources(no_gpu):
    def client_with(resources):
        info = {"workers": {f"tcp://w{k}": {"resources": r} for k, r in enumerate(resources)}}
        return types.SimpleNamespace(scheduler_info=lambda: info)

    assert backend.gpu_annotations(client_with([{}, {}])) is None
    assert backend.gpu_annotations(client_with([{}, {"GPU": 1}])) == {"resources": {"GPU": 1}}


# ---------------------------------------------------------------- Simulation routing
class _CudaKernelStandIn:
    """Records the call and computes with the CPU kernel: the CUDA shell's contract is
    the CPU shell's arguments (host arrays in, outputs filled in place)."""

    def __init__(self, cfg):
        from vbi_dask.kernels import cpu

        self.cpu = cpu.build_kernel(cfg)
        self.calls = 0

    def __call__(self, inputs):
        self.calls += 1
        self.cpu(inputs, threads=1)


def test_simulation_routes_chunks_by_backend(one_gpu, monkeypatch):
    from vbi_dask.kernels import cuda

    sim = tiny_simulation("mpr", "float32")  # CPU kernel shared with the contract tests
    stand_in = _CudaKernelStandIn(sim.kernel_config())
    monkeypatch.setattr(cuda, "build_kernel", lambda cfg: stand_in)
    G = np.linspace(0.3, 0.6, 16)
    want = sim.run_arrays({"G": G}, seed=4, threads=1)  # default: cpu
    assert stand_in.calls == 0
    got = sim.run_arrays({"G": G}, seed=4, backend="auto")
    assert stand_in.calls == 1
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(got[key], want[key])
    ds = sim.run({"G": G}, seed=4, backend="cuda")
    assert stand_in.calls == 2
    np.testing.assert_array_equal(ds["r"].transpose("time", "node", "sim").values, want["sampled"][:, 0])


def test_simulation_without_gpu(no_gpu, monkeypatch):
    from vbi_dask.kernels import cuda

    monkeypatch.setattr(cuda, "build_kernel", lambda cfg: pytest.fail("CUDA kernel built without a GPU"))
    sim = tiny_simulation("mpr", "float32")
    with pytest.raises(RuntimeError, match="no GPU"):
        sim.run_arrays({"G": 0.4}, n_sims=16, backend="cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        sim.run_arrays({"G": 0.4}, n_sims=16, backend="gpu")
    auto = sim.run_arrays({"G": 0.4}, n_sims=16, seed=2, threads=1, backend="auto")
    cpu = sim.run_arrays({"G": 0.4}, n_sims=16, seed=2, threads=1)
    np.testing.assert_array_equal(auto["sampled"], cpu["sampled"])


# ---------------------------------------------------------------- clusters
class _FakeCluster:
    def __init__(self, **kw):
        self.kw = kw


def test_cluster_gpu_count_uses_nvml_and_respects_the_environment(monkeypatch):
    nvml = types.SimpleNamespace(nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 2)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cluster.cluster_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert cluster.cluster_gpu_count() == 1
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert cluster.cluster_gpu_count() == 0

    def broken():
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=broken))
    assert cluster.cluster_gpu_count() == 0


def test_auto_cluster_on_gpus_is_a_cuda_cluster(monkeypatch):
    monkeypatch.setattr(cluster, "cluster_gpu_count", lambda: 2)
    monkeypatch.setattr(cluster, "_local_cuda_cluster_class", lambda: _FakeCluster)
    made = cluster.make_cluster("auto")
    assert isinstance(made, _FakeCluster)
    assert made.kw["resources"] == {"GPU": 1} and made.kw["threads_per_worker"] == 1
    assert made.kw.get("n_workers") is None  # dask-cuda: one worker per GPU


def test_auto_cluster_falls_back_to_cpu_workers(monkeypatch):
    import distributed

    def no_dask_cuda():
        raise ImportError("no dask_cuda")

    monkeypatch.setattr(distributed, "LocalCluster", _FakeCluster)
    monkeypatch.setattr(cluster, "_local_cuda_cluster_class", no_dask_cuda)
    for gpus in (0, 2):  # no GPU; GPUs but dask-cuda not installed
        monkeypatch.setattr(cluster, "cluster_gpu_count", lambda: gpus)
        made = cluster.make_cluster("auto", n_workers=3, env={"OMP_NUM_THREADS": "1"})
        assert isinstance(made, _FakeCluster)
        assert made.kw["processes"] is True and made.kw["threads_per_worker"] == 1 and made.kw["n_workers"] == 3
        assert made.kw["env"] == {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def test_cuda_cluster_without_dask_cuda_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import fails
    with pytest.raises(ImportError, match=r"vbi-dask\[cuda\]"):
        cluster.make_cluster("cuda")
    with pytest.raises(ValueError, match="unknown cluster kind"):
        cluster.make_cluster("slurm-ish")


def test_local_cluster_and_clients(monkeypatch):
    """A real CPU cluster: single-threaded worker processes with NUMBA_NUM_THREADS=1."""
    from distributed import Client

    monkeypatch.setattr(cluster, "cluster_gpu_count", lambda: 0)
    client = cluster.get_client(n_workers=1, dashboard_address=":0")
    try:
        assert cluster.get_client(client) is client
        assert cluster.get_client() is client  # the current client
        env = client.run(lambda: os.environ.get("NUMBA_NUM_THREADS"))
        assert list(env.values()) == ["1"]
        assert list(client.nthreads().values()) == [1]
        with pytest.raises(ValueError, match="existing scheduler"):
            cluster.get_client(client.scheduler.address, n_workers=2)
        other = cluster.get_client(client.scheduler.address)
        try:
            assert isinstance(other, Client) and other.scheduler.address == client.scheduler.address
        finally:
            other.close()
    finally:
        cluster.close_client(client)
    assert client.status == "closed"
