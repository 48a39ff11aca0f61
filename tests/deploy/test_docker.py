"""deploy/docker, checked offline (no Docker engine here): what the Dockerfiles copy
exists, the extras and Python they install are the package's, and the images the
Kubernetes manifests and helm values run are the ones the Dockerfiles build."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
from packaging.specifiers import SpecifierSet  # noqa: E402  (after the skip: packaging comes with pytest)
from packaging.version import Version  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
KUBERNETES = ROOT / "deploy" / "kubernetes"
CPU, CUDA = DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda"
DOCKERFILES = [CPU, CUDA]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        word, _, rest = (pending + text).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, f"{path}: unterminated continuation"
    return out


def _copies(path: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of the COPY instructions that copy from the build context."""
    copies = []
    for word, rest in instructions(path):
        if word == "COPY":
            parts = shlex.split(rest)
            if any(p.startswith("--from") for p in parts):
                continue
            paths = [p for p in parts if not p.startswith("--")]
            copies.append((paths[:-1], paths[-1]))
    return copies


def _runs(path: Path) -> list[str]:
    return [rest for word, rest in instructions(path) if word == "RUN"]


def _arg_defaults(path: Path) -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in instructions(path) if word == "ARG" and "=" in rest)


def _pip_installs(path: Path) -> list[str]:
    return [run for run in _runs(path) if "pip install" in run]


def _extras(path: Path) -> set[str]:
    """Extras of the repository's own install (``pip install ".[a,b]"``)."""
    (run,) = [run for run in _pip_installs(path) if re.search(r"""["']?\.\[""", run)]
    return set(re.search(r"\.\[([^\]]*)\]", run).group(1).split(","))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_make_an_installable_package(dockerfile):
    copied = set()
    for sources, _ in _copies(dockerfile):
        for source in sources:
            assert list(ROOT.glob(source)), f"{dockerfile.name}: COPY source {source} is not in the repository"
            copied.add(source.rstrip("/"))
    # what `pip install .` reads: pyproject.toml, the readme, every package directory
    package_dirs = PYPROJECT["tool"]["setuptools"]["package-dir"].values()
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *package_dirs}
    assert needed <= copied, f"{dockerfile.name} does not copy {sorted(needed - copied)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_extras_exist_in_pyproject(dockerfile):
    extras = _extras(dockerfile)
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), extras
    assert {"train", "slurm", "kubernetes", "notebooks"} <= extras  # images train and serve the CLI
    assert ("cuda" in extras) == (dockerfile == CUDA)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_comes_first_from_the_right_index(dockerfile):
    installs = _pip_installs(dockerfile)
    torch = [i for i, run in enumerate(installs) if re.search(r"--index-url \S+ \"torch", run)]
    package = [i for i, run in enumerate(installs) if re.search(r"""["']?\.\[""", run)]
    assert torch and package and torch[0] < package[0], installs
    index = installs[torch[0]].split("--index-url ")[1].split()[0].strip('"')
    index = re.sub(r"\$\{?(\w+)\}?", lambda m: _arg_defaults(dockerfile)[m.group(1)], index)
    if dockerfile == CPU:
        assert index == "https://download.pytorch.org/whl/cpu"
    else:  # the torch build and the base image on the same CUDA 12 minor version
        cuda = re.fullmatch(r"https://download\.pytorch\.org/whl/cu12(\d+)", index)
        base = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-runtime-\S+", _arg_defaults(dockerfile)["CUDA_IMAGE"])
        assert cuda and base and cuda.group(1) == base.group(1), (index, _arg_defaults(dockerfile)["CUDA_IMAGE"])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_python_satisfies_requires_python(dockerfile):
    text = " ".join(rest for _, rest in instructions(dockerfile))
    (version,) = set(re.findall(r"python:?(3\.\d+)", text))
    assert Version(version) in SpecifierSet(PYPROJECT["project"]["requires-python"]), version


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user_with_single_threaded_numba(dockerfile):
    users = [rest for word, rest in instructions(dockerfile) if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users  # runAsNonRoot needs a number
    env = " ".join(rest for word, rest in instructions(dockerfile) if word == "ENV")
    assert re.search(r"\bNUMBA_NUM_THREADS=1\b", env)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_provides_the_hyphenated_dask_commands(dockerfile):
    """The dask chart runs ``dask-scheduler`` and ``dask-worker``; distributed no longer installs them."""
    copied = {Path(s).name: dest for sources, dest in _copies(dockerfile) for s in sources}
    for command in ("dask-scheduler", "dask-worker"):
        assert copied.get(command) == "/usr/local/bin/", command
        script = (DOCKER / "bin" / command).read_text(encoding="utf-8")
        assert script.startswith("#!/bin/sh\n")
        assert f'exec dask {command.split("-")[1]} "$@"' in script


# ------------------------------------------------------------------------ one tag scheme
def _documented_images() -> dict[Path, str]:
    """The tag each Dockerfile's header gives in its build command."""
    images = {}
    for dockerfile in DOCKERFILES:
        (match,) = re.findall(r"docker build -f (\S+) -t (\S+) \.", dockerfile.read_text(encoding="utf-8"))
        assert ROOT / match[0] == dockerfile, f"{dockerfile.name} documents a build of {match[0]}"
        images[dockerfile] = match[1]
    return images


def test_images_follow_one_tag_scheme():
    version = PYPROJECT["project"]["version"]
    images = _documented_images()
    assert images == {CPU: f"ghcr.io/vbi-dask/vbi-dask:{version}", CUDA: f"ghcr.io/vbi-dask/vbi-dask-cuda:{version}"}
    readme = set(re.findall(r"docker build -f (\S+) -t (\S+) \.", (DOCKER / "README.md").read_text(encoding="utf-8")))
    assert readme == {(str(path.relative_to(ROOT)), image) for path, image in images.items()}


def _containers(node):
    """Every container (a mapping with name and image) in a manifest."""
    if isinstance(node, dict):
        if isinstance(node.get("image"), str) and "name" in node:
            yield node
        for value in node.values():
            yield from _containers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _containers(value)


def test_manifests_and_helm_values_run_the_documented_images():
    images = _documented_images()
    containers = [
        c
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        for c in _containers(doc)
    ]
    assert containers
    for container in containers:
        gpu = "nvidia.com/gpu" in container.get("resources", {}).get("limits", {})
        assert container["image"] == images[CUDA if gpu else CPU], container["name"]
    values = yaml.safe_load((KUBERNETES / "helm" / "values.yaml").read_text(encoding="utf-8"))
    for component in ("scheduler", "worker", "jupyter"):
        image = values[component]["image"]
        assert f"{image['repository']}:{image['tag']}" == images[CPU], component
