"""Numerical pre-flight: does ``dt`` resolve the dynamics over the whole prior?

>>> report = preflight(budget)            # seconds, before a budget runs
>>> print(report); report.ok, report.findings
>>> invalid_by_prior(theta[done], valid[done], budget.prior)   # after it ran

:func:`preflight` simulates a few points of the prior (its centre; each parameter at its
low and high end with the others at the centre; every parameter low; every parameter
high; the regions of a regional parameter move together; unbounded distributions are
taken at their 0.5% and 99.5% quantiles) for a short time at the budget's ``dt`` and at
``dt / 2``, and reports two kinds of finding:

* **divergence**: a run whose states become NaN or infinite. Diverging at ``dt`` and not
  at ``dt / 2`` is a step-size artefact: lower ``dt``. Diverging at ``dt / 2`` too means
  that halving is not enough, or that the model is unstable there: lower ``dt`` further
  or narrow the prior.
* **disagreement**: the time-mean of an observable (over the second half of the run, the
  first letting the initial transient pass; over the regions and the runs of the point)
  differs between ``dt`` and ``dt / 2`` by more than ``tolerance`` times the
  observable's root mean square at that point, *and* beyond noise: by more than three
  standard errors of the difference, or by a Mann-Whitney rank test at 1% (run-level
  means are heavy-tailed where runs switch between states).

Why this statistic for stochastic runs: the kernel's noise is keyed by the integration
step, so the runs at ``dt`` and ``dt / 2`` see independent noise and cannot be compared
sample by sample (run k starts from the same initial conditions at both, which are keyed
by the simulation index). A time-mean is what such noise averages out of; the spread
between the runs of one point gives its standard error, so a difference beyond it is a
systematic step-size bias, not another noise draw. Dividing by the root mean square (not
by the mean) keeps the tolerance unit-free and meaningful for observables whose mean is
near zero (oscillators). The default tolerance (0.25) lets through the few-percent biases
of an explicit scheme at a reasonable step, and flags a bias a quarter as large as the
signal itself. (MPR at dt 0.05 ms, the end-to-end demo's step, sits below it: near the
transition to high activity, G = 0.7, its mean firing rate is about 0.2 rms lower than at
0.025 ms.)

Each point is run several times (the kernels run simulations in blocks of 16 lanes, so
the lanes a handful of points would leave empty are filled with repeats of the points
at no extra cost). The runs use the budget's seed and the simulation indices 0, 1, ...:
the same configuration gives the same report. Divergence in a stochastic run is a random
event: a short pre-flight catches the corners where it is frequent, not a rate of one
run in a thousand; :func:`invalid_by_prior` tells, at the end of a budget, where the
invalid rows concentrate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # the budget module imports the cluster machinery: not needed to import this one
    from .budget import Budget
    from .prior import Grid, ParamPrior, Prior

__all__ = [
    "PreflightOptions",
    "PreflightPoint",
    "PointResult",
    "Finding",
    "PreflightReport",
    "preflight",
    "prior_points",
    "invalid_by_prior",
]

_TAIL_QUANTILES = (0.005, 0.5, 0.995)  # low end, centre, high end of an unbounded distribution
_SAMPLES_PER_RUN = 200  # temporal-average samples per pre-flight run (the mean is exact whatever the number)


@dataclass(frozen=True)
class PreflightOptions:
    """Options of :func:`preflight` (the flags of ``vbi-dask check`` are generated from
    these fields)."""

    duration_ms: float | None = field(
        default=None,
        metadata={
            "help": "simulated time of each run, ms (default: the budget's duration, at most max_steps steps of dt)"
        },
    )
    max_steps: int = field(
        default=20_000,
        metadata={"help": "with duration_ms unset: at most this many steps of dt per run (twice as many at dt/2)"},
    )
    n_runs: int = field(
        default=32,
        metadata={"help": "runs at each step size, spread over the points (rounded up to whole blocks of lanes)"},
    )
    tolerance: float = field(
        default=0.25,
        metadata={
            "help": "largest accepted difference of a time-mean between dt and dt/2, in units of the "
            "observable's root mean square"
        },
    )

    def __post_init__(self):
        if self.duration_ms is not None and not (math.isfinite(self.duration_ms) and self.duration_ms > 0):
            raise ValueError(f"duration_ms must be a positive number of ms, got {self.duration_ms!r}")
        for name in ("max_steps", "n_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"tolerance must be a positive number, got {self.tolerance!r}")


@dataclass(frozen=True)
class PreflightPoint:
    """One point of the prior: ``label`` ("centre", "G high", "all low", ...), its
    ``theta`` row and, per parameter, the value(s) as text."""

    label: str
    theta: tuple[float, ...]
    values: Mapping[str, str]
    moved: tuple[str, ...]  # the parameters away from the centre
    side: str  # "centre", "low" or "high"

    @property
    def where(self) -> str:
        """The point in words, for messages: 'G=1 (its high end; eta=-5)', 'the prior's
        centre (G=0.5, eta=-5)', 'every parameter's high end (G=1, eta=-4)'."""
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        if self.side == "centre":
            return f"the prior's centre ({values})"
        if len(self.moved) == 1:
            rest = {k: v for k, v in self.values.items() if k != self.moved[0]}
            others = f"; {', '.join(f'{k}={v}' for k, v in rest.items())}" if rest else ""
            return f"{self.moved[0]}={self.values[self.moved[0]]} (its {self.side} end{others})"
        return f"every parameter's {self.side} end ({values})"


@dataclass(frozen=True)
class PointResult:
    """What the runs of one point gave: ``diverged`` and ``runs`` at (dt, dt/2),
    ``first_divergence_ms`` (earliest non-finite sample, per step size, None if none),
    ``means`` observable -> (time-mean at dt, at dt/2), ``relative_difference``
    observable -> |difference| / root mean square (NaN where a run diverged) and
    ``significant`` observable -> whether the difference is beyond noise."""

    point: PreflightPoint
    runs: tuple[int, int]
    diverged: tuple[int, int]
    first_divergence_ms: tuple[float | None, float | None]
    means: Mapping[str, tuple[float, float]]
    relative_difference: Mapping[str, float]
    significant: Mapping[str, bool]


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` is "diverges" or "disagrees"; ``message`` says what to do."""

    kind: str
    point: PreflightPoint
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PreflightReport:
    """The outcome of :func:`preflight`. ``ok`` when there is no finding."""

    findings: tuple[Finding, ...]
    results: tuple[PointResult, ...]
    model: str
    n_nodes: int
    dt_ms: float
    half_dt_ms: float
    duration_ms: float
    n_runs: int
    tolerance: float
    seed: int
    budget_duration_ms: float
    wall_s: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        head = (
            f"numerical pre-flight: {self.model} on {self.n_nodes} regions, dt {self.dt_ms:g} ms vs "
            f"{self.half_dt_ms:g} ms, {len(self.results)} points of the prior, {self.n_runs} runs of "
            f"{self.duration_ms:g} ms at each step (seed {self.seed}), {self.wall_s:.1f} s"
        )
        rows = [
            (
                "point",
                "parameters",
                f"diverged at {self.dt_ms:g} / {self.half_dt_ms:g} ms",
                "largest |mean difference| / rms",
            )
        ]
        for r in self.results:
            finite = {k: v for k, v in r.relative_difference.items() if math.isfinite(v)}
            worst = max(finite, key=finite.get) if finite else None
            rows.append(
                (
                    r.point.label,
                    ", ".join(f"{k}={v}" for k, v in r.point.values.items()),
                    f"{r.diverged[0]}/{r.runs[0]}  {r.diverged[1]}/{r.runs[1]}",
                    f"{finite[worst]:.3f} ({worst})" if worst else "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        table = "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in rows)
        if self.ok:
            tail = (
                f"OK: no run diverged, and every time-mean agrees between the two step sizes within "
                f"{self.tolerance:g} of its root mean square"
            )
        else:
            tail = f"{len(self.findings)} finding(s):\n" + "\n".join(f"  - {f.message}" for f in self.findings)
        exposure = min(r.runs[0] for r in self.results) * self.duration_ms
        if self.budget_duration_ms > exposure:
            tail += (
                f"\nnote: {min(r.runs[0] for r in self.results)} runs of {self.duration_ms:g} ms per point can "
                f"miss a divergence rarer than about once per {exposure:g} ms of simulated time; the budget "
                f"simulates {self.budget_duration_ms:g} ms per row: look at where its invalid rows lie when it "
                "is done (vbi_dask.preflight.invalid_by_prior)"
            )
        return f"{head}\n{table}\n{tail}"


# ---------------------------------------------------------------------- points of the prior
def _fmt(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.4g}" if f"{lo:.4g}" == f"{hi:.4g}" else f"{lo:.4g}..{hi:.4g}"


def _has_quantile_function(factor: "ParamPrior") -> bool:
    from .prior import _SCIPY_PPF, _torch

    if factor.dist in ("Uniform", "MultivariateNormal") or factor.dist in _SCIPY_PPF:
        return True
    torch = _torch()

    try:
        factor._torch_dist(factor.n_columns).icdf(torch.full((factor.n_columns,), 0.5, dtype=torch.float64))
    except NotImplementedError:
        return False
    return True


def _levels(prior: "Prior | Grid", seed: int) -> list[tuple[str, slice, np.ndarray]]:
    """Per factor: (name, its columns, (3, k) values at its low end, centre, high end)."""
    from .prior import Prior

    if not isinstance(prior, Prior):  # a Grid: one column per axis, its range
        low, high = prior.bounds()
        return [
            (name, slice(j, j + 1), np.array([[low[j]], [(low[j] + high[j]) / 2], [high[j]]]))
            for j, name in enumerate(prior.param_names)
        ]
    out, j = [], 0
    for factor in prior.params:
        k = factor.n_columns
        if factor.dist == "Uniform":
            low, high = factor.bounds()
            levels = np.stack([low, (low + high) / 2, high])
        elif _has_quantile_function(factor):
            u = np.repeat(np.asarray(_TAIL_QUANTILES)[:, None], k, axis=1)
            levels = factor._inverse_cdf(u, np.zeros(3, dtype=np.uint64))
        else:  # sampled by torch without a quantile function: empirical quantiles
            draws = prior.sample(4000, seed=seed)[:, j : j + k]
            levels = np.quantile(draws, _TAIL_QUANTILES, axis=0)
        out.append((factor.name, slice(j, j + k), np.asarray(levels, dtype=np.float64)))
        j += k
    return out


def prior_points(prior: "Prior | Grid", *, seed: int = 0) -> list[PreflightPoint]:
    """The points :func:`preflight` runs: the centre, each parameter low and high (the
    others at the centre), all low, all high (duplicates dropped). A regional
    parameter's regions move together. ``seed`` only matters for distributions without
    a quantile function (their quantiles are estimated from 4000 draws)."""
    levels = _levels(prior, seed)
    names = [name for name, _, _ in levels]
    n_param = len(prior.param_names)

    def point(label: str, side: str, moved: Sequence[str]) -> PreflightPoint:
        theta = np.empty(n_param)
        values = {}
        for name, columns, level in levels:
            row = level[{"low": 0, "high": 2}[side] if name in moved else 1]
            theta[columns] = row
            values[name] = _fmt(row)
        return PreflightPoint(label, tuple(float(v) for v in theta), values, tuple(moved), side)

    points = [point("centre", "centre", ())]
    for name in names:
        points += [point(f"{name} low", "low", (name,)), point(f"{name} high", "high", (name,))]
    if len(names) > 1:
        points += [point("all low", "low", names), point("all high", "high", names)]
    unique: dict[tuple[float, ...], PreflightPoint] = {}
    for p in points:
        unique.setdefault(p.theta, p)
    return list(unique.values())


# ---------------------------------------------------------------------- running
def _short_simulation(simulation, dt_ms: float, duration_ms: float):
    """The budget's simulation at ``dt_ms`` for ``duration_ms`` (rounded to whole steps of
    the budget's dt) from t = 0, every observable averaged over periods of a whole number
    of the budget's steps (so of both step sizes)."""
    from .monitors import TemporalAverage

    base = simulation.dt_ms
    n_steps = max(1, round(duration_ms / base))
    # about _SAMPLES_PER_RUN samples of a period that divides the run (duration kept when it can be)
    decimation = next(k for k in range(max(1, n_steps // _SAMPLES_PER_RUN), 0, -1) if n_steps % k == 0)
    period, duration = base * decimation, base * n_steps
    return dataclasses.replace(
        simulation, dt_ms=dt_ms, duration_ms=duration, t_cut_ms=0.0, monitors=(TemporalAverage(period),)
    )


def _run(budget: "Budget", theta: np.ndarray, dt_ms: float, duration_ms: float, threads, backend) -> dict:
    sim = _short_simulation(budget.simulation, dt_ms, duration_ms)
    # the kernel gets float32 parameters, as in a budget's blocks
    params = budget.prior.to_params(theta.astype(np.float32))
    out = sim.run_arrays(params, n_sims=len(theta), seed=budget.seed, first_sim=0, threads=threads, backend=backend)[
        "sampled"
    ]  # (time, obs, node, sim)
    x = out.astype(np.float64)
    late = x[x.shape[0] // 2 :]  # the first half lets the transient from the initial conditions pass
    with np.errstate(all="ignore"):
        finite = np.isfinite(x).all(axis=(1, 2))  # (time, sim)
        first = np.where(finite.all(axis=0), np.nan, sim.sample_times_ms()[np.argmin(finite, axis=0)])
        mean = late.mean(axis=(0, 2))  # (obs, sim)
        mean_square = (late * late).mean(axis=(0, 2))
    return {
        "diverged": ~finite.all(axis=0),
        "first_ms": first,
        "mean": mean,
        "mean_square": mean_square,
        "duration_ms": sim.duration_ms,
    }


def _beyond_noise(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether time-means ``a`` (runs at dt) and ``b`` (at dt/2) differ beyond what
    different noise gives: by more than three standard errors, or by a rank test
    (Mann-Whitney, p < 1%; run-level means are heavy-tailed where runs switch between
    states, which inflates the standard error while most runs still differ)."""
    from scipy.stats import mannwhitneyu

    se = math.sqrt(float(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    if abs(float(a.mean() - b.mean())) > 3 * se:
        return True
    return bool(np.ptp(np.concatenate([a, b])) > 0 and mannwhitneyu(a, b).pvalue < 0.01)


def _compare(point: PreflightPoint, runs: np.ndarray, coarse: dict, fine: dict, observed: Sequence[str]) -> PointResult:
    diverged = (int(coarse["diverged"][runs].sum()), int(fine["diverged"][runs].sum()))
    first = tuple(
        None if np.isnan(r["first_ms"][runs]).all() else float(np.nanmin(r["first_ms"][runs])) for r in (coarse, fine)
    )
    means, relative, significant = {}, {}, {}
    for k, name in enumerate(observed):
        a, b = coarse["mean"][k, runs], fine["mean"][k, runs]
        with np.errstate(all="ignore"):
            means[name] = (float(a.mean()), float(b.mean()))
            if any(diverged):
                relative[name], significant[name] = math.nan, False
                continue
            difference = float(a.mean() - b.mean())
            squares = np.concatenate([coarse["mean_square"][k, runs], fine["mean_square"][k, runs]])
            rms = math.sqrt(float(squares.mean()))
            relative[name] = abs(difference) / rms if rms > 0 else (0.0 if difference == 0 else math.inf)
            if len(runs) >= 2:
                significant[name] = _beyond_noise(a, b)
            else:  # one run: no estimate of the noise, the tolerance alone decides
                significant[name] = True
    return PointResult(point, (len(runs), len(runs)), diverged, first, means, relative, significant)


def _clear(n_dt: int, n_half: int, runs: int) -> bool:
    """Whether runs diverge clearly more often at dt than at dt/2 (one-sided Fisher exact
    test at 5%); with a handful of runs per point a difference is often not clear."""
    from scipy.stats import fisher_exact

    return fisher_exact([[n_dt, runs - n_dt], [n_half, runs - n_half]], alternative="greater").pvalue < 0.05


def _findings(results: Sequence[PointResult], dt: float, half: float, tolerance: float) -> list[Finding]:
    divergent, disagreeing = [], []
    for r in results:
        (n_dt, n_half), (runs, _) = r.diverged, r.runs
        where = r.point.where
        if n_dt or n_half:
            first_dt, first_half = r.first_divergence_ms
            if not n_dt:
                counts = (
                    f"no run diverges at dt {dt:g} ms, but {n_half} of {runs} do at {half:g} ms (the first "
                    f"after {first_half:g} ms)"
                )
            else:
                counts = (
                    f"{n_dt} of {runs} runs diverge at dt {dt:g} ms (the first after {first_dt:g} ms) and "
                    f"{f'{n_half} of {runs}' if n_half else 'none'} at {half:g} ms"
                )
            if n_dt > n_half == 0:
                advice = f"lower dt (to {half:g} ms or less)"
            elif n_dt > n_half:
                advice = (
                    f"a smaller dt helps but does not cure it: lower dt further (to {half / 2:g} ms or less) "
                    "or narrow the prior"
                )
            else:
                advice = (
                    "halving dt does not help, so the model may be unstable there whatever the step: narrow the prior"
                )
            if n_dt > n_half and not _clear(n_dt, n_half, runs):
                advice += " (from few runs: raise n_runs to be sure)"
            divergent.append(Finding("diverges", r.point, f"at {where}, {counts}: {advice}"))
        else:
            flagged = [k for k, v in r.relative_difference.items() if v > tolerance and r.significant[k]]
            if flagged:
                parts = ", ".join(
                    f"{k}: {r.means[k][0]:.4g} vs {r.means[k][1]:.4g} ({r.relative_difference[k]:.2f} of its rms)"
                    for k in flagged
                )
                disagreeing.append(
                    Finding(
                        "disagrees",
                        r.point,
                        (
                            f"at {where}, time-means differ between dt {dt:g} ms and {half:g} ms beyond the tolerance "
                            f"({tolerance:g} of the rms): {parts}: lower dt (to {half:g} ms or less)"
                        ),
                    )
                )
    return divergent + disagreeing


def preflight(
    budget: "Budget",
    options: PreflightOptions | None = None,
    *,
    threads: int | None = None,
    backend: str = "cpu",
    **overrides: Any,
) -> PreflightReport:
    """Run the points of :func:`prior_points` at the budget's ``dt`` and at ``dt / 2``.

    Parameters
    ----------
    budget : Budget
        Its simulation (model, connectome, coupling, noise, delays, integrator, dtype),
        prior and seed; its monitors, transient and features are not used: every
        observable is averaged over the whole short run.
    options : PreflightOptions
        ``duration_ms``, ``max_steps``, ``n_runs``, ``tolerance``; keyword ``overrides``
        replace its fields (``preflight(budget, tolerance=0.5)``).
    threads : kernel threads (default: the CPUs of this process).
    backend : "cpu" (default), "cuda" or "auto".

    Returns
    -------
    PreflightReport
        ``ok``, ``findings`` (each with a message saying what to do) and the per-point
        results; ``str(report)`` is a readable table.

    Raises
    ------
    ValueError
        Invalid options; a budget of an external simulator (no vbi-dask kernel to check).
    """
    from .budget import Budget

    if not isinstance(budget, Budget):
        raise ValueError(
            "the numerical pre-flight checks vbi-dask's simulations; an external simulator's budget has none to check"
        )
    options = dataclasses.replace(options or PreflightOptions(), **overrides)
    t0 = time.perf_counter()
    sim, prior = budget.simulation, budget.prior
    points = prior_points(prior, seed=budget.seed)
    lanes = sim.lanes
    n_runs = -(-max(options.n_runs, len(points)) // lanes) * lanes  # whole blocks: no one-lane shell to compile
    owner = np.arange(n_runs) % len(points)
    theta = np.array([points[i].theta for i in owner])
    dt = float(sim.dt_ms)
    duration = options.duration_ms if options.duration_ms is not None else min(sim.duration_ms, options.max_steps * dt)
    coarse = _run(budget, theta, dt, duration, threads, backend)
    fine = _run(budget, theta, dt / 2, duration, threads, backend)
    observed = list(sim.model.observed)
    results = tuple(_compare(p, np.flatnonzero(owner == i), coarse, fine, observed) for i, p in enumerate(points))
    return PreflightReport(
        findings=tuple(_findings(results, dt, dt / 2, options.tolerance)),
        results=results,
        model=sim.model.name,
        n_nodes=sim.connectome.n_nodes,
        dt_ms=dt,
        half_dt_ms=dt / 2,
        duration_ms=float(coarse["duration_ms"]),
        n_runs=n_runs,
        tolerance=options.tolerance,
        seed=budget.seed,
        budget_duration_ms=float(sim.duration_ms),
        wall_s=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------- after a budget
def _concentration(name: str, side: str, x: np.ndarray, invalid: np.ndarray) -> str:
    """'they concentrate at high G: G >= 0.75 holds 97% of them; 22% of the rows there are
    invalid'. The edge leaves 10% of the invalid rows out, rounded outwards to a step of
    about 1/20 of the parameter's spread of values."""
    step = 10.0 ** math.floor(math.log10(np.ptp(x) / 20))
    if side == "high":
        edge = math.floor(np.quantile(x[invalid], 0.1) / step) * step
        beyond, sign = x >= edge, ">="
    else:
        edge = math.ceil(np.quantile(x[invalid], 0.9) / step) * step
        beyond, sign = x <= edge, "<="
    share = (beyond & invalid).sum() / invalid.sum()
    rate = (beyond & invalid).sum() / max(1, beyond.sum())
    return (
        f"they concentrate at {side} {name}: {name} {sign} {edge:.6g} holds {100 * share:.3g}% of them; "
        f"{100 * rate:.3g}% of the rows there are invalid"
    )


def invalid_by_prior(
    theta: np.ndarray, valid: np.ndarray, prior: "Prior | Grid", *, alpha: float = 0.01, min_effect: float = 0.7
) -> list[str]:
    """Where in the prior the invalid (diverged) rows of a budget concentrate.

    For each column of ``theta`` (and, for a regional parameter, the mean over its
    regions), the values of the invalid rows are compared with those of the valid rows by
    a one-sided Mann-Whitney test at each end: a concentration is reported when it
    rejects at ``alpha`` (Bonferroni-corrected over the columns and both ends) and the
    effect is large: an invalid row's value exceeds (or falls below) a valid row's with
    probability at least ``min_effect``. The test needs no threshold of its own and works
    whatever the share of invalid rows, for any prior or grid.

    Parameters
    ----------
    theta : (n, n_param) parameters of the finished rows (``done`` rows of a store).
    valid : (n,) bool, the store's ``valid`` of the same rows.
    prior : the budget's :class:`~vbi_dask.prior.Prior` or :class:`~vbi_dask.prior.Grid`
        (for the column names).
    alpha : family-wise significance level.
    min_effect : smallest probability of superiority (0.5: no effect, 1: complete
        separation) reported.

    Returns
    -------
    list of str
        Empty when every row is valid. Otherwise a first line with the count
        ("412 invalid rows of 10000 (4.12%)") followed by one line per concentration,
        most significant first ("they concentrate at high G: G >= 0.75 holds 90% of them;
        31% of the rows there are invalid"), or a line saying that no parameter
        concentrates them.
    """
    from scipy.stats import mannwhitneyu

    theta = np.asarray(theta, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    names = list(prior.param_names)
    if theta.ndim != 2 or theta.shape[1] != len(names):
        raise ValueError(f"theta must be (sim, param) with param={len(names)} ({names}), got shape {theta.shape}")
    if valid.shape != (theta.shape[0],):
        raise ValueError(f"valid must be (sim,) = ({theta.shape[0]},), got shape {valid.shape}")
    if not 0.5 < min_effect <= 1:
        raise ValueError(f"min_effect must be in (0.5, 1], got {min_effect}")
    invalid = ~valid
    n, n_invalid = len(valid), int(invalid.sum())
    if n_invalid == 0:
        return []
    lines = [f"{n_invalid} invalid row{'s' if n_invalid != 1 else ''} of {n} ({100 * n_invalid / n:.3g}%)"]
    if n_invalid == n:
        return lines + ["every row is invalid: the whole prior diverges (lower dt or check the model's parameters)"]
    columns = {name: theta[:, j] for j, name in enumerate(names)}
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if "[" in name:
            groups.setdefault(name.split("[", 1)[0], []).append(j)
    columns.update({f"mean {group}": theta[:, js].mean(axis=1) for group, js in groups.items() if len(js) > 1})
    level = alpha / (2 * len(columns))
    found = []
    for name, x in columns.items():
        if not np.isfinite(x).all() or x.min() == x.max():
            continue
        for side, alternative in (("high", "greater"), ("low", "less")):
            test = mannwhitneyu(x[invalid], x[valid], alternative=alternative)
            effect = test.statistic / (n_invalid * (n - n_invalid))  # P(invalid value > valid value)
            if side == "low":
                effect = 1 - effect
            if test.pvalue < level and effect >= min_effect:
                found.append((test.pvalue, _concentration(name, side, x, invalid)))
    if not found:
        lines.append("they are spread over the prior: no parameter concentrates them")
    lines += [text for _, text in sorted(found, key=lambda item: item[0])]
    return lines
