"""One way to get a Dask client, wherever the budget runs.

>>> client = get_client()                                    # doctest: +SKIP  (current client or a local cluster)
>>> client = get_client("slurm", queue="gpu", cores=1, memory="8GiB", gpus=1)  # doctest: +SKIP
>>> client = get_client("kubernetes", image="ghcr.io/vbi-dask/vbi-dask:0.1.0")  # doctest: +SKIP
>>> client = get_client("tcp://scheduler:8786")              # doctest: +SKIP
>>> client = get_client(yaml.safe_load(open("budget.yaml"))["cluster"])  # doctest: +SKIP
>>> close_client(client)  # shuts down a cluster get_client started, else just disconnects  # doctest: +SKIP

Kinds:

- ``local``: CPU worker processes on this machine, one thread each, ``NUMBA_NUM_THREADS=1``
  (parallelism comes from the workers; the kernel's threads do not oversubscribe cores).
- ``cuda``: ``dask_cuda.LocalCUDACluster``, one worker per GPU with the worker resource
  ``GPU=1`` (extra ``cuda``). ``auto``: ``cuda`` when there are GPUs and dask-cuda, else
  ``local``.
- ``slurm``: ``dask_jobqueue.SLURMCluster`` (extra ``slurm``): every worker is a SLURM job.
  Options are SLURMCluster's (``queue, account, cores, memory, walltime, processes,
  interface, job_extra_directives, ...``; defaults come from dask's ``jobqueue.slurm``
  configuration, see ``deploy/slurm/jobqueue.yaml``) plus ``adapt: {minimum_jobs,
  maximum_jobs}`` (the default: adaptive, 0 to 4 jobs) or ``jobs: N`` (fixed), and
  ``gpus: 1`` (each job asks ``--gres=gpu:1`` and its worker advertises ``GPU=1``).
- ``kubernetes``: the dask-kubernetes operator's ``KubeCluster`` (extra ``kubernetes``):
  ``name, namespace, image, n_workers, resources, env, gpus`` (``nvidia.com/gpu`` limits
  and ``GPU=1``), ``adapt: {minimum, maximum}``; the DaskCluster it creates is
  :func:`kubernetes_cluster_spec`'s.
- an address (``tcp://host:8786``): a running scheduler.

The YAML ``cluster:`` section of a budget configuration (and ``--cluster-config`` files of
the CLI) names the default kind and holds options per kind, so one file serves a laptop
and the cluster: ``vbi-dask simulate budget.yaml --cluster slurm`` picks ``slurm:``::

    cluster:
      kind: local
      local: {n_workers: 4}
      slurm: {queue: debug, cores: 1, memory: 4GiB, walltime: "02:00:00", adapt: {maximum_jobs: 32}}
      kubernetes: {image: ghcr.io/vbi-dask/vbi-dask:0.1.0, adapt: {minimum: 0, maximum: 20}}
      address: tcp://scheduler:8786
"""

from __future__ import annotations

import gc
import inspect
import os
from collections.abc import Mapping
from typing import Any

from ._extras import require

__all__ = [
    "CLUSTER_KINDS",
    "get_client",
    "close_client",
    "make_cluster",
    "cluster_from_config",
    "kubernetes_cluster_spec",
    "adaptive_maximum",
    "cluster_gpu_count",
]

