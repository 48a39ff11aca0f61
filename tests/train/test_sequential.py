"""Sequential rounds in one store (TSNPE, SNPE-C): round 0 is the one-round budget, later
rounds lie in their proposal's region, rows do not depend on the scheduler, a driver
killed during round 2 resumes to the same store, the store's identity includes the
observation and method."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr

import vbi_dask as vd
from vbi_dask.cli import main
from vbi_dask.external import ExternalBudget, ExternalSimulator
from vbi_dask.sequential import CANDIDATES, STRIDE, _derived_seed, round_posterior, run_sequential
from vbi_dask.store import StoreMismatchError, read_round, status, verify
from vbi_dask.train import check_observation

from tests._processes import signal_when
from tests.budget import _external
from tests.budget.conftest import assert_same_data, read_lines
from .conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
SEED, CHUNK, PER_ROUND = 3, 50, 200
X_O = [0.5, 0.2, -0.3]
TRAIN = {"estimator": TINY, "batch_size": 50, "max_epochs": 15, "seed": 0}
FUNCTION = "tests.budget._external:linear_gaussian"


def prior() -> vd.Prior:
    return vd.Prior({"a": (-2.0, 2.0), "b": (-2.0, 2.0)})


def budget(n_sims: int = 1) -> ExternalBudget:
    return ExternalBudget(
        ExternalSimulator(FUNCTION, version="1", feature_names=["x0", "x1", "x2"]),
        prior(),
        n_sims=n_sims,
        chunk_size=CHUNK,
        seed=SEED,
    )


def sequential(path, rounds: int, *, method: str = "tsnpe", observed=X_O, **kwargs):
    return run_sequential(
        budget(),
        path,
        observed,
        rounds=rounds,
        per_round=PER_ROUND,
        method=method,
        train=TRAIN,
        progress=False,
        threads=1,
        **{"scheduler": "sync", **kwargs},
    )


def rounds_of(path) -> dict[int, tuple[dict, dict]]:
    """Each recorded round's proposal: its weights (the saved file also records paths and
    timings) and attributes."""
    out = {}
    for r in range(1, 10):
        record = read_round(path, r)
        if record is not None:
            payload = torch.load(io.BytesIO(record[0]), map_location="cpu", weights_only=True)
            out[r] = ({k: v.numpy().tobytes() for k, v in payload["state_dict"].items()}, record[1])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("sequential") / "reference.zarr"
    result = sequential(path, 3)
    return path, result


def test_round_zero_is_the_budget_and_later_rounds_lie_in_the_truncated_region(reference, tmp_path):
    path, result = reference
    group = zarr.open_group(str(path), mode="r")
    assert group["done"][:].all() and group["done"].shape == (3 * PER_ROUND,)
    np.testing.assert_array_equal(group["round"][:], np.repeat(np.arange(3, dtype=np.int16), PER_ROUND))
    # round 0: exactly the one-round budget's rows
    plain = tmp_path / "plain.zarr"
    budget(PER_ROUND).run(plain, scheduler="sync", progress=False)
    for name in ("theta", "features", "valid"):
        np.testing.assert_array_equal(group[name][:PER_ROUND], zarr.open_group(str(plain), mode="r")[name][:])
    theta, features = group["theta"][:], group["features"][:]
    # every row: the function at its stored parameters (independent truth: one row at a time)
    for k in (0, PER_ROUND + 3, 2 * PER_ROUND + 7):
        np.testing.assert_array_equal(
            features[k], _external.linear_gaussian(theta[k : k + 1].astype(np.float64), SEED, k)[0].astype(np.float32)
        )
    for r in (1, 2):
        payload, attrs = read_round(path, r)
        assert attrs["method"] == "tsnpe" and attrs["trained_on_rounds"] == r and 0 < attrs["prior_mass"] <= 1
        posterior = round_posterior(path, r)
        assert posterior.info.split["n_train"] + posterior.info.split["n_validation"] == r * PER_ROUND
        x, _ = check_observation(np.asarray(X_O), posterior.info)
        rows = torch.from_numpy(theta[r * PER_ROUND : (r + 1) * PER_ROUND])
        with torch.no_grad():
            log_prob = posterior.posterior_estimator.log_prob(rows[:, None, :], condition=x)[:, 0].numpy()
        assert (log_prob >= attrs["threshold"]).all()  # inside the highest-probability region
        # row k: the first prior candidate of its own stream (seed, round, k) inside the region
        stream = _derived_seed("tsnpe", SEED, r)
        for k in (r * PER_ROUND, r * PER_ROUND + 101):
            candidates = prior().sample(CANDIDATES, seed=stream, first_sim=k * STRIDE).astype(np.float32)
            with torch.no_grad():
                lp = posterior.posterior_estimator.log_prob(torch.from_numpy(candidates)[:, None], condition=x)[:, 0]
            first = int(np.flatnonzero(lp.numpy() >= attrs["threshold"])[0])
            np.testing.assert_array_equal(theta[k], candidates[first])
    assert result.posterior.info.split["n_train"] + result.posterior.info.split["n_validation"] == 3 * PER_ROUND
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    assert verify(path).ok
    text = str(status(path))
    assert "sequential        tsnpe, 200 simulations per round, epsilon 0.0001" in text
    assert "round 0: 200 / 200 done, drawn from the prior" in text
    mass = read_round(path, 2)[1]["prior_mass"]
    assert f"round 2: 200 / 200 done, drawn from its proposal (truncated prior: {mass:.3g} of the prior's mass)" in text


def test_scheduler_and_threads_do_not_change_the_store(reference, tmp_path):
    path, _ = reference
    other = tmp_path / "threads.zarr"
    sequential(other, 3, scheduler="threads", n_workers=3)
    assert_same_data(other, path)
    assert rounds_of(other) == rounds_of(path)


@pytest.mark.slow
def test_driver_killed_during_round_2_resumes_to_the_same_store(reference, tmp_path, count_writes):
    path, _ = reference
    store = tmp_path / "killed.zarr"
    sequential(store, 2)  # two rounds first: the command continues the store with a third
    observed = tmp_path / "observed.npy"
    np.save(observed, np.asarray(X_O))
    config = tmp_path / "external.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "simulator": {"function": FUNCTION, "version": "1", "features": ["x0", "x1", "x2"]},
                "prior": {"a": [-2.0, 2.0], "b": [-2.0, 2.0]},
                "n_sims": 1,
                "chunk_size": CHUNK,
                "seed": SEED,
            }
        )
    )
    args = [
        "sequential",
        str(config),
        "--store",
        str(store),
        "--observed",
        str(observed),
        "--rounds",
        "3",
        "--per-round",
        str(PER_ROUND),
        "--scheduler",
        "sync",
        "--estimator",
        "maf",
        "--hidden-features",
        "8",
        "--num-transforms",
        "1",
        "--batch-size",
        "50",
        "--max-epochs",
        "15",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "posterior.pt"),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "vbi_dask.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def in_round_2() -> bool:
        try:
            return bool(zarr.open_group(str(store), mode="r")["done"][2 * PER_ROUND :].any())
        except (KeyError, FileNotFoundError, ValueError):
            return False

    _, err = signal_when(process, in_round_2, signal.SIGKILL, timeout_s=300, poll_s=0.005)
    assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
    done_before = zarr.open_group(str(store), mode="r")["done"][:]
    assert done_before[: 2 * PER_ROUND].all() and 0 < done_before[2 * PER_ROUND :].sum() < PER_ROUND
    assert read_round(store, 2) is not None  # the proposal is recorded before its rows

    count_writes.write_text("")  # the resumed run's writes only (the first two rounds were written here too)
    assert main(args) == 0
    missing = [s for s in range(2 * PER_ROUND, 3 * PER_ROUND, CHUNK) if not done_before[s : s + CHUNK].all()]
    assert sorted(int(s) for s in read_lines(count_writes)) == missing  # only round 2's missing blocks ran
    assert_same_data(store, path)
    assert rounds_of(store) == rounds_of(path)
    assert verify(store).ok


def test_the_observation_and_method_are_part_of_the_store(reference, tmp_path):
    path, _ = reference
    with pytest.raises(StoreMismatchError, match=r"sequential\.observed\[0\]: store 0\.5, budget 0\.6"):
        sequential(path, 3, observed=[0.6, 0.2, -0.3])
    with pytest.raises(StoreMismatchError, match=r"sequential\.method: store 'tsnpe', budget 'snpe-c'"):
        sequential(path, 3, method="snpe-c")
    with pytest.raises(StoreMismatchError, match=r"sequential: store \{.*\}, budget '<absent>'"):
        budget(3 * PER_ROUND).run(path, scheduler="sync", progress=False)
    with pytest.raises(ValueError, match=r"holds 600 simulations \(3 rounds of 200\) and 1 round\(s\) were asked for"):
        sequential(path, 1)
    assert verify(path).ok and zarr.open_group(str(path), mode="r")["done"][:].all()


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    store = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"per_round \(210\) must be a multiple of the chunk size \(50\)"):
        run_sequential(budget(), store, X_O, rounds=2, per_round=210, progress=False)
    with pytest.raises(ValueError, match="the observation has 2 features; the budget computes 3"):
        run_sequential(budget(), store, X_O[:2], rounds=2, per_round=PER_ROUND, progress=False)
    with pytest.raises(ValueError, match="unknown sequential method 'snle'; valid: tsnpe, snpe-c"):
        run_sequential(budget(), store, X_O, rounds=2, per_round=PER_ROUND, method="snle", progress=False)
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['log_dir'\]"):
        run_sequential(budget(), store, X_O, rounds=2, per_round=PER_ROUND, train={"log_dir": "x"}, progress=False)
    assert not store.exists()


def test_snpe_c_rounds_draw_from_the_posterior_inside_the_prior(tmp_path):
    store = tmp_path / "snpe_c.zarr"
    result = sequential(store, 2, method="snpe-c")
    group = zarr.open_group(str(store), mode="r")
    theta = group["theta"][PER_ROUND:]
    assert prior().in_bounds(theta).all() and group["valid"][:].all()
    payload, attrs = read_round(store, 1)
    assert attrs["method"] == "snpe-c" and attrs["threshold"] is None and attrs["train_loss"] == "npe"
    # row k: the first of its own posterior draws inside the prior (seed, round, k)
    posterior = round_posterior(store, 1)
    x, _ = check_observation(np.asarray(X_O), posterior.info)
    for k in (PER_ROUND, PER_ROUND + 77):
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(_derived_seed("snpe-c", SEED, 1, k, 0) >> 1)
            draws = posterior.posterior_estimator.sample(torch.Size((16,)), condition=x)[:, 0].numpy()
        draws = draws.astype(np.float32)
        np.testing.assert_array_equal(theta[k - PER_ROUND], draws[np.flatnonzero(prior().in_bounds(draws))[0]])
    assert json.loads(zarr.open_group(str(store), mode="r").attrs["sequential"])["method"] == "snpe-c"
    assert result.posterior.info.method == "snpe-c"  # the atomic loss after round 0
