"""Budgets with the local schedulers: store schema and content, resume, extend, refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import zarr

import vbi_dask
from vbi_dask.budget import Budget
from vbi_dask.configuration import budget_from_config
from vbi_dask.features import FeatureSet
from vbi_dask.store import StoreMismatchError, open_store

from .conftest import FEATURES, assert_same_data, budget, read_lines, read_store, simulation, tree


def test_store_schema_and_attributes(reference_store):
    ds = open_store(reference_store)
    assert ds["theta"].dims == ("sim", "param") and ds["theta"].dtype == np.float32
    assert ds["features"].dims == ("sim", "feature") and ds["features"].dtype == np.float32
    assert ds["bold"].dims == ("sim", "time_bold", "node") and ds["bold"].dtype == np.float32
    assert ds["valid"].dtype == bool and ds["done"].dtype == bool and ds["done"].values.all()
    assert ds["theta"].chunks[0] == (8,) * 5  # lazy, chunked along sim only
    assert list(ds["param"].values) == ["G", "eta[0]", "eta[3]"]
    b = budget()
    assert list(ds["feature"].values) == b.feature_names
    assert ds["sim"].values.tolist() == list(range(40))
    assert ds["time_bold"].values[0] == 100.0 and ds.sizes["time_bold"] == 20
    attrs = ds.attrs
    assert attrs["schema_version"] == 1 and attrs["vbi_dask_version"] == vbi_dask.__version__
    assert json.loads(attrs["prior"]) == b.prior.to_dict()
    assert json.loads(attrs["featureset"]) == b.features.to_dict()
    assert json.loads(attrs["simulation"]) == b.simulation.to_dict()
    assert (attrs["seed"], attrs["n_sims"], attrs["chunk_size"]) == (7, 40, 8)
    assert attrs["connectome_hash"] == b.simulation.connectome.hash()
    np.testing.assert_array_equal(ds["connectome_weights"].values, b.simulation.connectome.weights)


def test_rows_are_reproducible_from_the_store_alone(reference_store):
    """Rebuild the budget from the store, re-simulate rows 9..12 independently, compare."""
    rebuilt = Budget.from_store(reference_store)
    assert rebuilt.attrs() == budget().attrs()
    ds = open_store(reference_store).load()
    theta = ds["theta"].values[9:13]
    np.testing.assert_array_equal(theta, rebuilt.prior.sample(4, seed=7, first_sim=9).astype(np.float32))
    sim = rebuilt.simulation
    out = sim.run(rebuilt.prior.to_params(theta.astype(np.float64)), n_sims=4, seed=7, first_sim=9, threads=1)
    np.testing.assert_array_equal(out["bold"].values, ds["bold"].values[9:13])
    features, names = FeatureSet.from_dict({"features": FEATURES}).compute(out["bold"].values.astype(np.float64), 100.0)
    assert names == list(ds["feature"].values)
    np.testing.assert_array_equal(np.asarray(features, np.float32), ds["features"].values[9:13])
    assert ds["valid"].values[9:13].tolist() == np.isfinite(features).all(1).tolist()


def test_threads_scheduler_and_the_lazy_graph_give_the_same_store(reference_store, tmp_path):
    import dask

    summary = budget().run(tmp_path / "threads.zarr", scheduler="threads", n_workers=2, progress=False)
    assert (summary.done, summary.ran, summary.failed) == (40, 40, 0)
    assert_same_data(reference_store, tmp_path / "threads.zarr")

    tasks = budget().to_delayed(tmp_path / "graph.zarr")
    assert len(tasks) == 5 and all(t.key.startswith("simulate-") for t in tasks)
    again = budget().to_delayed(tmp_path / "graph.zarr")
    assert [t.key for t in tasks] == [t.key for t in again]  # deterministic names
    results = dask.compute(*tasks, scheduler="sync")
    assert all(r["ran"] and r["error"] is None and set(r) >= {"simulate_s", "write_s"} for r in results)
    assert_same_data(reference_store, tmp_path / "graph.zarr")
    assert budget().to_delayed(tmp_path / "graph.zarr") == []  # nothing left to do


def test_resume_runs_only_missing_blocks(reference_store, tmp_path, count_writes):
    path = tmp_path / "resume.zarr"
    shutil.copytree(reference_store, path)
    done = zarr.open_group(str(path), mode="r+")["done"]
    done[8:16] = False  # as if the driver died before these blocks were marked
    done[32:40] = False
    summary = budget().run(path, scheduler="sync", progress=False)
    assert sorted(read_lines(count_writes)) == ["32", "8"]
    assert (summary.ran, summary.skipped, summary.done) == (16, 24, 40)
    assert tree(path) == tree(reference_store)
    budget().run(path, scheduler="sync", progress=False)
    assert len(read_lines(count_writes)) == 2  # a complete store: nothing runs


def test_extend_appends_simulations_with_the_same_seed_scheme(reference_store, tmp_path, count_writes):
    small = tmp_path / "small.zarr"
    budget(n_sims=20).run(small, scheduler="sync", progress=False)  # 20: the last block is partial
    before = read_store(small)
    summary = budget(n_sims=40).run(small, scheduler="sync", progress=False)
    assert summary.done == 40 and open_store(small).attrs["n_sims"] == 40
    # the partial block [16, 24) is recomputed whole (identical values), then 24..40
    assert sorted(read_lines(count_writes), key=int) == ["0", "8", "16", "16", "24", "32"]
    assert_same_data(reference_store, small)
    after = read_store(small)
    for name in before:
        assert np.array_equal(before[name].view(np.uint8), after[name][:20].view(np.uint8))
    assert open_store(small)["sim"].values.tolist() == list(range(40))


def test_diverging_simulations_are_flagged_not_fatal(tmp_path):
    b = budget(n_sims=48, eta=(-6.0, -1.0), keep_bold=False)  # eta above ~-4 diverges at dt 0.1 ms
    summary = b.run(tmp_path / "div.zarr", scheduler="sync", progress=False)
    ds = open_store(tmp_path / "div.zarr").load()
    valid, features = ds["valid"].values, ds["features"].values
    assert summary.failed == 0 and summary.done == 48 and ds["done"].values.all()
    assert 0 < summary.invalid < 48 and summary.invalid == int((~valid).sum())
    # the summary says where they are: every invalid row has eta above the lowest invalid one
    assert summary.invalid_where[0] == f"{summary.invalid} invalid rows of 48 ({100 * summary.invalid / 48:.3g}%)"
    assert summary.invalid_where[1].startswith("they concentrate at high eta: eta >= ")
    assert ds["theta"].sel(param="eta").values[~valid].min() > ds["theta"].sel(param="eta").values[valid].min()
    assert "invalid rows:\n  " in str(summary)
    assert np.array_equal(valid, np.isfinite(features).all(axis=1))
    assert "bold" not in ds


def test_features_from_the_sampled_monitor_without_bold(tmp_path):
    from vbi_dask import Simulation, TemporalAverage
    from .conftest import connectome, prior

    sim = Simulation("mpr", connectome=connectome(), dt_ms=0.1, duration_ms=2000.0, monitors=(TemporalAverage(10.0),))
    b = Budget(sim, prior(), n_sims=4, features=["moments", "fc"], chunk_size=4, seed=1)
    assert b.layout.signal == "sampled" and b.layout.signals[0].n_time == 200
    b.run(tmp_path / "tavg.zarr", scheduler="sync", progress=False)
    ds = open_store(tmp_path / "tavg.zarr").load()
    out = sim.run_arrays(b.prior.to_params(ds["theta"].values.astype(float)), n_sims=4, seed=1, threads=1)
    r = np.moveaxis(out["sampled"][:, 0], -1, 0).astype(np.float64)
    np.testing.assert_array_equal(ds["features"].values, np.asarray(b.features.compute(r, 10.0)[0], np.float32))


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        budget(chunk_size=0)
    with pytest.raises(ValueError, match="n_sims must be a positive integer"):
        budget(n_sims=-3)
    with pytest.raises(KeyError, match="valid parameters"):
        budget(Gx=(0.0, 1.0))
    with pytest.raises(ValueError, match="low"):
        budget(G=(1.0, 0.0))
    from vbi_dask import Simulation, TemporalAverage
    from .conftest import connectome, prior

    no_bold = Simulation("mpr", connectome=connectome(), dt_ms=0.1, monitors=(TemporalAverage(10.0),))
    with pytest.raises(ValueError, match="keep_bold needs a Bold monitor"):
        Budget(no_bold, prior(), n_sims=4, features=["moments"], keep_bold=True)
    with pytest.raises(ValueError, match="FCD window"):
        Budget(simulation(), prior(), n_sims=4, features=[{"name": "fcd", "window_samples": 50}])
    from vbi_dask.prior import Prior

    with pytest.raises(ValueError, match="the prior is for 7 nodes"):
        Budget(simulation(), Prior({"G": (0, 1)}, model="mpr", n_nodes=7), n_sims=4, features=["fc"])


def test_a_store_of_another_configuration_is_refused_untouched(reference_store, tmp_path):
    path = tmp_path / "other.zarr"
    shutil.copytree(reference_store, path)
    before = tree(path)
    changed = dataclasses.replace(budget(), seed=8, simulation=simulation(duration_ms=2500.0))
    with pytest.raises(StoreMismatchError) as info:
        changed.run(path, scheduler="sync", progress=False)
    message = str(info.value)
    assert "seed: store 7, budget 8" in message
    assert "simulation.duration_ms: store 2000.0, budget 2500.0" in message
    with pytest.raises(StoreMismatchError, match="chunk_size: store 8, budget 16"):
        budget(chunk_size=16).run(path, scheduler="sync", progress=False)
    with pytest.raises(StoreMismatchError, match=r"prior.params\[0\].args.high: store 1.0, budget 2.0"):
        budget(G=(0.0, 2.0)).run(path, scheduler="sync", progress=False)  # the changed value, however long the prior
    with pytest.raises(ValueError, match="does not shrink"):
        budget(n_sims=24).run(path, scheduler="sync", progress=False)
    assert tree(path) == before


def test_store_paths_that_are_not_stores_are_refused(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(ValueError, match="is a file"):
        budget().run(file, scheduler="sync", progress=False)
    assert file.read_text() == "keep me"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "data.csv").write_text("1,2")
    with pytest.raises(ValueError, match="not a Zarr v3 store"):
        budget().run(folder, scheduler="sync", progress=False)
    assert (folder / "data.csv").read_text() == "1,2"
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="is a file"):
        open_store(file)


def test_open_store_validates_the_schema(reference_store, tmp_path):
    path = tmp_path / "schema.zarr"
    shutil.copytree(reference_store, path)
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["schema_version"] = 2
    with pytest.raises(ValueError, match="schema version 2"):
        open_store(path)
    with pytest.raises(ValueError, match="schema version 2"):
        budget().run(path, scheduler="sync", progress=False)
    group.attrs["schema_version"] = 1
    del group.attrs["featureset"]
    with pytest.raises(ValueError, match="featureset"):
        open_store(path)
    shutil.rmtree(path)
    shutil.copytree(reference_store, path)
    shutil.rmtree(path / "valid")
    with pytest.raises(ValueError, match="lacks variable 'valid'"):
        open_store(path)


def test_a_store_of_other_kernel_numerics_is_not_resumed(reference_store, tmp_path):
    """A store filled by kernels that rounded differently (before the block design) keeps
    its rows apart: resuming or extending it would mix two roundings of one configuration."""
    path = tmp_path / "old.zarr"
    shutil.copytree(reference_store, path)
    group = zarr.open_group(str(path), mode="r+")
    del group.attrs["kernel_numerics"]  # as written by vbi-dask before the field existed
    group.attrs["vbi_dask_version"] = "0.0.9"
    with pytest.raises(StoreMismatchError, match=r"kernel_numerics: store '<absent>', budget 2(.|\n)*vbi-dask 0.0.9"):
        budget().run(path, scheduler="sync", progress=False)
    assert open_store(path).sizes["sim"] > 0  # still readable for training


def test_budget_from_config(tmp_path):
    from .conftest import connectome_config

    config = {
        "model": "mpr",
        "connectome": connectome_config(tmp_path),
        "simulation": {
            "dt_ms": 0.1,
            "duration_ms": 2000.0,
            "monitors": {"temporal_average": {"period_ms": 10.0}, "bold": {"tr_ms": 100.0}},
        },
        "prior": {"G": [0.0, 1.0], "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}},
        "n_sims": 40,
        "chunk_size": 8,
        "seed": 7,
        "features": FEATURES,
        "keep_bold": True,
    }
    b = budget_from_config(config, base_dir=tmp_path)
    assert b.attrs() == budget().attrs()
    with pytest.raises(ValueError, match="unknown configuration key"):
        budget_from_config({**config, "n_sim": 3}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown monitor 'bolt'"):
        budget_from_config({**config, "simulation": {"monitors": {"bolt": {}}}}, base_dir=tmp_path)
    grid = budget_from_config(
        {**{k: v for k, v in config.items() if k != "prior"}, "grid": {"G": [0.1, 0.2]}}, base_dir=tmp_path
    )
    assert grid.prior.n_points == 2


def test_example_configuration_loads():
    import pathlib

    import yaml

    path = pathlib.Path(__file__).parents[2] / "examples" / "mpr_budget.yaml"
    b = budget_from_config(yaml.safe_load(path.read_text()), base_dir=path.parent)
    assert b.simulation.connectome.n_nodes == 84 and b.layout.signal == "bold"
    assert len(b.param_names) == 85 and b.param_names[:2] == ["G", "eta[0]"]


def test_unknown_scheduler_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown scheduler 'processes'"):
        budget().run(tmp_path / "s.zarr", scheduler="processes", progress=False)
    assert not (tmp_path / "s.zarr").exists()


def test_progress_to_a_file_is_a_few_lines_and_the_summary(tmp_path, capsys):
    """Output captured (not a terminal, like a SLURM log): no carriage returns, one
    progress line at most every 10 s and one at the end, on stderr; the summary on stdout."""
    summary = budget(n_sims=16).run(tmp_path / "p.zarr", scheduler="sync", progress=True)
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert 1 <= len(lines) <= 1 + int(summary.wall_s // 10)
    assert lines[-1].startswith("all 2 blocks done, ") and "sims/s" in lines[-1]
    assert "simulations done   16 / 16" in captured.out
    assert str(summary) in captured.out and summary.sims_per_s > 0


def test_progress_in_a_terminal_is_a_tqdm_bar():
    import io

    from vbi_dask._progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = Progress(4, unit="blocks", work_unit="sims", stream=stream)
    for _ in range(4):
        bar.update(1, 8)
    bar.close()
    assert "\r" in stream.getvalue() and "4/4" in stream.getvalue() and "sims/s" in stream.getvalue()


def test_backend_auto_without_gpu_gives_the_cpu_store(reference_store, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU: "auto" resolves to the CPU kernel
    auto = dataclasses.replace(budget(), backend="auto")
    auto.run(tmp_path / "auto.zarr", scheduler="sync", progress=False)
    assert_same_data(reference_store, tmp_path / "auto.zarr")
    with pytest.raises(ValueError, match="backend must be"):
        dataclasses.replace(budget(), backend="tpu")
