"""deploy/kubernetes, validated offline.

Built-in kinds are checked with kubernetes-validate's strict schemas (an unknown field is
an error, as with ``kubectl apply``'s default server-side field validation). The
operator's kinds (DaskCluster, DaskWorkerGroup, DaskAutoscaler, DaskJob) are checked
against the CRDs that ship with the installed dask-kubernetes, made strict the way the
API server applies them (unknown fields rejected except under
``x-kubernetes-preserve-unknown-fields``; ``x-kubernetes-list-map-keys`` unique), and
the pod specs and scheduler Service inside them again as core/v1 objects. The helm values
are checked against the dask chart's value keys (``dask_chart_values.yaml``), their
Kubernetes contents as a Pod. Then the pieces must fit: names, namespace, volumes, the
scheduler address, the worker and budget command lines (parsed by the real CLIs).
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path, PurePosixPath

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
dask_kubernetes = pytest.importorskip("dask_kubernetes")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
CHART_DEFAULTS = Path(__file__).with_name("dask_chart_values.yaml")
CRDS = Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
# the oldest Kubernetes the manifests target and the newest schema kubernetes-validate ships
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
OPERATOR_GROUP = "kubernetes.dask.org"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB of YAML


# ------------------------------------------------------------------------ validation
def _where(path) -> str:
    return ".".join(str(part) for part in path) or "(root)"


def _builtin_problems(doc: dict, prefix: str = "") -> list[str]:
    problems = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{prefix}{_where(error.absolute_path)}: {error.message} (Kubernetes {version})")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{prefix}{error.message}")
    return problems


def _strict(schema: dict) -> dict:
    """A CRD's structural schema as the API server enforces it with strict field validation."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: _strict(sub) for name, sub in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [_strict(sub) for sub in out[key]]
    return out


def _unique_list_map_keys(validator, keys, instance, schema):
    """``x-kubernetes-list-type: map``: no two items share their key fields (defaults applied)."""
    if not validator.is_type(instance, "array"):
        return
    fields = schema.get("items", {}).get("properties", {})
    seen = set()
    for item in instance:
        if isinstance(item, dict):
            key = tuple(item.get(k, fields.get(k, {}).get("default")) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(f"duplicate entry {dict(zip(keys, key))} in a list keyed by {keys}")
            seen.add(key)


_CRDValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"x-kubernetes-list-map-keys": _unique_list_map_keys}
)


