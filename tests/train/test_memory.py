"""Training streams: its peak memory does not grow with the store."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from vbi_dask.train._synthetic import linear_gaussian_prior, write_store

N_FEATURES = 256

CHILD = r"""
import json, sys
from vbi_dask.train import train_posterior
post = train_posterior(sys.argv[1], estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1},
                       batch_size=1000, max_epochs=1, seed=0)
# VmHWM: peak RSS of this process image (ru_maxrss would include the parent's at fork)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_kb": peak, "rows": post.info.training["samples_seen"]}))
"""


def _store(path, n_sims: int) -> None:
    """Random features (incompressible: 1 KB per row), 2 parameters."""
    rng = np.random.default_rng(n_sims)
    theta = rng.standard_normal((n_sims, 2)).astype(np.float32)
    x = rng.standard_normal((n_sims, N_FEATURES)).astype(np.float32)
    x[:, :2] += theta
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=1000)


def _peak_rss_kb(path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_of_training_does_not_grow_with_the_store(tmp_path):
    """A store 10x larger (200 MB of features vs 20 MB): peak RSS grows by < 20%."""
    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    _store(small, 20_000)
    _store(large, 200_000)
    a, b = _peak_rss_kb(small), _peak_rss_kb(large)
    assert b["rows"] > 9 * a["rows"]  # the large store was really read
    growth = b["rss_kb"] / a["rss_kb"] - 1
    # holding the large store's features in memory would add 200 MB (> 40% of the baseline)
    assert growth < 0.2, (a, b)


RAW_CHILD = r"""
import json, sys
from vbi_dask.train import train_posterior
post = train_posterior(sys.argv[1], estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1,
                                               "cnn": [4], "embedding": [8]},
                       batch_size=250, max_epochs=1, seed=0, buffer_chunks=4, prefetch_chunks=1, threads=1,
                       progress=False, logger=False)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_kb": peak, "rows": post.info.training["samples_seen"]}))
"""
RAW_TIME, RAW_CHANNELS, RAW_CHUNK = 64, 16, 500


def _raw_store(path, n_sims: int) -> None:
    """Raw signals (16 channels x 64 samples, 4 KB per row) whose amplitude is theta[0]."""
    rng = np.random.default_rng(n_sims)
    theta = rng.standard_normal((n_sims, 2)).astype(np.float32)
    wave = np.sin(np.linspace(0, 8 * np.pi, RAW_TIME))[None, :, None]
    x = (theta[:, :1, None] * wave + rng.standard_normal((n_sims, RAW_TIME, RAW_CHANNELS))).astype(np.float32)
    names = [f"eeg.raw[{t},{c}]" for t in range(RAW_TIME) for c in range(RAW_CHANNELS)]
    write_store(path, theta, x.reshape(n_sims, -1), linear_gaussian_prior(2), chunk_size=RAW_CHUNK, feature_names=names)


def test_a_raw_signal_cnn_trains_from_a_store_10x_its_memory_budget_in_flat_memory(tmp_path):
    """The stream holds buffer_chunks x chunk_size rows (4 x 500 x 4 KB = 8 MB): a store of 10x
    that (80 MB) and one of 1x train with the same peak RSS within 20%."""
    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    budget_rows = 4 * RAW_CHUNK
    _raw_store(small, budget_rows)
    _raw_store(large, 10 * budget_rows)
    a = json.loads(
        subprocess.run([sys.executable, "-c", RAW_CHILD, str(small)], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    b = json.loads(
        subprocess.run([sys.executable, "-c", RAW_CHILD, str(large)], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert b["rows"] > 9 * a["rows"]
    assert b["rss_kb"] / a["rss_kb"] < 1.2, (a, b)
    # holding the large store in memory would add its 80 MB: the growth stays well below that
    assert (b["rss_kb"] - a["rss_kb"]) < 40_000, (a, b)
