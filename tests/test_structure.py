"""Who may touch what: Zarr is opened and store attributes are built only in
vbi_dask/store.py; training never imports the budget (data flows one way)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vbi_dask"
STORE = PACKAGE / "store.py"


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imported(tree: ast.AST, path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_store_module_opens_zarr():
    offenders = []
    for path in modules():
        if path == STORE:
            continue
        tree = ast.parse(path.read_text())
        if any(name == "zarr" or name.startswith("zarr.") for name in imported(tree, path)):
            offenders.append(f"{path.relative_to(PACKAGE)} imports zarr")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("open_zarr", "to_zarr", "open_group", "_group"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses {node.attr}")
    assert offenders == []


def test_only_the_store_module_builds_store_attributes():
    """The schema version, a store-only attribute, is a dict key only in store.py."""
    offenders = []
    for path in modules():
        if path == STORE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if "schema_version" in keys:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_training_never_imports_the_budget():
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules()
        if "train" in path.relative_to(PACKAGE).parts
        for name in sorted(imported(ast.parse(path.read_text()), path))
        if name == "vbi_dask.budget" or name.startswith("vbi_dask.budget.")
    ]
    assert offenders == []
