"""Budgets of an external simulator: the guarantees of model budgets (content against the
function called directly, chunking and scheduler invariance, resume, extend, identity,
one writer, verify, rebuilding from the store alone, YAML through the CLI)."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import yaml

import vbi_dask as vd
from vbi_dask.budget import Budget
from vbi_dask.configuration import budget_from_config
from vbi_dask.cli import main
from vbi_dask.external import ExternalBudget, ExternalSimulator
from vbi_dask.store import StoreLock, StoreLockedError, StoreMismatchError, status, verify

from . import _external
from .conftest import assert_same_data, read_store

N_SIMS, CHUNK, SEED = 30, 8, 3
NAMES = ["x0", "x1", "x2"]


def prior(high_b: float = 1.0) -> vd.Prior:
    return vd.Prior({"a": (0.0, 1.0), "b": (-1.0, high_b)})


def external(
    function=_external.linear_gaussian,
    version: str = "1",
    n_sims: int = N_SIMS,
    chunk_size: int = CHUNK,
    names=NAMES,
    design=None,
) -> ExternalBudget:
    return ExternalBudget(
        ExternalSimulator(function, version=version, feature_names=names),
        design or prior(),
        n_sims=n_sims,
        chunk_size=chunk_size,
        seed=SEED,
    )


def run(budget, path, scheduler="sync"):
    return budget.run(path, scheduler=scheduler, progress=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("external") / "reference.zarr"
    assert run(external(), path).done == N_SIMS
    return path


def test_rows_are_the_function_applied_row_by_row(reference):
    stored = read_store(reference)
    theta = stored["theta"]
    # independent truth: the prior's draws and the function called one row at a time
    np.testing.assert_array_equal(theta, prior().sample(N_SIMS, seed=SEED).astype(np.float32))
    rows = np.concatenate(
        [_external.linear_gaussian(theta[k : k + 1].astype(np.float64), SEED, k) for k in range(N_SIMS)]
    )
    np.testing.assert_array_equal(stored["features"], rows.astype(np.float32))
    assert stored["valid"].all() and stored["done"].all()
    ds = vd.open_store(reference)
    assert list(ds["param"].values) == ["a", "b"] and list(ds["feature"].values) == NAMES
    assert "connectome_weights" not in ds and "node" not in ds.dims


def test_two_moons_rows_and_invalid_rows(tmp_path):
    moons = external(_external.two_moons, names=["x0", "x1"], n_sims=12)
    run(moons, tmp_path / "moons.zarr")
    stored = read_store(tmp_path / "moons.zarr")
    direct = _external.two_moons(stored["theta"].astype(np.float64), SEED, 0)
    np.testing.assert_array_equal(stored["features"], direct.astype(np.float32))

    summary = run(external(_external.nan_above, names=NAMES), tmp_path / "nan.zarr")
    stored = read_store(tmp_path / "nan.zarr")
    expected = stored["theta"][:, 0] <= 0.5
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(stored["valid"], expected)
    assert summary.invalid == int((~expected).sum()) and summary.done == N_SIMS


def test_chunking_and_scheduler_do_not_change_the_store(tmp_path, reference):
    run(external(), tmp_path / "threads.zarr", scheduler="threads")
    assert_same_data(tmp_path / "threads.zarr", reference)
    run(external(chunk_size=5), tmp_path / "chunk5.zarr")
    a, b = read_store(tmp_path / "chunk5.zarr"), read_store(reference)
    for name in ("theta", "features", "valid", "checksum", "done"):
        assert np.array_equal(a[name], b[name]), name


def test_resume_runs_only_missing_blocks_and_extend(tmp_path, reference):
    path = tmp_path / "partial.zarr"
    tasks = external().to_delayed(path)
    assert len(tasks) == 4
    dask.compute(*tasks[:2], scheduler="sync")  # a run stopped after two blocks
    summary = run(external(), path)
    assert (summary.ran, summary.skipped) == (N_SIMS - 2 * CHUNK, 2 * CHUNK)
    assert_same_data(path, reference)
    assert run(external(), path).ran == 0  # done: nothing runs again

    grown = tmp_path / "grown.zarr"
    run(external(n_sims=13), grown)
    summary = run(external(), grown)
    assert summary.ran == N_SIMS - CHUNK  # the partial block [8, 13) reruns with the new rows
    assert_same_data(grown, reference)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(function=_external.linear_gaussian_v2), "simulation.function"),
        (dict(version="2"), "simulation.version"),
        (dict(names=["y0", "x1", "x2"]), "simulation.feature_names[0]"),
        (dict(design=prior(high_b=2.0)), "prior.params[1].args.high"),
    ],
)
def test_resume_with_another_simulator_or_prior_is_refused(reference, change, field):
    with pytest.raises(StoreMismatchError, match=r"differing fields:\n  " + field.replace("[", r"\[")):
        external(**change).prepare(reference)


def _local(theta, seed, first_sim):
    return theta


def test_functions_that_workers_cannot_import_are_refused():
    def inner(theta, seed, first_sim):
        return theta

    main_function = lambda theta, seed, first_sim: theta  # noqa: E731
    for function, reason in [
        (lambda t, s, f: t, "lambda or a local function"),
        (inner, "lambda or a local function"),
        ("tests.budget._external:missing", "cannot be imported"),
        ("no_such_module_xyz:f", "cannot be imported"),
        ("tests.budget._external", "expected"),
    ]:
        with pytest.raises(ValueError, match=reason):
            ExternalSimulator(function, version="1", n_features=3)
    main_function.__module__, main_function.__qualname__ = "__main__", "simulate"
    with pytest.raises(ValueError, match="defined in __main__"):
        ExternalSimulator(main_function, version="1", n_features=3)
    with pytest.raises(ValueError, match="feature_names=.* or n_features"):
        ExternalSimulator(_local, version="1")
    with pytest.raises(TypeError, match="free names, without a model"):
        ExternalBudget(
            ExternalSimulator(_local, version="1", n_features=2),
            vd.Prior({"G": (0, 1)}, model="mpr", n_nodes=2),
            n_sims=4,
        )
    with pytest.raises(ValueError, match="'nodes' needs a model"):
        vd.Prior({"a": {"low": 0, "high": 1, "nodes": [0]}})


def test_a_wrong_shape_fails_its_blocks_and_leaves_them_not_done(tmp_path):
    summary = run(external(_external.wrong_shape), tmp_path / "bad.zarr")
    assert summary.failed == N_SIMS and summary.done == 0
    assert "returned shape (8, 7) for 8 rows; expected (sim, feature) = (8, 3)" in summary.errors[0]


def test_rebuilt_from_the_store_alone_and_described(reference):
    assert ExternalBudget.from_store(reference) == external()
    assert ExternalSimulator(_external.linear_gaussian, version="1", n_features=3).feature_names == (
        "x[0]",
        "x[1]",
        "x[2]",
    )
    with pytest.raises(ValueError, match="ExternalBudget.from_store"):
        Budget.from_store(reference)
    text = str(status(reference))
    assert "tests.budget._external:linear_gaussian (external, version '1')" in text and "30 / 30" in text


def test_verify_and_one_writer(tmp_path, reference):
    report = verify(reference)
    assert report.ok and report.checked_blocks == 4
    path = tmp_path / "claimed.zarr"
    with StoreLock(path):
        with pytest.raises(StoreLockedError, match="being written by another driver"):
            run(external(), path)
    assert not path.exists()  # refused before it touched anything


def test_yaml_configuration_through_the_cli(tmp_path, reference):
    config = {
        "simulator": {"function": "tests.budget._external:linear_gaussian", "version": "1", "features": NAMES},
        "prior": {"a": [0.0, 1.0], "b": [-1.0, 1.0]},
        "n_sims": N_SIMS,
        "chunk_size": CHUNK,
        "seed": SEED,
    }
    assert budget_from_config(config) == external()
    file = tmp_path / "external.yaml"
    file.write_text(yaml.safe_dump(config))
    assert main(["simulate", str(file), "--store", str(tmp_path / "cli.zarr"), "--scheduler", "sync", "--quiet"]) == 0
    assert_same_data(tmp_path / "cli.zarr", reference)
    for bad, message in [
        ({"features": ["fc"]}, "unknown key"),
        ({"simulator": {"function": "x:y"}}, "missing"),
        ({"simulator": {**config["simulator"], "n_features": 3}}, "one of them"),
    ]:
        with pytest.raises(ValueError, match=message):
            budget_from_config({**config, **bad})
