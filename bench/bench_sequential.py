"""Sequential rounds against one round, on a problem with a known posterior.

The linear-Gaussian problem of ``_seq_problems.py`` (3 parameters, uniform prior on
[-3, 3]^3, 5 features, noise 0.1), run as an external simulator. For each number of
simulations n in {1000, 3000, 10000}: single-round NPE on n prior draws, and TSNPE with
n simulations in 5 rounds (default settings: NSF 50 hidden, 5 transforms, epsilon 1e-4).
Each posterior's 5000 samples at the observation are compared with 5000 exact
posterior draws by C2ST (sbi's ``c2st``, MLP classifier, 5 folds: 0.5 = the same
distribution, 1.0 = separable).

Rows appended to bench.jsonl: ``sequential.c2st.<method>.<n_sims>`` (method npe or
tsnpe), with wall times; the issue's target: TSNPE at 3000 within 0.02 of NPE at 10000.
Training runs on one torch thread, simulations in this process.

    .venv/bin/python bench/bench_sequential.py [--sizes 1000 3000 10000] [--methods npe tsnpe]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _seq_problems as problem  # noqa: E402
from _common import record  # noqa: E402

ROUNDS, CHUNK, N_SAMPLES = 5, 100, 5000


def budget(n_sims: int):
    from vbi_dask.external import ExternalBudget, ExternalSimulator
    from vbi_dask.prior import Prior

    simulator = ExternalSimulator("_seq_problems:linear_gaussian", version="1", n_features=len(problem.A))
    prior = Prior({f"theta{k}": (problem.LOW, problem.HIGH) for k in range(problem.A.shape[1])})
    return ExternalBudget(simulator, prior, n_sims=n_sims, chunk_size=CHUNK, seed=1)


def c2st(samples: np.ndarray, reference: np.ndarray) -> float:
    import torch
    from sbi.utils.metrics import c2st as sbi_c2st

    return float(sbi_c2st(torch.as_tensor(samples, dtype=torch.float32), torch.as_tensor(reference, dtype=torch.float32),
                          seed=1, classifier="mlp"))


def run(method: str, n_sims: int, folder: Path, x_o: np.ndarray, reference: np.ndarray) -> dict:
    from vbi_dask.sequential import run_sequential
    from vbi_dask.train import sample_posterior, train_posterior

    store = folder / f"{method}_{n_sims}.zarr"
    t0 = time.perf_counter()
    if method == "npe":
        budget(n_sims).run(store, scheduler="sync", progress=False)
        posterior = train_posterior(store, seed=0, progress=False, threads=1)
        rounds = None
    else:
        result = run_sequential(budget(1), store, x_o, rounds=ROUNDS, per_round=n_sims // ROUNDS,
                                train={"seed": 0}, scheduler="sync", progress=False, threads=1)
        posterior = result.posterior
        rounds = [{k: r.get(k) for k in ("round", "prior_mass", "threshold", "train_s")} for r in result.rounds]
    wall = time.perf_counter() - t0
    samples = sample_posterior(posterior, x_o, N_SAMPLES, seed=2).values
    score = c2st(samples, reference)
    row = record(f"sequential.c2st.{method}.{n_sims}", score, "c2st", wall_s=wall, rounds=rounds,
                 posterior_mean=samples.mean(axis=0).tolist(), reference_mean=reference.mean(axis=0).tolist(),
                 posterior_std=samples.std(axis=0).tolist(), reference_std=reference.std(axis=0).tolist(),
                 problem="linear Gaussian, 3 params, U(-3,3), 5 features, noise 0.1", bench="bench_sequential")
    print(f"{method:>6} n={n_sims:>6}: C2ST {score:.3f}  ({wall:.0f} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--methods", nargs="+", default=["npe", "tsnpe"], choices=["npe", "tsnpe"])
    args = parser.parse_args()
    x_o = problem.observation()
    reference = problem.posterior_samples(x_o, N_SAMPLES)
    scores = {}
    with tempfile.TemporaryDirectory(prefix="vbi-dask-bench-seq-") as folder:
        for n_sims in args.sizes:
            for method in args.methods:
                scores[method, n_sims] = run(method, n_sims, Path(folder), x_o, reference)["value"]
    if ("tsnpe", 3000) in scores and ("npe", 10000) in scores:
        gap = scores["tsnpe", 3000] - scores["npe", 10000]
        verdict = "meets" if gap <= 0.02 else "MISSES"
        print(f"TSNPE@3000 - NPE@10000 = {gap:+.3f} ({verdict} the target <= +0.02)")


if __name__ == "__main__":
    main()
