"""Training throughput: Lightning streaming from a Zarr store vs sbi's in-memory trainer.

Same data (a linear-Gaussian problem: 3 parameters, 32 features, 20 000 simulations),
same estimator (sbi's NSF, 50 hidden features, 5 transforms), same batch size (200),
learning rate and number of epochs; early stopping off. Runs alternate (ours, sbi, ...)
so that load from other processes hits both alike; the median of the repeats is kept.

Rows appended to bench.jsonl:
- ``train.samples_per_s``: training samples per second of the streamed trainer, end to
  end (z-score pass, building, every epoch's training and validation passes);
- ``train.sbi_samples_per_s``: the same for ``NPE(prior).append_simulations().train()``;
- ``train.vs_sbi_ratio``: their ratio (target >= 0.8);
- ``train.peak_rss_ratio_10x``: peak RSS of one training epoch on a store of 200 000
  rows x 256 features (200 MB) over one of 20 000 rows (target < 1.2);
- ``train.loaded_vs_quiet``: training throughput (samples/s of the fit, a fixed small
  training: 6 000 rows, the same NSF, 2 epochs, default threads) with one CPU kept busy
  by a background busy loop, over the throughput without it (target >= 0.4). The row
  also gives, for comparison, the loaded throughput with as many torch threads as the
  process's CPUs (``all_cpus_*``: what torch does by default).

    .venv/bin/python bench/bench_train.py [--repeats 3] [--epochs 5] [--only loaded]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import record

N_SIMS, N_PARAMS, N_FEATURES = 20_000, 3, 32
ESTIMATOR = {"model": "nsf", "hidden_features": 50, "num_transforms": 5}


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((N_SIMS, N_PARAMS)).astype(np.float32)
    mixing = rng.standard_normal((N_PARAMS, N_FEATURES)) / np.sqrt(N_PARAMS)
    x = (theta @ mixing + 0.3 * rng.standard_normal((N_SIMS, N_FEATURES))).astype(np.float32)
    return theta, x


def ours(store: Path, epochs: int, seed: int, threads: int | None = None) -> dict:
    from vbi_dask.train import train_posterior

    t0 = time.perf_counter()
    post = train_posterior(
        store,
        estimator=ESTIMATOR,
        batch_size=200,
        learning_rate=5e-4,
        max_epochs=epochs,
        stop_after_epochs=10**6,
        seed=seed,
        progress=False,
        threads=threads,
    )
    wall = time.perf_counter() - t0
    t = post.info.training
    return {
        "wall_s": wall,
        "samples": t["samples_seen"],
        "samples_per_s": t["samples_seen"] / wall,
        "fit_samples_per_s": t["samples_per_s"],
        "epochs": t["epochs"],
        "threads": t["threads"],
    }


def theirs(theta: np.ndarray, x: np.ndarray, prior, epochs: int, seed: int) -> dict:
    import torch
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    npe = NPE(
        prior,
        density_estimator=posterior_nn(
            "nsf", hidden_features=ESTIMATOR["hidden_features"], num_transforms=ESTIMATOR["num_transforms"]
        ),
        show_progress_bars=False,
    )
    npe.append_simulations(torch.as_tensor(theta), torch.as_tensor(x)).train(
        training_batch_size=200, learning_rate=5e-4, max_num_epochs=epochs - 1, stop_after_epochs=10**6
    )
    wall = time.perf_counter() - t0
    n_epochs = len(npe._summary["training_loss"])
    n_train = int(len(theta) * 0.9)
    samples = n_epochs * (n_train // 200) * 200  # sbi drops the last partial batch
    return {"wall_s": wall, "samples": samples, "samples_per_s": samples / wall, "epochs": n_epochs}


RSS_CHILD = r"""
import json, sys
from vbi_dask.train import train_posterior
post = train_posterior(sys.argv[1], estimator={"model": "maf", "hidden_features": 8, "num_transforms": 1},
                       batch_size=1000, max_epochs=1, seed=0)
