"""vbi_dask.cluster: the YAML cluster section, clients for kinds and addresses, the CLI's
--cluster, and the Kubernetes DaskCluster it would create (checked against the operator's
CRD schema). SLURM runs for real in tests/deploy/test_slurm.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from vbi_dask import cluster
from vbi_dask.cli import main


@pytest.mark.parametrize(
    "section, kind, expected",
    [
        (None, None, ("local", {})),
        ("slurm", None, ("slurm", {})),
        ("tcp://10.0.0.1:8786", None, ("tcp://10.0.0.1:8786", {})),
        ({"kind": "slurm", "slurm": {"queue": "q"}, "local": {"n_workers": 3}}, None, ("slurm", {"queue": "q"})),
        ({"kind": "slurm", "slurm": {"queue": "q"}, "local": {"n_workers": 3}}, "local", ("local", {"n_workers": 3})),
        ({"address": "tcp://h:1"}, None, ("tcp://h:1", {})),
        ({"kind": "local", "address": "tcp://h:1"}, "address", ("tcp://h:1", {})),
        ({"kind": "local"}, "scheduler.example.org:8786", ("scheduler.example.org:8786", {})),
    ],
)
def test_cluster_section_picks_kind_and_its_options(section, kind, expected):
    assert cluster.cluster_from_config(section, kind) == expected


@pytest.mark.parametrize(
    "section, kind, message",
    [
        (
            {"kind": "slurm", "queue": "debug"},
            None,
            r"unknown cluster key\(s\) \['queue'\]; valid: kind, address, .*slurm",
        ),
        ({"kind": "pbs"}, None, "unknown cluster kind 'pbs'; valid: auto, local, cuda, slurm, kubernetes"),
        ({"kind": "local"}, "address", "needs an 'address"),
        ({"slurm": ["debug"]}, "slurm", "cluster.slurm must be a mapping"),
        (["slurm"], None, "must be a mapping"),
    ],
)
def test_bad_cluster_sections_are_named(section, kind, message):
    with pytest.raises(ValueError, match=message):
        cluster.cluster_from_config(section, kind)


def test_missing_extras_name_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)
    with pytest.raises(ImportError, match=r"vbi-dask\[slurm\]"):
        cluster.make_cluster("slurm", cores=1, memory="1GiB")
    with pytest.raises(ImportError, match=r"vbi-dask\[kubernetes\]"):
        cluster.make_cluster("kubernetes")


def test_kubernetes_options_are_checked():
    pytest.importorskip("dask_kubernetes")
    with pytest.raises(ValueError, match=r"unknown kubernetes cluster option\(s\) \['replicas'\]; valid: .*n_workers"):
        cluster.make_cluster("kubernetes", replicas=3)
    with pytest.raises(ValueError, match="gpus must be 0 or 1"):
        cluster.kubernetes_cluster_spec(gpus=2)


def test_cli_runs_a_budget_on_a_local_cluster_named_in_the_config(tmp_path, capsys):
    """`--cluster` and the config's cluster section reach a real LocalCluster."""
    from tests.budget.test_cli import write_config

    config = write_config(
        tmp_path,
        n_sims=16,
        chunk_size=8,
        cluster={"kind": "slurm", "local": {"n_workers": 1, "dashboard_address": ":0"}},
    )
    store = tmp_path / "local.zarr"
    assert main(["simulate", str(config), "--store", str(store), "--cluster", "local", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "simulations done   16 / 16" in out
    with pytest.raises(SystemExit):  # --scheduler takes only dask's local schedulers now
        main(["simulate", str(config), "--store", str(store), "--scheduler", "tcp://h:1"])
    assert main(["simulate", str(config), "--store", str(store), "--cluster", "slurm", "--workers", "2"]) == 2
    assert "--workers applies to a local cluster" in capsys.readouterr().err
    other = tmp_path / "cluster.yaml"
    other.write_text(yaml.safe_dump({"cluster": {"kind": "local", "locl": {}}}))
    assert main(["simulate", str(config), "--store", str(store), "--cluster-config", str(other)]) == 2
    assert "unknown cluster key(s) ['locl']" in capsys.readouterr().err


@pytest.mark.parametrize("gpus", [0, 1])
def test_kubernetes_cluster_spec_is_a_valid_daskcluster(gpus):
    """What get_client("kubernetes") would create passes the operator's CRD schema and the
    core/v1 Pod schema (tests/deploy/test_kubernetes.py's checks), with GPUs where asked."""
    from tests.deploy.test_kubernetes import problems

    spec = cluster.kubernetes_cluster_spec(
        name="fit",
        image="ghcr.io/vbi-dask/vbi-dask-cuda:0.1.0",
        n_workers=3,
        gpus=gpus,
        resources={"limits": {"memory": "4Gi", "cpu": 1}},
    )
    assert problems(spec) == []
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    assert worker["args"][:4] == ["dask", "worker", "--nthreads", "1"]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    assert {"name": "NUMBA_NUM_THREADS", "value": "1"} in worker["env"]
    assert worker["resources"]["limits"]["memory"] == "4Gi"
    assert ("nvidia.com/gpu" in worker["resources"]["limits"]) == bool(gpus)
    assert ("GPU=1" in worker["args"]) == bool(gpus)
    broken = dict(spec, spec={**spec["spec"], "worker": {**spec["spec"]["worker"], "replicas": "3"}})
    assert any("replicas" in p for p in problems(broken))


def test_kubernetes_without_credentials_says_what_to_set(monkeypatch, tmp_path):
    pytest.importorskip("dask_kubernetes")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError, match="kubernetes cluster: .*credentials.*KUBECONFIG"):
        cluster.get_client("kubernetes", n_workers=1)


def test_cli_without_kubernetes_credentials_is_one_line(tmp_path):
    """No traceback either from dask-kubernetes' exit hook, which deletes the clusters it
    knows of (a process of its own: the hook runs at exit)."""
    pytest.importorskip("dask_kubernetes")
    from tests.budget.test_cli import ROOT, write_config

    config = write_config(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing"), "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vbi_dask.cli",
            "simulate",
            str(config),
            "--store",
            str(tmp_path / "k.zarr"),
            "--cluster",
            "kubernetes",
            "--no-check",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1 and out.stdout == "", out
    assert (
        out.stderr.startswith(
            "vbi-dask simulate: failed: RuntimeError: kubernetes cluster: Unable to find valid "
            "credentials: set KUBECONFIG"
        )
        and len(out.stderr.splitlines()) == 1
    ), out.stderr
    assert not (tmp_path / "k.zarr").exists()
