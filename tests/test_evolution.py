"""Evolutionary fitting (CMA-ES through cma): the loss against scipy, reaching the
optimum's level on a problem with a known optimum, every evaluation in the store, a
killed run resuming to the same store, bad input refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy.stats import pearsonr

import vbi_dask as vd
from vbi_dask.evolution import FeatureLoss, evolve
from vbi_dask.external import ExternalBudget, ExternalSimulator
from vbi_dask.store import read_round, status, verify

from tests._processes import signal_when
from tests.budget import _external
from tests.budget.conftest import assert_same_data

ROOT = Path(__file__).resolve().parents[1]
TARGET = np.array([[0.8, -0.5]])
GENERATIONS, POPSIZE = 8, 8


def budget(prior=None) -> ExternalBudget:
    return ExternalBudget(
        ExternalSimulator("tests.budget._external:toy_fc", version="1", feature_names=_external.FC_NAMES),
        prior or vd.Prior({"a": (-2.0, 2.0), "b": (-2.0, 2.0)}),
        n_sims=1,
        chunk_size=4,
        seed=5,
    )


def subject() -> np.ndarray:
    return _external.toy_fc(TARGET, 99, 10**9)[0]  # noise of an index no budget row uses


def loss() -> FeatureLoss:
    return FeatureLoss(subject(), _external.FC_NAMES, fc=1.0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("evolution") / "reference.zarr"
    return path, evolve(
        budget(), path, loss(), generations=GENERATIONS, popsize=POPSIZE, seed=0, scheduler="sync", progress=False
    )


def test_loss_is_one_minus_the_fc_correlation_plus_the_fcd_distance():
    rng = np.random.default_rng(0)
    names = ["mean[0]", "fc[0,1]", "fc[0,2]", "fc[1,2]", "fcd_q10", "fcd_q90"]
    observed, rows = rng.normal(size=6), rng.normal(size=(5, 6))
    rows[3, 2] = np.nan
    got = FeatureLoss(observed, names, fc=2.0, fcd=0.5)(rows)
    for k in (0, 1, 2, 4):
        expected = (
            2.0 * (1 - pearsonr(rows[k, 1:4], observed[1:4])[0]) + 0.5 * np.abs(rows[k, 4:] - observed[4:]).mean()
        )
        assert got[k] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(got[3])


def test_the_loss_reads_the_fc_of_a_named_signal():
    rng = np.random.default_rng(1)
    names = ["eeg.mean[0]", "bold.fc[0,1]", "bold.fc[0,2]", "bold.fc[1,2]", "eeg.fc[0,1]", "bold.fcd_q10"]
    observed, rows = rng.normal(size=6), rng.normal(size=(4, 6))
    got = FeatureLoss(observed, names, fc=1.0, fcd=1.0, signal="bold")(rows)
    expected = [1 - pearsonr(r[1:4], observed[1:4])[0] + abs(r[5] - observed[5]) for r in rows]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert FeatureLoss(observed, names, signal="bold").to_dict()["signal"] == "bold"
    with pytest.raises(
        ValueError, match=r"needs feature columns 'fc\[\.\.\.'.*the signals \['bold', 'eeg'\] have them"
    ):
        FeatureLoss(observed, names)


def test_cma_reaches_the_optimum_level_and_records_every_evaluation(reference):
    path, fit = reference
    group = zarr.open_group(str(path), mode="r")
    n = GENERATIONS * POPSIZE
    assert fit.n_sims == n and group["done"].shape == (n,) and group["done"][:].all()
    np.testing.assert_array_equal(group["round"][:], np.repeat(np.arange(GENERATIONS, dtype=np.int16), POPSIZE))
    theta, features = group["theta"][:], group["features"][:]
    losses = loss()(features)
    # the reported best is the best stored evaluation, its loss recomputed from the store
    assert fit.best_sim == int(np.argmin(losses)) and fit.best_loss == pytest.approx(losses.min(), rel=1e-12)
    assert fit.best_theta == pytest.approx(dict(zip(("a", "b"), theta[fit.best_sim].astype(float))))
    # independent truth: the loss of the subject's own parameters, simulated with the budget's noise
    at_target = loss()(_external.toy_fc(TARGET.astype(np.float32).astype(float), 5, 0))[0]
    assert fit.best_loss < at_target + 2e-3
    assert fit.history[-1]["median_loss"] < fit.history[0]["median_loss"] / 20  # the population converged
    for g in range(GENERATIONS):
        recorded = np.frombuffer(read_round(path, g)[0], dtype=np.float32).reshape(POPSIZE, 2)
        np.testing.assert_array_equal(recorded, theta[g * POPSIZE : (g + 1) * POPSIZE])
    assert "sequential        cma, 8 simulations per round" in str(status(path)) and verify(path).ok


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_store(reference, tmp_path):
    path, fit = reference
    store = tmp_path / "killed.zarr"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tests import test_evolution as t
        from vbi_dask.evolution import evolve
        import vbi_dask.runner as b
        original = b._run_block
        def slow(*args):  # room for the kill to land inside a generation
            time.sleep(0.2)
            return original(*args)
        b._run_block = slow
        evolve(t.budget(), {str(store)!r}, t.loss(), generations=t.GENERATIONS, popsize=t.POPSIZE, seed=0,
               scheduler="sync", progress=False)
    """)
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def in_generation_3() -> bool:
        try:
            done = zarr.open_group(str(store), mode="r")["done"][:]
        except (KeyError, FileNotFoundError, ValueError):
            return False
        return len(done) > 3 * POPSIZE and bool(done[3 * POPSIZE :].any())

    _, err = signal_when(process, in_generation_3, signal.SIGKILL, timeout_s=120, poll_s=0.005)
    assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
    done = zarr.open_group(str(store), mode="r")["done"][:]
    assert done[: 3 * POPSIZE].all() and not done.all()
    again = evolve(
        budget(), store, loss(), generations=GENERATIONS, popsize=POPSIZE, seed=0, scheduler="sync", progress=False
    )
    assert_same_data(store, path)
    assert (again.best_sim, again.best_loss, again.history) == (fit.best_sim, fit.best_loss, fit.history)


def test_bad_input_is_refused(reference, tmp_path):
    path, _ = reference
    store = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"popsize \(6\) must be a multiple of the chunk size \(4\)"):
        evolve(budget(), store, loss(), generations=2, popsize=6, progress=False)
    with pytest.raises(ValueError, match=r"\['b'\] are unbounded; give them Uniform priors"):
        evolve(
            budget(vd.Prior({"a": (-2.0, 2.0), "b": {"dist": "Normal", "loc": 0.0, "scale": 1.0}})),
            store,
            loss(),
            generations=2,
            popsize=8,
            progress=False,
        )
    with pytest.raises(ValueError, match="the loss term 'fcd' needs feature columns 'fcd...'"):
        FeatureLoss(subject(), _external.FC_NAMES, fc=1.0, fcd=1.0)
    with pytest.raises(ValueError, match=r"holds 64 simulations \(8 generations of 8\) and 2 generation\(s\)"):
        evolve(budget(), path, loss(), generations=2, popsize=8, progress=False)
    assert not store.exists()