# VmHWM: peak RSS of this process image (ru_maxrss would include the parent's at fork)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_kb": peak, "rows": post.info.training["samples_seen"]}))
"""


def peak_rss_ratio(folder: Path) -> tuple[float, dict, dict]:
    from vbi_dask.train._synthetic import linear_gaussian_prior, write_store

    results = []
    for n in (20_000, 200_000):
        rng = np.random.default_rng(n)
        theta = rng.standard_normal((n, 2)).astype(np.float32)
        x = rng.standard_normal((n, 256)).astype(np.float32)
        path = folder / f"rss_{n}.zarr"
        write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=1000)
        del theta, x
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(path)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(path)
    return results[1]["rss_kb"] / results[0]["rss_kb"], results[0], results[1]


RAW_RSS_CHILD = r"""
import json, sys
from vbi_dask.train import train_posterior
post = train_posterior(sys.argv[1], estimator={"model": "maf", "hidden_features": 16, "num_transforms": 2,
                                               "cnn": [8, 16], "embedding": [16]},
                       batch_size=256, max_epochs=1, seed=0, buffer_chunks=4, prefetch_chunks=1, threads=1,
                       progress=False, logger=False)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_kb": peak, "rows": post.info.training["samples_seen"]}))
"""
RAW_TIME, RAW_CHANNELS, RAW_CHUNK, RAW_BUFFER_CHUNKS = 256, 64, 250, 4  # 64 KB per row


def raw_peak_rss_ratio(folder: Path) -> tuple[float, dict, dict, float]:
    """A raw-signal CNN posterior trained from a store of 1x and 10x the stream's memory
    budget (buffer_chunks x chunk_size rows: 4 x 250 x 64 KB = 64 MB): peak RSS ratio."""
    from vbi_dask.train._synthetic import linear_gaussian_prior, write_store

    budget_rows = RAW_BUFFER_CHUNKS * RAW_CHUNK
    names = [f"eeg.raw[{t},{c}]" for t in range(RAW_TIME) for c in range(RAW_CHANNELS)]
    wave = np.sin(np.linspace(0, 40 * np.pi, RAW_TIME, dtype=np.float32))[None, :, None]
    results = []
    for n in (budget_rows, 10 * budget_rows):
        rng = np.random.default_rng(n)
        theta = rng.standard_normal((n, 2)).astype(np.float32)
        path = folder / f"raw_rss_{n}.zarr"
        x = np.exp(theta[:, :1, None] / 2) * wave + rng.standard_normal((n, RAW_TIME, RAW_CHANNELS), dtype=np.float32)
        write_store(path, theta, x.reshape(n, -1), linear_gaussian_prior(2), chunk_size=RAW_CHUNK, feature_names=names)
        del theta, x
        out = subprocess.run(
            [sys.executable, "-c", RAW_RSS_CHILD, str(path)], capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(path)
    budget_mb = budget_rows * RAW_TIME * RAW_CHANNELS * 4 / 2**20
    return results[1]["rss_kb"] / results[0]["rss_kb"], results[0], results[1], budget_mb


def raw_rss_row(folder: Path) -> dict:
    """The ``train.raw.peak_rss_ratio_10x`` row (see :func:`raw_peak_rss_ratio`), recorded."""
    ratio, small, large, budget_mb = raw_peak_rss_ratio(folder)
    return record(
        "train.raw.peak_rss_ratio_10x",
        ratio,
        "ratio",
        memory_budget_mb=budget_mb,
        small_store_mb=budget_mb,
        large_store_mb=10 * budget_mb,
        small_rss_kb=small["rss_kb"],
        large_rss_kb=large["rss_kb"],
        small_rows=small["rows"],
        large_rows=large["rows"],
    )


LOADED_ROWS, LOADED_EPOCHS = 6_000, 2


class busy_cpu:
    """A background process spinning on one CPU for the duration of the block."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it reach its loop
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()
        return False


