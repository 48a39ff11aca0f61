"""``vbi-dask train``, ``infer`` and ``demo``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from vbi_dask.cli import main
from vbi_dask.train._synthetic import linear_gaussian_data, linear_gaussian_prior, write_store


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    store = folder / "lg.zarr"
    theta, x = linear_gaussian_data(2000, 2, 0.5, seed=9)
    write_store(store, theta, x, linear_gaussian_prior(2), chunk_size=200)
    code = main(["train", str(store), "--out", str(folder / "model.pt"), "--estimator", "maf", "--hidden", "8",
                 "--transforms", "1", "--max-epochs", "3", "--test-fraction", "0.1", "--log-dir", str(folder / "logs")])
    assert code == 0
    assert (folder / "logs" / "logs" / "metrics.csv").exists()
    return folder / "model.pt"


def test_train_writes_a_model_and_reports(model, capsys):
    assert model.exists()


def test_infer_from_files(model, tmp_path, capsys):
    observed = tmp_path / "x.npy"
    np.save(observed, np.array([[0.1, 0.2], [1.0, -1.0]], dtype=np.float32))
    out = tmp_path / "samples.csv"
    assert main(["infer", str(model), "--observed", str(observed), "--samples", "50", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "observation 1: 50 posterior samples" in text and "eta[1]" in text
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (100, 3) and set(table[:, 0]) == {0.0, 1.0}
    named = tmp_path / "x.nc"
    xr.DataArray([0.2, 0.1], dims="feature", coords={"feature": ["x[1]", "x[0]"]}).to_netcdf(named)
    assert main(["infer", str(model), "--observed", str(named), "--samples", "20", "--out",
                 str(tmp_path / "s.nc")]) == 0
    assert xr.load_dataarray(tmp_path / "s.nc").dims == ("sample", "param")


def test_infer_bad_input(model, tmp_path, capsys):
    wrong = tmp_path / "wrong.csv"
    np.savetxt(wrong, np.zeros((1, 3)), delimiter=",")
    assert main(["infer", str(model), "--observed", str(wrong)]) == 2
    assert "has 3 feature columns; this posterior takes the store's 2" in capsys.readouterr().err
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([np.nan, 0.0]))
    assert main(["infer", str(model), "--observed", str(nan)]) == 2
    assert "NaN or inf" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "missing.pt"), "--observed", str(nan)]) == 2
    assert main(["train", str(tmp_path / "missing.zarr")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_demo_end_to_end_small(tmp_path):
    """The demo job, shrunk: 200 simulations of 1 s on the 84-region connectome through a
    LocalCluster of 2 workers, training, diagnostics, figures, report."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-sims", "200", "--duration-ms", "1000", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget"]["done"] == 200
    assert summary["observation"]["reproduced_from_store"] is True
    for name in ("report.md", "posterior.pt", "posterior_pair.png", "zscore_shrinkage.png", "sbc.png",
                 "fc_predictive.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| G |" in (out / "report.md").read_text()