@functools.cache
def _crd(kind: str) -> tuple[str, object]:
    """(apiVersion, validator) of an operator kind, from the CRD file named after it."""
    path = CRDS / f"{kind.lower()}.yaml"
    if not path.exists():
        raise LookupError(f"no CRD for {kind} in {CRDS}")
    crd = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    assert crd["spec"]["names"]["kind"] == kind, path
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # the API server checks these itself; metadata is checked below as ObjectMeta
    schema["properties"] = {
        **schema["properties"],
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    return f"{crd['spec']['group']}/{version['name']}", _CRDValidator(schema)


# pod specs and Services embedded in the operator's kinds, checked again as core/v1
_EMBEDDED = {
    "DaskCluster": {
        "Pod": [("spec", "worker", "spec"), ("spec", "scheduler", "spec")],
        "Service": [("spec", "scheduler", "service")],
    },
    "DaskWorkerGroup": {"Pod": [("spec", "worker", "spec")]},
    "DaskJob": {
        "Pod": [
            ("spec", "job", "spec"),
            ("spec", "cluster", "spec", "worker", "spec"),
            ("spec", "cluster", "spec", "scheduler", "spec"),
        ],
        "Service": [("spec", "cluster", "spec", "scheduler", "service")],
    },
}


def _get(doc, path):
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _operator_problems(doc: dict) -> list[str]:
    kind = doc["kind"]
    try:
        api_version, validator = _crd(kind)
    except LookupError as error:
        return [str(error)]
    problems = (
        []
        if doc["apiVersion"] == api_version
        else [f"apiVersion: {doc['apiVersion']!r}, the CRD serves {api_version!r}"]
    )
    problems += [f"{_where(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    problems += _builtin_problems(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}, "metadata as ObjectMeta: "
    )
    for core_kind, paths in _EMBEDDED.get(kind, {}).items():
        for path in paths:
            spec = _get(doc, path)
            if isinstance(spec, dict):
                wrapped = {"apiVersion": "v1", "kind": core_kind, "metadata": {"name": "embedded"}, "spec": spec}
                problems += _builtin_problems(wrapped, f"{_where(path)} as a {core_kind}: ")
    return problems


def problems(doc) -> list[str]:
    """What the API server would reject in ``doc`` (empty: valid)."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return ["not a Kubernetes object: no apiVersion and kind"]
    if doc["apiVersion"].split("/")[0] == OPERATOR_GROUP:
        return _operator_problems(doc)
    return _builtin_problems(doc)


# ------------------------------------------------------------------------ the manifests
def _load_all(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


MANIFEST_FILES = sorted(p for p in DEPLOY.rglob("*.y*ml") if p.parent != HELM_VALUES.parent)
DOCUMENTS = [(path, index, doc) for path in MANIFEST_FILES for index, doc in enumerate(_load_all(path))]


def _id(path: Path, index: int, doc) -> str:
    kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
    return f"{path.relative_to(DEPLOY)}#{index}-{kind}"


def test_deploy_kubernetes_has_the_expected_kinds():
    kinds = {doc.get("kind") for _, _, doc in DOCUMENTS}
    assert {
        "Namespace",
        "PersistentVolumeClaim",
        "DaskCluster",
        "DaskWorkerGroup",
        "DaskAutoscaler",
        "ConfigMap",
        "Job",
    } <= kinds
    assert HELM_VALUES.exists()


@pytest.mark.parametrize(("path", "index", "doc"), [pytest.param(*d, id=_id(*d)) for d in DOCUMENTS])
def test_manifest_validates(path, index, doc):
    found = problems(doc)
    assert not found, f"{path.relative_to(ROOT)} document {index}:\n" + "\n".join(found)


def _objects(kind: str) -> list[dict]:
    return [doc for _, _, doc in DOCUMENTS if doc.get("kind") == kind]


def _one(kind: str) -> dict:
    (doc,) = _objects(kind)
    return doc


def _pod_specs() -> list[tuple[str, dict]]:
    """(owner, pod spec) of every pod the manifests make."""
    specs = []
    for _, _, doc in DOCUMENTS:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        for path in _EMBEDDED.get(doc["kind"], {}).get("Pod", []):
            if _get(doc, path) is not None:
                specs.append((f"{name} {_where(path)}", _get(doc, path)))
        if doc["kind"] == "Job":
            specs.append((name, doc["spec"]["template"]["spec"]))
    return specs


def _worker_containers() -> list[tuple[str, dict, dict]]:
    """(owner, pod spec, container) of every Dask worker."""
    out = []
    for kind in ("DaskCluster", "DaskWorkerGroup"):
        for doc in _objects(kind):
            spec = doc["spec"]["worker"]["spec"]
            out += [(f"{kind}/{doc['metadata']['name']}", spec, c) for c in spec["containers"]]
    return out


# ------------------------------------------------------------------------ broken manifests are rejected
def _document(kind: str) -> dict:
    return copy.deepcopy(_objects(kind)[0])


def _replicas_as_string(doc):
    doc["spec"]["worker"]["replicas"] = "4"


def _misspelled_container_field(doc):
    doc["spec"]["worker"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _no_scheduler(doc):
    del doc["spec"]["scheduler"]


def _duplicate_scheduler_port(doc):
    ports = doc["spec"]["scheduler"]["service"]["ports"]
    ports.append({**ports[0], "name": "another"})


def _gpu_limit_as_integer(doc):
    doc["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1


def _misspelled_toleration_field(doc):
    doc["spec"]["worker"]["spec"]["tolerations"][0]["efect"] = "NoSchedule"


def _autoscaler_without_maximum(doc):
    del doc["spec"]["maximum"]


def _job_unknown_field(doc):
    doc["spec"]["backofLimit"] = 3


def _job_container_misspelled_field(doc):
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")


def _wrong_api_version(doc):
    doc["apiVersion"] = "kubernetes.dask.org/v1beta1"


BROKEN = [
    ("DaskCluster", _replicas_as_string, r"spec\.worker\.replicas: '4' is not of type 'integer'"),
    (
        "DaskCluster",
        _misspelled_container_field,
        r"spec\.worker\.spec\.containers\.0: .*'imagePullPolicyy' was unexpected",
    ),
    ("DaskCluster", _no_scheduler, r"spec: 'scheduler' is a required property"),
    ("DaskCluster", _duplicate_scheduler_port, r"spec\.scheduler\.service\.ports: duplicate entry \{'port': 8786"),
    ("DaskCluster", _wrong_api_version, r"apiVersion: 'kubernetes\.dask\.org/v1beta1', the CRD serves"),
    ("DaskWorkerGroup", _gpu_limit_as_integer, r"limits\.nvidia\.com/gpu: 1 is not of type 'string'"),
    ("DaskWorkerGroup", _misspelled_toleration_field, r"tolerations\.0: .*'efect' was unexpected"),
    ("DaskAutoscaler", _autoscaler_without_maximum, r"spec: 'maximum' is a required property"),
    ("Job", _job_unknown_field, r"spec: .*'backofLimit' was unexpected"),
    ("Job", _job_container_misspelled_field, r"containers\.0: .*'volumeMount' was unexpected"),
]


@pytest.mark.parametrize(("kind", "breakage", "expected"), BROKEN, ids=[b[1].__name__.strip("_") for b in BROKEN])
def test_broken_manifest_is_rejected(kind, breakage, expected):
    doc = _document(kind)
    assert not problems(doc)
    breakage(doc)
    found = problems(doc)
    assert any(re.search(expected, p) for p in found), f"expected /{expected}/ among:\n" + "\n".join(found)


def test_a_document_that_is_not_an_object_is_rejected():
    assert problems({"metadata": {"name": "x"}}) == ["not a Kubernetes object: no apiVersion and kind"]
    assert any(
        "Couldn't find schema for kind Jobb" in p
        for p in problems({"apiVersion": "batch/v1", "kind": "Jobb", "metadata": {"name": "x"}})
    )


# ------------------------------------------------------------------------ the pieces fit
def test_one_namespace():
    (namespace,) = [doc["metadata"]["name"] for doc in _objects("Namespace")]
    for _, _, doc in DOCUMENTS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, f"{doc['kind']}/{doc['metadata']['name']}"


def test_references_resolve():
    clusters = {doc["metadata"]["name"] for doc in _objects("DaskCluster")}
    for kind in ("DaskWorkerGroup", "DaskAutoscaler"):
        for doc in _objects(kind):
            assert doc["spec"]["cluster"] in clusters, f"{kind}/{doc['metadata']['name']}"
    claims = {doc["metadata"]["name"] for doc in _objects("PersistentVolumeClaim")}
    config_maps = {doc["metadata"]["name"] for doc in _objects("ConfigMap")}
    for owner, spec in _pod_specs():
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, owner
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, owner
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{owner}: mount of undeclared volume {mount['name']!r}"


def _claim_mounts(spec: dict, volumes_key: str = "volumes") -> list[tuple[str, str]]:
    """(claim, mountPath) of each PVC mount in a pod spec."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec.get(volumes_key, [])
        if "persistentVolumeClaim" in v
    }
    return [
        (claims[m["name"]], m["mountPath"])
        for c in spec["containers"]
        for m in c.get("volumeMounts", [])
        if m["name"] in claims
    ]


