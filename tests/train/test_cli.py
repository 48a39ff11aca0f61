"""``vbi-dask train``, ``infer`` and ``demo``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from vbi_dask.cli import main
from vbi_dask.prior import Prior
from vbi_dask.train import SamplingTimeout, load_posterior, sample_posterior
from vbi_dask.train._synthetic import linear_gaussian_data, linear_gaussian_prior, write_store

from tests._processes import signal_when


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    store = folder / "lg.zarr"
    theta, x = linear_gaussian_data(2000, 2, 0.5, seed=9)
    write_store(store, theta, x, linear_gaussian_prior(2), chunk_size=200)
    code = main(
        [
            "train",
            str(store),
            "--out",
            str(folder / "model.pt"),
            "--estimator",
            "maf",
            "--hidden-features",
            "8",
            "--num-transforms",
            "1",
            "--max-epochs",
            "3",
            "--test-fraction",
            "0.1",
            "--log-dir",
            str(folder / "logs"),
        ]
    )
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
    assert (
        main(["infer", str(model), "--observed", str(named), "--samples", "20", "--out", str(tmp_path / "s.nc")]) == 0
    )
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


@pytest.fixture(scope="module")
def box_model(tmp_path_factory):
    """A prior with bounds (the linear-Gaussian one has none, so nothing is ever rejected):
    theta ~ U(-1, 1)^2, x = theta + 0.1 noise, and an MDN, whose mean follows x linearly
    far beyond the simulations (sbi's MAF saturates there)."""
    folder = tmp_path_factory.mktemp("box")
    rng = np.random.default_rng(0)
    theta = rng.uniform(-1.0, 1.0, (1000, 2)).astype(np.float32)
    x = (theta + 0.1 * rng.standard_normal((1000, 2))).astype(np.float32)
    prior = Prior({"eta": {"low": -1.0, "high": 1.0, "nodes": [0, 1]}}, model="mpr", n_nodes=2)
    write_store(folder / "box.zarr", theta, x, prior, chunk_size=100)
    assert (
        main(
            [
                "train",
                str(folder / "box.zarr"),
                "--out",
                str(folder / "box.pt"),
                "--estimator",
                "mdn",
                "--hidden-features",
                "16",
                "--max-epochs",
                "10",
                "--learning-rate",
                "5e-3",
                "--batch-size",
                "50",
            ]
        )
        == 0
    )
    return folder / "box.pt"


def test_infer_far_from_the_simulations_stops_at_its_time_limit(box_model, tmp_path, capsys):
    """Every feature = 20 (the simulations' lie in [-1.3, 1.3]): no draw of the flow falls
    inside the prior; rejection sampling stops at --max-sampling-time with one line, and
    --no-reject returns the unrestricted posterior."""
    far, near = tmp_path / "far.npy", tmp_path / "near.npy"
    np.save(far, np.full(2, 20.0))
    np.save(near, np.full(2, 0.3))
    capsys.readouterr()
    t0 = time.monotonic()
    # --no-check: the misspecification warning (tests/train/test_misspecification.py) would come first
    assert main(["infer", str(box_model), "--observed", str(far), "--max-sampling-time", "2", "--no-check"]) == 1
    elapsed = time.monotonic() - t0
    assert 2.0 <= elapsed < 12.0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and captured.out == "", captured
    assert err.startswith(
        "vbi-dask infer: failed: SamplingTimeout: sampling within the prior stopped after "
        "max_sampling_time=2 s: acceptance rate 0.000% (0 of 10000 draws"
    )
    assert "outside what the simulations produce (the prior's support)" in err
    assert "widen the prior" in err and "--no-reject" in err

    out = tmp_path / "free.npy"
    assert (
        main(
            [
                "infer",
                str(box_model),
                "--observed",
                str(far),
                "--no-reject",
                "--samples",
                "50",
                "--out",
                str(out),
                "--no-check",
            ]
        )
        == 0
    )
    free = np.load(out)
    assert free.shape == (50, 2) and np.isfinite(free).all()
    assert (np.abs(free) > 1.0).any(axis=1).all()  # every draw outside the prior's box
    err = capsys.readouterr().err
    assert err.strip() == (
        "vbi-dask infer: warning: 100.0% of samples drawn with reject_outside_prior=False lie "
        "outside the prior support. This may lead to incorrect inference."
    )

    assert main(["infer", str(box_model), "--observed", str(near), "--samples", "50", "--out", str(out)]) == 0
    assert np.abs(np.load(out)).max() <= 1.0  # near the simulations, rejection keeps draws inside the prior


def test_sample_posterior_raises_sampling_timeout(box_model):
    posterior = load_posterior(box_model)
    with pytest.raises(SamplingTimeout, match=r"acceptance rate 0\.000% \(0 of 10000 draws"):
        sample_posterior(posterior, np.full(2, 20.0), 10, max_sampling_time=0.5)
    assert issubclass(SamplingTimeout, RuntimeError)
    with pytest.raises(SamplingTimeout, match="for observation 1 "):  # a batch names the observation
        sample_posterior(posterior, np.array([[0.3, 0.3], [20.0, 20.0]]), 10, max_sampling_time=0.5)
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got -5"):
        sample_posterior(posterior, np.zeros(2), -5)


def test_infer_help_shows_the_time_limit(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["infer", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-sampling-time SECONDS" in text and "(default 60)" in text
    assert "--no-reject keep every draw of the trained flow, also those outside the prior's support" in text


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--samples", "-5", "argument --samples: must be a positive integer, got '-5'"),
        ("--samples", "0", "argument --samples: must be a positive integer, got '0'"),
        ("--samples", "2.5", "argument --samples: must be a positive integer, got '2.5'"),
        ("--max-sampling-time", "0", "argument --max-sampling-time: must be a positive number, got '0'"),
        ("--max-sampling-time", "inf", "argument --max-sampling-time: must be a positive number, got 'inf'"),
    ],
)
def test_infer_rejects_bad_numbers_as_usage_errors(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit:
        main(["infer", str(tmp_path / "m.pt"), "--observed", str(tmp_path / "x.npy"), flag, value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"vbi-dask infer: error: {message}")


def test_infer_checks_paths_before_sampling(model, tmp_path, capsys):
    observed = tmp_path / "x.npy"
    np.save(observed, np.zeros(2))
    file = tmp_path / "file"
    file.write_text("")
    cases = [
        (
            ["infer", str(tmp_path / "missing.pt"), "--observed", str(observed)],
            f"model file {str(tmp_path / 'missing.pt')!r} does not exist",
        ),
        (["infer", str(tmp_path), "--observed", str(observed)], f"model file {str(tmp_path)!r} is a directory"),
        (
            ["infer", str(model), "--observed", str(tmp_path / "no.npy")],
            f"--observed {str(tmp_path / 'no.npy')!r} does not exist",
        ),
        (
            ["infer", str(model), "--observed", str(observed), "--out", str(tmp_path / "s.txt")],
            "unknown output type '.txt' of --out; use .csv, .npy or .nc",
        ),
        (
            ["infer", str(model), "--observed", str(observed), "--out", str(tmp_path)],
            f"--out {str(tmp_path)!r} is an existing directory",
        ),
        (
            ["infer", str(model), "--observed", str(observed), "--out", str(file / "s.csv")],
            f"{str(file)!r} is a file, not a folder",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "", argv  # nothing sampled
        assert captured.err.startswith("vbi-dask infer: error: ") and message in captured.err, captured.err
        assert len(captured.err.strip().splitlines()) == 1
    out = tmp_path / "new" / "folder" / "s.npy"  # a folder that can be created is
    assert main(["infer", str(model), "--observed", str(observed), "--samples", "5", "--out", str(out)]) == 0
    assert np.load(out).shape == (5, 2)


def test_train_checks_paths_before_training(model, tmp_path, capsys):
    store = model.parent / "lg.zarr"
    logs = tmp_path / "logs"
    file = tmp_path / "file"
    file.write_text("")
    cases = [
        (["train", str(store), "--out", str(tmp_path)], f"--out {str(tmp_path)!r} is an existing directory"),
        (["train", str(store), "--out", str(file / "m.pt")], f"{str(file)!r} is a file, not a folder"),
        (["train", str(file)], f"{str(file)!r} is a file, not a store folder"),
        (["train", str(tmp_path / "none.zarr")], f"no store at {str(tmp_path / 'none.zarr')!r}"),
    ]
    for argv, message in cases:
        t0 = time.monotonic()
        assert main(argv + ["--log-dir", str(logs)]) == 2, argv
        assert time.monotonic() - t0 < 1.0 and not logs.exists()  # refused before training started
        err = capsys.readouterr().err
        assert err.startswith("vbi-dask train: error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a fresh process imports torch and Lightning
def test_ctrl_c_during_training_exits_130_with_one_line(box_model, tmp_path):
    """Lightning turns Ctrl-C into sys.exit(1); the command still says it was interrupted."""
    logs, out = tmp_path / "logs", tmp_path / "m.pt"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vbi_dask.cli",
            "train",
            str(box_model.parent / "box.zarr"),
            "--out",
            str(out),
            "--max-epochs",
            "100000",
            "--stop-after-epochs",
            "100000",
            "--log-dir",
            str(logs),
            "--quiet",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # an epoch is done (its checkpoint exists): training runs
    stdout, stderr = signal_when(
        process, (logs / "checkpoints" / "last.ckpt").exists, signal.SIGINT, group=True, poll_s=0.05
    )
    assert process.returncode == 130, stderr[-2000:]
    assert stderr == (
        f"vbi-dask train: interrupted: training stopped, no model written to {out}; resume with the "
        "same command and --resume\n"
    )
    assert stdout == "" and not out.exists()


def test_demo_end_to_end_small(tmp_path):
    """The demo job, shrunk: 200 simulations of 1 s on the 84-region connectome through a
    LocalCluster of 2 workers, training, diagnostics, figures, report."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-sims", "200", "--duration-ms", "1000", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget"]["done"] == 200
    assert summary["observation"]["reproduced_from_store"] is True
    for name in (
        "report.md",
        "report.html",
        "posterior.pt",
        "posterior_pair.png",
        "zscore_shrinkage.png",
        "sbc.png",
        "tarp.png",
        "fc_predictive.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| G |" in report
    # every verdict as computed, never softened
    checks = summary["calibration"]["checks"]
    assert set(checks) == {"sbc_ranks", "sbc_dap", "tarp"}
    for name, label in (
        ("sbc_ranks", "SBC rank KS test"),
        ("sbc_dap", "C2ST of prior vs data-averaged posterior"),
        ("tarp", "TARP"),
    ):
        section = report.split(f"**{label}**", 1)[1].split("\n- ", 1)[0]
        assert ("Verdict:\n  passes" in section or "Verdict: passes" in section) == checks[name], (name, section)
    assert ("Every calibration check passes" in report) == summary["calibration"]["passed"]
    if not summary["calibration"]["passed"]:
        assert "FAIL: the posterior's spread does not match its errors" in report

    # the HTML page in a real headless browser: it loads and shows every figure
    from tests._browser import page_images

    page = page_images(out / "report.html")
    assert page["title"] == "vbi-dask demo report" and "Held-out test simulations" in page["text"]
    shown = {alt: (loaded, width, height, rendered) for alt, loaded, width, height, rendered in page["images"]}
    assert set(shown) == set(summary["figures"])
    for name, (loaded, width, height, rendered) in shown.items():
        assert loaded and width > 100 and height > 100 and rendered > 100, (name, shown[name])
