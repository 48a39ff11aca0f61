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