def test_the_store_volume_is_shared_and_mounted_at_one_path():
    """Every worker writes blocks into the store the driver opens: same claim, same path."""
    (pvc,) = _objects("PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    claim_name = pvc["metadata"]["name"]
    paths = {path for _, spec in _pod_specs() for claim, path in _claim_mounts(spec) if claim == claim_name}
    assert paths == {"/data"}
    for owner, spec, _ in _worker_containers():
        assert (claim_name, "/data") in _claim_mounts(spec), f"{owner} does not mount the store volume"


def _worker_params(container: dict) -> dict:
    """``dask worker``'s parsed options, by distributed's own command line."""
    from distributed.cli.dask_worker import main as dask_worker

    args = container["args"]
    assert args[:2] == ["dask", "worker"], args
    params = dask_worker.make_context("dask worker", list(args[2:])).params
    # the operator gives the address in DASK_SCHEDULER_ADDRESS; a stray word or a
    # misspelled flag would land here
    assert params["scheduler"] is None and params["preload_argv"] == (), args
    return params


def _resources(text: str | None) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=") for item in (text or "").replace(",", " ").split())}


def test_workers_are_single_threaded():
    assert _worker_containers()
    for owner, _, container in _worker_containers():
        assert _worker_params(container)["nthreads"] == 1, owner
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("NUMBA_NUM_THREADS") == "1", owner


def test_scheduler_command_line_parses():
    from distributed.cli.dask_scheduler import main as dask_scheduler

    for doc in _objects("DaskCluster"):
        (container,) = doc["spec"]["scheduler"]["spec"]["containers"]
        assert container["args"][:2] == ["dask", "scheduler"]
        params = dask_scheduler.make_context("dask scheduler", list(container["args"][2:])).params
        assert params["preload_argv"] == ()
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["tcp-comm"] == int(params["port"] or 8786)


def test_gpu_workers_request_a_gpu_and_advertise_it():
    gpu_workers = [w for w in _worker_containers() if "nvidia.com/gpu" in w[2].get("resources", {}).get("limits", {})]
    assert gpu_workers, "no worker requests nvidia.com/gpu"
    for owner, spec, container in _worker_containers():
        requested = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        advertised = _resources(_worker_params(container)["resources"]).get("GPU")
        if requested is None:
            assert advertised is None, f"{owner} advertises GPU without requesting nvidia.com/gpu"
            continue
        assert requested == "1" and advertised == 1.0, owner
        assert any(
            t.get("key") == "nvidia.com/gpu" and t.get("operator") == "Exists" for t in spec.get("tolerations", [])
        ), f"{owner} does not tolerate the nvidia.com/gpu taint"


def _commands(program: str, command: str) -> list[tuple[dict, dict, list[str]]]:
    """(Job, container, args) of every Job container running ``program command``."""
    return [
        (job, c, c["args"])
        for job in _objects("Job")
        for c in job["spec"]["template"]["spec"]["containers"]
        if c.get("args", [])[:2] == [program, command]
    ]


def _cli(args: list[str]):
    from vbi_dask.cli import build_parser

    return build_parser().parse_args(args[1:])


def test_budget_job_runs_the_mounted_config_against_the_cluster():
    ((job, container, args),) = _commands("vbi-dask", "simulate")
    parsed = _cli(args)
    config = PurePosixPath(str(parsed.config))
    spec = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent]
    config_map_name = volumes[mount["name"]]["configMap"]["name"]
    (config_map,) = [doc for doc in _objects("ConfigMap") if doc["metadata"]["name"] == config_map_name]
    assert config.name in config_map["data"], f"ConfigMap {config_map_name} has no key {config.name}"

    from vbi_dask.configuration import budget_from_config

    budget = budget_from_config(yaml.safe_load(config_map["data"][config.name]))
    assert budget.n_sims > 0

    store = PurePosixPath(str(parsed.store))
    assert any(store.is_relative_to(path) for claim, path in _claim_mounts(spec))

    match = re.fullmatch(
        r"tcp://(?P<cluster>[a-z0-9-]+)-scheduler\.(?P<namespace>[a-z0-9-]+)\.svc\.cluster\.local"
        r":(?P<port>\d+)",
        parsed.cluster,
    )
    assert match, parsed.cluster
    (cluster,) = [doc for doc in _objects("DaskCluster") if doc["metadata"]["name"] == match["cluster"]]
    assert match["namespace"] == cluster["metadata"]["namespace"] == job["metadata"]["namespace"]
    service_ports = {p["name"]: p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    assert int(match["port"]) == service_ports["tcp-comm"]


def test_train_job_reads_the_budget_store():
    ((_, _, simulate),) = _commands("vbi-dask", "simulate")
    ((job, container, train),) = _commands("vbi-dask", "train")
    store = _cli(simulate).store
    assert _cli(train).store == store
    mounts = _claim_mounts(job["spec"]["template"]["spec"])
    assert any(PurePosixPath(str(_cli(train).out)).is_relative_to(path) for _, path in mounts)
    if "nvidia.com/gpu" in container["resources"].get("limits", {}):
        from vbi_dask.train._cli import training_config

        assert training_config(_cli(train)).accelerator == "gpu"


# ------------------------------------------------------------------------ helm values of the dask chart
def _key_problems(values, defaults, path=()) -> list[str]:
    """Keys of ``values`` that the chart does not have. Below a default that is an empty
    mapping or null (free-form Kubernetes content) anything goes; lists are not entered."""
    if not isinstance(values, dict) or defaults in ({}, None):
        return []
    if not isinstance(defaults, dict):
        return [f"{_where(path)} is a mapping here but not in the chart"]
    found = []
    for key, value in values.items():
        if key not in defaults:
            found.append(f"{_where(path + (key,))} is not a key of the dask chart")
        else:
            found += _key_problems(value, defaults[key], path + (key,))
    return found


def _chart_pods(values: dict) -> dict[str, dict]:
    """A Pod per component with the Kubernetes content of the values, where the chart's
    templates/dask-{scheduler,worker,jupyter}-deployment.yaml put it."""
    pods = {}
    for component in ("scheduler", "worker", "jupyter"):
        section = values.get(component, {})
        image = section.get("image", {})
        container = {"name": component, "image": f"{image.get('repository')}:{image.get('tag')}"}
        container.update(
            {
                k: section[k]
                for k in ("resources", "env", "args", "command", "livenessProbe", "readinessProbe")
                if section.get(k)
            }
        )
        mounts = section.get("mounts") or {}
        if mounts.get("volumeMounts"):
            container["volumeMounts"] = mounts["volumeMounts"]
        spec = {"containers": [container]}
        spec.update(
            {k: section[k] for k in ("tolerations", "affinity", "nodeSelector", "securityContext") if section.get(k)}
        )
        if mounts.get("volumes"):
            spec["volumes"] = mounts["volumes"]
        pods[component] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": component}, "spec": spec}
    return pods


def helm_problems(values: dict) -> list[str]:
    defaults = yaml.safe_load(CHART_DEFAULTS.read_text(encoding="utf-8"))
    found = _key_problems(values, defaults)
    for component, pod in _chart_pods(values).items():
        found += _builtin_problems(pod, f"{component} as a Pod: ")
    return found


def _helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))