CLUSTER_KINDS = ("auto", "local", "cuda", "slurm", "kubernetes")
_SECTION_KEYS = ("kind", "address", *CLUSTER_KINDS)
DEFAULT_IMAGE = "ghcr.io/vbi-dask/vbi-dask:0.1.0"
_SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def cluster_gpu_count() -> int:
    """GPUs on this machine for a CUDA cluster, counted through NVML (no CUDA context is
    created in the client process); 0 when ``CUDA_VISIBLE_DEVICES`` is "" or "-1" or
    NVML is missing or fails."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no pynvml, no driver, NVML errors
        return 0
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count


def _import(module: str, name: str, extra: str):
    """``module.name``; a missing package raises the one-line :class:`~vbi_dask._extras.MissingExtraError`
    naming ``extra`` (an installed package that fails to import raises its own error)."""
    require(extra, f"cluster kind {extra!r}", [module.split(".")[0]])
    return getattr(__import__(module, fromlist=[name]), name)


def _local_cuda_cluster_class():
    return _import("dask_cuda", "LocalCUDACluster", "cuda")


def _dask_cuda_importable() -> bool:
    try:
        _local_cuda_cluster_class()
    except ImportError:
        return False
    return True


def _is_address(text: str) -> bool:
    return "://" in text or (":" in text and text.rsplit(":", 1)[1].isdigit())


def make_cluster(kind: str = "auto", **options: Any):
    """Start a cluster of the given kind (see the module docstring for the options).

    Parameters
    ----------
    kind : one of :data:`CLUSTER_KINDS`.
    **options : the kind's options. ``local``/``cuda``: ``n_workers`` (default: one per
        core/GPU), ``threads_per_worker`` (1), ``env``, and any ``LocalCluster`` argument.

    Returns
    -------
    A ``distributed`` cluster, already scaled (SLURM/Kubernetes: adaptive unless a fixed
    size is given).

    Raises
    ------
    ValueError
        Unknown kind or option (the message lists the valid ones).
    MissingExtraError
        The kind's optional dependency is missing (an ImportError; the one-line message
        names the extra).
    """
    if kind not in CLUSTER_KINDS:
        raise ValueError(f"unknown cluster kind {kind!r}; valid: {', '.join(CLUSTER_KINDS)} or a scheduler address")
    if kind == "auto":
        kind = "cuda" if cluster_gpu_count() > 0 and _dask_cuda_importable() else "local"
    return {"local": _local, "cuda": _cuda, "slurm": _slurm, "kubernetes": _kubernetes}[kind](dict(options))


def _local(options: dict):
    from distributed import LocalCluster

    options.setdefault("threads_per_worker", 1)
    options["env"] = {**_SINGLE_THREAD_ENV, **options.get("env", {})}
    options.setdefault("processes", True)
    return LocalCluster(**options)


def _cuda(options: dict):
    cls = _local_cuda_cluster_class()
    options.setdefault("threads_per_worker", 1)
    options.setdefault("resources", {"GPU": 1})
    return cls(**options)


def _check_options(kind: str, options: Mapping, valid) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown {kind} cluster option(s) {unknown}; valid: {', '.join(sorted(valid))}")


def _slurm(options: dict):
    import dask

    cls = _import("dask_jobqueue", "SLURMCluster", "slurm")
    job_cls = _import("dask_jobqueue.slurm", "SLURMJob", "slurm")
    base_job = _import("dask_jobqueue.core", "Job", "slurm")
    valid = set()
    for function in (cls.__init__, job_cls.__init__, base_job.__init__):
        valid |= {p for p in inspect.signature(function).parameters if p not in ("self", "args", "kwargs")}
    valid -= {"base_class_kwargs", "job_kwargs", "scheduler", "job_cls"}
    _check_options("slurm", options, valid | {"adapt", "jobs", "gpus"})
    adapt, jobs, gpus = options.pop("adapt", None), options.pop("jobs", None), int(options.pop("gpus", 0) or 0)
    if adapt is not None and jobs is not None:
        raise ValueError("slurm cluster: give 'adapt' (adaptive) or 'jobs' (a fixed number), not both")
    cores = options.get("cores", dask.config.get("jobqueue.slurm.cores", None))
    if "processes" not in options and dask.config.get("jobqueue.slurm.processes", None) is None and cores:
        options["processes"] = int(cores)  # one thread per worker process, as everywhere
    if gpus:
        if gpus != 1 or options.get("processes", 1) != 1:
            raise ValueError(
                "slurm cluster: 'gpus: 1' runs one worker per job with one GPU (processes: 1); "
                "on nodes with several GPUs SLURM packs several such jobs"
            )
        options["job_extra_directives"] = [*options.get("job_extra_directives", []), "--gres=gpu:1"]
        options["worker_extra_args"] = [*options.get("worker_extra_args", []), "--resources", "GPU=1"]
    processes = options.get("processes") or dask.config.get("jobqueue.slurm.processes", None) or 1
    threads = max(1, int(cores or 1) // int(processes))  # per worker: the kernel's and BLAS's threads
    exports = [f"export {name}={threads}" for name in _SINGLE_THREAD_ENV]
    options["job_script_prologue"] = [*exports, *options.get("job_script_prologue", [])]
    cluster = cls(**options)
    if jobs is not None:
        cluster.scale(jobs=int(jobs))
    else:
        cluster.adapt(**{"minimum_jobs": 0, "maximum_jobs": 4, **dict(adapt or {})})
    return cluster


_KUBE_OPTIONS = (
    "name",
    "namespace",
    "image",
    "n_workers",
    "resources",
    "env",
    "gpus",
    "adapt",
    "scheduler_service_type",
    "idle_timeout",
    "shutdown_on_close",
    "resource_timeout",
    "port_forward_cluster_ip",
)


def kubernetes_cluster_spec(
    *,
    name: str = "vbi-dask",
    image: str = DEFAULT_IMAGE,
    n_workers: int = 2,
    resources: Mapping | None = None,
    env: Mapping[str, str] | None = None,
    gpus: int = 0,
    scheduler_service_type: str = "ClusterIP",
    idle_timeout: int = 0,
) -> dict:
    """The ``DaskCluster`` resource (``kubernetes.dask.org/v1``) that ``get_client("kubernetes")``
    creates: single-threaded workers with ``NUMBA_NUM_THREADS=1``; with ``gpus=1`` each
    worker asks for ``nvidia.com/gpu: 1``, tolerates the ``nvidia.com/gpu`` taint and
    advertises the Dask resource ``GPU=1`` (the budget places its blocks there). Apply it
    with ``kubectl apply`` or pass it to ``KubeCluster(custom_cluster_spec=...)``.
    """
    make_cluster_spec = _import("dask_kubernetes.operator", "make_cluster_spec", "kubernetes")
    if gpus not in (0, 1):
        raise ValueError(f"kubernetes cluster: gpus must be 0 or 1 per worker, got {gpus!r}")
    worker_env = {**_SINGLE_THREAD_ENV, **dict(env or {})}
    command = "dask worker --nthreads 1" + (" --resources GPU=1" if gpus else "")
    spec = make_cluster_spec(
        name=name,
        image=image,
        n_workers=n_workers,
        env=worker_env,
        worker_command=command,
        scheduler_service_type=scheduler_service_type,
        idle_timeout=idle_timeout,
    )
    worker = spec["spec"]["worker"]["spec"]
    container = worker["containers"][0]
    limits = {k: str(v) for k, v in dict(resources or {}).get("limits", {}).items()}
    requests = {k: str(v) for k, v in dict(resources or {}).get("requests", {}).items()}
    if gpus:
        limits["nvidia.com/gpu"] = "1"
        worker["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    container["resources"] = {k: v for k, v in (("limits", limits), ("requests", requests)) if v}
    if not container["resources"]:
        del container["resources"]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    if scheduler["args"][:1] == ["dask-scheduler"]:  # gone from distributed's console scripts
        scheduler["args"] = ["dask", "scheduler", *scheduler["args"][1:]]
    for part in ("worker", "scheduler"):  # make_cluster_spec leaves nulls the CRD does not allow
        for c in spec["spec"][part]["spec"]["containers"]:
            for key in [k for k, v in c.items() if v is None]:
                del c[key]
    return spec


def _kubernetes(options: dict):
    cls = _import("dask_kubernetes.operator", "KubeCluster", "kubernetes")
    _check_options("kubernetes", options, _KUBE_OPTIONS)
    adapt = options.pop("adapt", None)
    spec_keys = inspect.signature(kubernetes_cluster_spec).parameters
    spec = kubernetes_cluster_spec(**{k: options.pop(k) for k in list(options) if k in spec_keys})
    try:
        cluster = cls(custom_cluster_spec=spec, **options)
    except ValueError as err:
        if "credentials" not in str(err):
            raise
        problem = str(err)
    else:
        if adapt is not None:
            cluster.adapt(**dict(adapt))
        return cluster
    # The half-built KubeCluster stays registered with dask-kubernetes' exit hook (which would
    # try to delete it and print a traceback at exit) while the error's frames hold it: raised
    # outside the except clause, with those frames collected, it is gone.
    gc.collect()
    raise RuntimeError(
        f"kubernetes cluster: {problem}: set KUBECONFIG (or ~/.kube/config), or run inside a pod "
        "whose service account may create DaskClusters (deploy/kubernetes/README.md)"
    )


def cluster_from_config(section: Any, kind: str | None = None) -> tuple[str, dict]:
    """(kind or address, options) from a YAML ``cluster:`` section; ``kind`` (e.g. the
    CLI's ``--cluster``) overrides the section's own ``kind`` (default ``local``).

    Raises
    ------
    ValueError
        Unknown keys (the valid ones are listed), or a kind without an address.
    """
    if section is None:
        section = {}
    if isinstance(section, str):
        section = {"address": section} if _is_address(section) else {"kind": section}
    if not isinstance(section, Mapping):
        raise ValueError(f"the cluster section must be a mapping like {{kind: slurm, slurm: {{...}}}}, got {section!r}")
    unknown = sorted(set(section) - set(_SECTION_KEYS))
    if unknown:
        raise ValueError(
            f"unknown cluster key(s) {unknown}; valid: {', '.join(_SECTION_KEYS)} "
            "(options go under the kind's own key, e.g. slurm: {queue: debug})"
        )
    chosen = kind or section.get("kind") or ("address" if "address" in section else "local")
    if chosen == "address":
        if "address" not in section:
            raise ValueError("cluster kind 'address' needs an 'address: tcp://host:8786' entry")
        return str(section["address"]), {}
    if _is_address(chosen):
        return chosen, {}
    if chosen not in CLUSTER_KINDS:
        raise ValueError(
            f"unknown cluster kind {chosen!r}; valid: {', '.join(CLUSTER_KINDS)}, address, "
            "or a scheduler address such as tcp://host:8786"
        )
    options = section.get(chosen) or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"cluster.{chosen} must be a mapping of options, got {options!r}")
    return chosen, dict(options)


def get_client(cluster: Any = None, **options: Any):
    """A ``distributed.Client``.

    Parameters
    ----------
    cluster : None (the current client if there is one, else a new local cluster), a
        ``Client`` (returned as is), a kind (``"local"``, ``"cuda"``, ``"auto"``,
        ``"slurm"``, ``"kubernetes"``), a scheduler address (``"tcp://host:8786"``), or a
        YAML ``cluster:`` mapping (:func:`cluster_from_config`).
    **options : the kind's options (see the module docstring); they update those of a
        mapping.

    Returns
    -------
    Client. Release it with :func:`close_client` (shuts down a cluster started here).
    """
    from distributed import Client

    if isinstance(cluster, Client):
        return cluster
    if cluster is None:
        try:
            return Client.current()
        except ValueError:  # no current client
            cluster = "local"
    kind, base = cluster_from_config(cluster)
    if _is_address(kind):
        if options:
            raise ValueError(f"cluster options {sorted(options)} given with an existing scheduler address {kind}")
        return Client(kind)
    return Client(make_cluster(kind, **{**base, **options}))


def close_client(client) -> None:
    """Disconnect; when ``client`` runs on a cluster object started by :func:`get_client`,
    also shut that cluster down (SLURM jobs cancelled, the DaskCluster deleted)."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def adaptive_maximum(client) -> int:
    """Workers the client's adaptive cluster may grow to (capped at 1024; 0 when the
    cluster is not adaptive or not ours). Lets the budget keep enough tasks queued for an
    adaptive cluster to scale up."""
    adaptive = getattr(client.cluster, "_adaptive", None) if client.cluster is not None else None
    maximum = getattr(adaptive, "maximum", 0) or 0
    return int(min(maximum, 1024))


LOCAL_SCHEDULERS = {
    "sync": "sync",
    "synchronous": "sync",
    "single-threaded": "sync",
    "threads": "threads",
    "threading": "threads",
}


def check_scheduler(scheduler) -> None:
    """ValueError unless ``scheduler`` is None, a local scheduler's name, an address or a
    ``distributed.Client``."""
    if scheduler is None or isinstance(scheduler, str) and (scheduler in LOCAL_SCHEDULERS or ":" in scheduler):
        return
    if not isinstance(scheduler, str):
        from distributed import Client

        if isinstance(scheduler, Client):
            return
    raise ValueError(
        f"unknown scheduler {scheduler!r}: give None (a LocalCluster), one of {sorted(LOCAL_SCHEDULERS)}, "
        "a distributed.Client or a scheduler address such as tcp://host:8786"
    )


def scheduler_client(scheduler, n_workers):
    """(client, close) for a Client or the current one (left open), an address, or a new
    local cluster of ``n_workers`` single-threaded workers."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if scheduler is None:
        try:
            return Client.current(), lambda: None
        except ValueError:  # no current client
            scheduler = "local"
    options = {"n_workers": n_workers or os.cpu_count() or 1} if scheduler == "local" else {}
    client = get_client(scheduler, **options)
    return client, lambda: close_client(client)
