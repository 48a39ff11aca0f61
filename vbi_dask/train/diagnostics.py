"""Diagnostics of a trained posterior on held-out simulations, and their figures.

- :func:`posterior_zscores`: the posterior z-score ``z = |posterior mean - true| /
  posterior std`` and shrinkage ``s = 1 - posterior var / prior var`` per parameter and
  observation (Hashemi et al. 2023, "The Bayesian Virtual Epileptic Patient"; the VBI
  paper, Hashemi et al. 2025). Good inference: shrinkage near 1, z-scores small (< 2-3).
- :func:`calibration`: simulation-based calibration ranks (Talts et al. 2018), expected
  coverage of highest-density regions (Deistler et al. 2022) and TARP coverage (Lemos et
  al. 2023), through ``sbi.diagnostics`` (``run_sbc``/``check_sbc``,
  ``run_tarp``/``check_tarp``).
- Figures saved as PNG: the posterior pair plot, SBC rank histograms and TARP coverage
  drawn by sbi's own plotting (``sbi.analysis.pairplot``, ``sbc_rank_plot``,
  ``plot_tarp``); z-score vs shrinkage and observed vs posterior-predictive FC, which sbi
  does not draw.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from .data import StoreData
from .posterior import StorePosterior, check_observation, sample_posterior

__all__ = [
    "posterior_zscores",
    "heldout",
    "Calibration",
    "calibration",
    "prior_variance",
    "plot_pair",
    "plot_zscore_shrinkage",
    "plot_sbc",
    "plot_tarp",
    "plot_fc_predictive",
]


def prior_variance(posterior: StorePosterior, *, n_samples: int = 200_000, seed: int = 0) -> np.ndarray:
    """Variance of each parameter under the posterior's prior: exact where the torch
    distribution has it, else from ``n_samples`` draws."""
    try:
        return posterior.prior.variance.detach().numpy().astype(np.float64)
    except (NotImplementedError, AttributeError):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return posterior.prior.sample((n_samples,)).numpy().astype(np.float64).var(axis=0)


def posterior_zscores(
    posterior: StorePosterior,
    theta: np.ndarray,
    x: Any,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    sims: np.ndarray | None = None,
) -> xr.Dataset:
    """Posterior z-scores and shrinkages of known parameters.

    Parameters
    ----------
    theta : (obs, param) true parameters.
    x : (obs, feature) their features.
    n_samples : posterior samples per observation.
    sims : simulation indices of the rows (the ``obs`` coordinate).

    Returns
    -------
    Dataset with ``z``, ``shrinkage``, ``mean``, ``std``, ``true`` (obs, param).
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    samples = sample_posterior(posterior, np.atleast_2d(np.asarray(x)), n_samples, seed=seed).values
    mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1)
    var0 = prior_variance(posterior)
    names = list(posterior.info.param_names)
    obs = np.arange(len(theta)) if sims is None else np.asarray(sims)
    dims = ("obs", "param")
    return xr.Dataset(
        {
            "z": (dims, np.abs(mean - theta) / std),
            "shrinkage": (dims, 1.0 - std**2 / var0),
            "mean": (dims, mean),
            "std": (dims, std),
            "true": (dims, theta),
        },
        coords={"obs": obs, "param": names},
        attrs={"n_samples": n_samples, "seed": seed},
    )