def test_helm_values_validate():
    found = helm_problems(_helm_values())
    assert not found, "\n".join(found)


def test_helm_values_run_single_threaded_workers_and_jupyter_on_the_store():
    values = _helm_values()
    worker = values["worker"]
    assert worker["threads_per_worker"] == 1
    assert {e["name"]: e["value"] for e in worker["env"]}["NUMBA_NUM_THREADS"] == "1"
    assert worker["image"]["dask_worker"] == "dask-worker"  # the chart runs it as args[0]
    assert values["jupyter"]["enabled"] is True
    (pvc,) = _objects("PersistentVolumeClaim")
    for component, pod in _chart_pods(values).items():
        if component != "scheduler":
            assert _claim_mounts(pod["spec"]) == [(pvc["metadata"]["name"], "/data")], component


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda v: v["worker"].update(replica=2), r"worker\.replica is not a key of the dask chart"),
        (lambda v: v["jupyter"]["image"].update(tags="0.1.0"), r"jupyter\.image\.tags is not a key"),
        (lambda v: v["worker"]["env"][0].update(valu="1"), r"worker as a Pod: spec\.containers\.0\.env\.0: .*'valu'"),
        (lambda v: v["worker"]["mounts"]["volumeMounts"][0].pop("mountPath"), r"'mountPath' is a required property"),
    ],
    ids=["misspelled-key", "misspelled-nested-key", "misspelled-env-field", "mount-without-path"],
)
def test_broken_helm_values_are_rejected(breakage, expected):
    values = _helm_values()
    breakage(values)
    found = helm_problems(values)
    assert any(re.search(expected, p) for p in found), f"expected /{expected}/ among:\n" + "\n".join(found)