def loaded_vs_quiet(folder: Path, prior, repeats: int) -> dict:
    """Fit throughput of a fixed small training, alternating quiet and one busy CPU."""
    from vbi_dask.train._runtime import cpu_share
    from vbi_dask.train._synthetic import write_store

    theta, x = make_problem()
    store = folder / "loaded.zarr"
    write_store(store, theta[:LOADED_ROWS], x[:LOADED_ROWS], prior, chunk_size=500)
    ours(store, 1, 0)  # warm-up
    quiet, loaded = [], []
    for k in range(repeats):
        quiet.append(ours(store, LOADED_EPOCHS, 0))
        with busy_cpu():
            loaded.append(ours(store, LOADED_EPOCHS, 0))
        print(
            f"repeat {k}: quiet {quiet[-1]['fit_samples_per_s']:.0f} samples/s, one CPU busy "
            f"{loaded[-1]['fit_samples_per_s']:.0f} samples/s ({quiet[-1]['threads']} torch threads)",
            flush=True,
        )
    with busy_cpu():  # once: the threads torch would take by itself, for comparison
        all_cpus = ours(store, LOADED_EPOCHS, 0, threads=cpu_share())
    print(
        f"one CPU busy, {all_cpus['threads']} torch threads: {all_cpus['fit_samples_per_s']:.0f} samples/s", flush=True
    )
    quiet_rate = float(np.median([r["fit_samples_per_s"] for r in quiet]))
    loaded_rate = float(np.median([r["fit_samples_per_s"] for r in loaded]))
    return {
        "ratio": loaded_rate / quiet_rate,
        "quiet_samples_per_s": quiet_rate,
        "loaded_samples_per_s": loaded_rate,
        "threads": quiet[0]["threads"],
        "cpu_share": cpu_share(),
        "all_cpus_threads": all_cpus["threads"],
        "all_cpus_loaded_samples_per_s": all_cpus["fit_samples_per_s"],
        "all_cpus_ratio": all_cpus["fit_samples_per_s"] / quiet_rate,
        "n_sims": LOADED_ROWS,
        "epochs": LOADED_EPOCHS,
        "estimator": ESTIMATOR,
        "repeats": repeats,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--only",
        choices=("loaded", "raw"),
        default=None,
        help="only the train.loaded_vs_quiet row, or only the train.raw.peak_rss_ratio_10x row",
    )
    args = parser.parse_args()

    from vbi_dask.train._synthetic import write_store
    from vbi_dask.prior import Prior

    import torch

    folder = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        theta, x = make_problem()
        prior = Prior(
            {"eta": {"dist": "Normal", "loc": 0.0, "scale": 1.0, "nodes": list(range(N_PARAMS))}},
            model="mpr",
            n_nodes=N_PARAMS,
        )
        if args.only == "raw":
            print(raw_rss_row(folder))
            return 0
        if args.only == "loaded":
            row = loaded_vs_quiet(folder, prior, args.repeats)
            print(record("train.loaded_vs_quiet", row.pop("ratio"), "ratio", **row))
            return 0
        store = folder / "problem.zarr"
        write_store(store, theta, x, prior, chunk_size=1000)
        # sbi trains and validates on the rows we train and validate on (no test split here)
        a, b = [], []
        ours(store, 1, 0), theirs(theta[:2000], x[:2000], prior.to_torch(), 2, 0)  # warm-up (imports, JIT)
        for k in range(args.repeats):
            a.append(ours(store, args.epochs, k))
            b.append(theirs(theta, x, prior.to_torch(), args.epochs, k))
            print(
                f"repeat {k}: ours {a[-1]['samples_per_s']:.0f} samples/s ({a[-1]['epochs']} epochs), "
                f"sbi {b[-1]['samples_per_s']:.0f} samples/s ({b[-1]['epochs']} epochs)",
                flush=True,
            )
        ours_rate = float(np.median([r["samples_per_s"] for r in a]))
        sbi_rate = float(np.median([r["samples_per_s"] for r in b]))
        extra = {
            "n_sims": N_SIMS,
            "n_features": N_FEATURES,
            "estimator": ESTIMATOR,
            "epochs": args.epochs,
            "threads": a[0]["threads"],
            "sbi_threads": torch.get_num_threads(),
        }
        print(
            record(
                "train.samples_per_s",
                ours_rate,
                "samples/s",
                fit_only=float(np.median([r["fit_samples_per_s"] for r in a])),
                **extra,
            )
        )
        print(record("train.sbi_samples_per_s", sbi_rate, "samples/s", **extra))
        print(record("train.vs_sbi_ratio", ours_rate / sbi_rate, "ratio", **extra))
        ratio, small, large = peak_rss_ratio(folder)
        print(
            record(
                "train.peak_rss_ratio_10x",
                ratio,
                "ratio",
                small_rss_kb=small["rss_kb"],
                large_rss_kb=large["rss_kb"],
                small_rows=small["rows"],
                large_rows=large["rows"],
            )
        )
        print(raw_rss_row(folder))
        row = loaded_vs_quiet(folder, prior, args.repeats)
        print(record("train.loaded_vs_quiet", row.pop("ratio"), "ratio", **row))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