def heldout(
    posterior: StorePosterior,
    store: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    max_rows: int | None = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sims, theta, features) of held-out rows of the posterior's store: the test split
    if the posterior was trained with one, else the validation split."""
    info = posterior.info
    if split is None:
        split = "test" if info.split.get("n_test", 0) > 0 else "validation"
    data = StoreData(
        store if store is not None else info.store,
        validation_fraction=info.split["validation_fraction"],
        test_fraction=info.split["test_fraction"],
        split_seed=info.split["split_seed"],
    )
    if list(data.feature_names) != list(info.feature_names):
        raise ValueError("the store's feature columns differ from the posterior's")
    return data.take(split, max_rows)


@dataclass(frozen=True)
class Calibration:
    """SBC and expected-coverage results of :func:`calibration`.

    ``ranks`` (obs, param): how many of ``n_samples`` posterior samples fall below the
    true value; uniform on 0..n_samples when calibrated. ``ks_pvals``, ``c2st_ranks``,
    ``c2st_dap`` (per parameter) come from ``sbi.diagnostics.check_sbc``.
    ``coverage`` is the fraction of true values inside the posterior's highest-density
    region of credibility ``levels`` (the diagonal when calibrated). ``tarp_ecp`` at
    ``tarp_alpha``: TARP's expected coverage of random-reference balls; ``tarp_atc`` (area
    to the diagonal above alpha 0.5: > 0 under-, < 0 overconfident... see sbi's
    ``check_tarp``) and ``tarp_ks_pval`` (KS test of ECP against alpha).
    """

    param_names: tuple[str, ...]
    ranks: np.ndarray
    n_samples: int
    ks_pvals: np.ndarray
    c2st_ranks: np.ndarray
    c2st_dap: np.ndarray
    levels: np.ndarray
    coverage: np.ndarray
    tarp_ecp: np.ndarray | None = None
    tarp_alpha: np.ndarray | None = None
    tarp_atc: float = float("nan")
    tarp_ks_pval: float = float("nan")

    def checks(self, *, alpha: float = 0.01, c2st_max: float = 0.6) -> dict[str, bool]:
        """Each check's verdict: ``sbc_ranks`` (every parameter's rank KS p-value above
        ``alpha``, Bonferroni-corrected over the parameters), ``sbc_dap`` (every
        prior-vs-data-averaged-posterior C2ST below ``c2st_max``), ``tarp`` (TARP's KS
        p-value above ``alpha``; absent when TARP was not run)."""
        out = {
            "sbc_ranks": bool((self.ks_pvals > alpha / len(self.param_names)).all()),
            "sbc_dap": bool((self.c2st_dap < c2st_max).all()),
        }
        if self.tarp_ecp is not None:
            out["tarp"] = bool(self.tarp_ks_pval > alpha)
        return out

    def passed(self, **thresholds) -> bool:
        """Every check of :meth:`checks` passes."""
        return all(self.checks(**thresholds).values())

    def summary(self) -> dict[str, Any]:
        gap = np.abs(self.coverage - self.levels).max()

        def rounded(values, digits):  # Python floats: float32 values print as 0.967, not 0.9670000076
            return {name: round(float(v), digits) for name, v in zip(self.param_names, values)}

        return {
            "n_obs": int(len(self.ranks)),
            "n_samples": self.n_samples,
            "ks_pvals": rounded(self.ks_pvals, 4),
            "c2st_ranks": rounded(self.c2st_ranks, 3),
            "c2st_dap": rounded(self.c2st_dap, 3),
            "max_coverage_gap": round(float(gap), 4),
            "tarp_atc": round(float(self.tarp_atc), 4),
            "tarp_ks_pval": round(float(self.tarp_ks_pval), 4),
            "checks": self.checks(),
            "passed": self.passed(),
        }


def calibration(
    posterior: StorePosterior, theta: np.ndarray, x: Any, *, n_samples: int = 500, seed: int = 0, tarp: bool = True
) -> Calibration:
    """Simulation-based calibration and expected coverage over (theta, x) pairs drawn
    from the prior and the simulator (e.g. held-out store rows).

    Uses ``sbi.diagnostics.run_sbc`` (marginal ranks, and ranks of the true parameter's
    unnormalised log posterior density among the samples' for the coverage),
    ``check_sbc``, and with ``tarp`` ``run_tarp``/``check_tarp`` (seeded: the same inputs
    give the same result).
    """
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    xs, _ = check_observation(np.atleast_2d(np.asarray(x)), posterior.info)
    thetas = torch.as_tensor(np.atleast_2d(np.asarray(theta)), dtype=torch.float32)

    def log_density(theta_b: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return posterior.log_prob(theta_b, x=x_b, norm_posterior=False)

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*less than 100 samples.*")
        warnings.filterwarnings("ignore", message=".*Capping max_sampling_batch_size.*")
        warnings.filterwarnings("ignore", message=".*Number of SBC samples should be.*")
        warnings.filterwarnings("ignore", message=".*triangular_solve is deprecated.*")  # nflows' LU layers
        torch.manual_seed(seed)
        ranks, dap = run_sbc(thetas, xs, posterior, num_posterior_samples=n_samples, show_progress_bar=False)
        checks = check_sbc(ranks, posterior.prior.sample((len(thetas),)), dap, num_posterior_samples=n_samples)
        density_ranks, _ = run_sbc(
            thetas, xs, posterior, num_posterior_samples=n_samples, reduce_fns=log_density, show_progress_bar=False
        )
        tarp_results = {}
        if tarp:
            ecp, alpha = run_tarp(thetas, xs, posterior, num_posterior_samples=n_samples, show_progress_bar=False)
            atc, ks_pval = check_tarp(ecp, alpha)
            tarp_results = {
                "tarp_ecp": ecp.numpy(),
                "tarp_alpha": alpha.numpy(),
                "tarp_atc": float(atc),
                "tarp_ks_pval": float(ks_pval),
            }
    levels = np.linspace(0.0, 1.0, 21)
    # the true value lies in the HPD region of level a when fewer than a * n samples are denser
    outside = 1.0 - density_ranks[:, 0].numpy() / n_samples
    coverage = np.array([(outside < a).mean() for a in levels])
    return Calibration(
        param_names=tuple(posterior.info.param_names),
        ranks=ranks.numpy(),
        n_samples=n_samples,
        ks_pvals=checks["ks_pvals"].numpy(),
        c2st_ranks=checks["c2st_ranks"].numpy().ravel(),
        c2st_dap=checks["c2st_dap"].numpy().ravel(),
        levels=levels,
        coverage=coverage,
        **tarp_results,
    )


# ---------------------------------------------------------------------- figures
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _save_pyplot(fig, path: str | os.PathLike) -> Path:
    """Save a figure made by sbi's plotting (pyplot) and close it."""
    import matplotlib.pyplot as plt

    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_pair(
    samples: xr.DataArray,
    path: str | os.PathLike,
    *,
    true: Sequence[float] | None = None,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "",
) -> Path:
    """sbi's ``pairplot`` of posterior samples (sample, param): marginal histograms on the
    diagonal, 2-D histograms off it, the true value in red."""
    from sbi.analysis import pairplot

    values = np.asarray(samples.transpose("sample", "param").values)
    names = [str(p) for p in samples["param"].values]
    k = len(names)
    lo, hi = values.min(axis=0), values.max(axis=0)
    if limits is not None:
        lo, hi = np.maximum(limits[0], lo), np.minimum(limits[1], hi)
    if true is not None:
        true = np.asarray(true, dtype=float)
        lo, hi = np.minimum(lo, true), np.maximum(hi, true)
    pad = 0.05 * (hi - lo + 1e-12)
    fig, _ = pairplot(
        values,
        points=None if true is None else true[None],
        limits=np.c_[lo - pad, hi + pad].tolist(),
        labels=names,
        figsize=(2.0 * k + 0.5, 2.0 * k + 0.3),
        diag="hist",
        upper="hist",
        fig_kwargs={"points_colors": ["tab:red"]},
        diag_kwargs={"mpl_kwargs": {"bins": 40}},
        upper_kwargs={
            "np_hist_kwargs": {"bins": 40},
            "mpl_kwargs": {"cmap": "Blues", "origin": "lower", "aspect": "auto"},
        },
    )
    if title:
        fig.suptitle(title)
    return _save_pyplot(fig, path)


def plot_zscore_shrinkage(stats: xr.Dataset, path: str | os.PathLike) -> Path:
    """Posterior z-score against shrinkage, one colour per parameter."""
    fig = _figure(5.0, 4.0)
    ax = fig.subplots()
    for name in stats["param"].values:
        s = stats.sel(param=name)
        ax.scatter(s["shrinkage"], s["z"], s=12, alpha=0.6, label=str(name))
    ax.set_xlabel("posterior shrinkage")
    ax.set_ylabel("posterior z-score")
    ax.set_xlim(min(0.0, float(stats["shrinkage"].min())), 1.02)
    ax.axhline(2.0, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{stats.sizes['obs']} held-out simulations")
    return _save(fig, path)


def plot_sbc(cal: Calibration, path: str | os.PathLike) -> Path:
    """sbi's ``sbc_rank_plot``: SBC rank histograms, one panel per parameter, with the
    99% band of a uniform histogram (KS p-values in the titles)."""
    from sbi.analysis import sbc_rank_plot

    k = len(cal.param_names)
    n_bins = max(5, min(20, len(cal.ranks) // 10))
    fig, axes = sbc_rank_plot(
        cal.ranks,
        cal.n_samples,
        num_bins=n_bins,
        plot_type="hist",
        parameter_labels=list(cal.param_names),
        num_cols=min(k, 4),
        figsize=(3.0 * min(k, 4), 2.6 * -(-k // 4)),
    )
    for ax, name, p in zip(np.atleast_1d(axes).ravel(), cal.param_names, cal.ks_pvals):
        ax.set_title(f"{name} (KS p={p:.2g})", fontsize=9)
        if ax.get_legend() is not None:  # one set of ranks: the legend only hides bars
            ax.get_legend().remove()
    for legend in list(fig.legends):
        legend.remove()
    return _save_pyplot(fig, path)


def plot_tarp(cal: Calibration, path: str | os.PathLike) -> Path:
    """sbi's ``plot_tarp``: TARP expected coverage against credibility (the diagonal
    when calibrated; above it: underconfident, below: overconfident)."""
    from sbi.analysis import plot_tarp as sbi_plot_tarp

    if cal.tarp_ecp is None:
        raise ValueError("this Calibration has no TARP results: run calibration(..., tarp=True)")
    fig, ax = sbi_plot_tarp(
        torch.as_tensor(cal.tarp_ecp),
        torch.as_tensor(cal.tarp_alpha),
        title=f"TARP: ATC {cal.tarp_atc:.3f}, KS p {cal.tarp_ks_pval:.2g}",
    )
    return _save_pyplot(fig, path)


def plot_fc_predictive(
    observed_fc: np.ndarray, predicted_fc: np.ndarray, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Observed FC next to the mean posterior-predictive FC, and their upper triangles
    against each other (with the spread over predictive simulations)."""
    observed_fc = np.asarray(observed_fc)
    predicted_fc = np.asarray(predicted_fc)
    if predicted_fc.ndim == 2:
        predicted_fc = predicted_fc[None]
    n = observed_fc.shape[0]
    iu = np.triu_indices(n, 1)
    obs_u = observed_fc[iu]
    pred_u = predicted_fc[:, iu[0], iu[1]]
    r = np.corrcoef(obs_u, pred_u.mean(axis=0))[0, 1]
    fig = _figure(12.0, 3.8)
    axes = fig.subplots(1, 3)
    vmax = float(max(np.abs(obs_u).max(), np.abs(pred_u).max(), 1e-6))
    for ax, matrix, label in (
        (axes[0], observed_fc, "observed FC"),
        (axes[1], predicted_fc.mean(axis=0), f"posterior predictive FC (mean of {len(predicted_fc)})"),
    ):
        im = ax.imshow(matrix, vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("region")
    axes[0].set_ylabel("region")
    fig.colorbar(im, ax=axes[1], shrink=0.8, label="Pearson r")
    ax = axes[2]
    ax.errorbar(obs_u, pred_u.mean(axis=0), yerr=pred_u.std(axis=0), fmt=".", ms=2, alpha=0.3, elinewidth=0.5)
    lim = [min(obs_u.min(), pred_u.mean(0).min()), max(obs_u.max(), pred_u.mean(0).max())]
    ax.plot(lim, lim, color="grey", ls="--", lw=1)
    ax.set_xlabel("observed FC")
    ax.set_ylabel("predicted FC")
    ax.set_title(f"upper triangle, r = {r:.2f}", fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
