"""The numerical pre-flight: real divergence at dt (not at dt/2) is flagged with the
parameter and both steps, a step-size bias is flagged, healthy configurations pass; where
invalid rows of a budget concentrate in the prior; ``vbi-dask check`` exit codes.

MPR on a 6-node network with noise: at G = 0.9 and dt = 0.1 ms a third of 100-ms runs
blow up, at 0.05 ms none do (checked below by plain simulation, independently of the
pre-flight); at G = 0.5 both steps are fine.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from scipy.stats import norm

from vbi_dask import Connectome, Simulation, TemporalAverage
from vbi_dask.budget import Budget
from vbi_dask.cli import main
from vbi_dask.prior import Grid, Prior
from vbi_dask.preflight import PreflightOptions, invalid_by_prior, preflight, prior_points

N_NODES = 6


def connectome() -> Connectome:
    rng = np.random.default_rng(11)
    weights = rng.uniform(0.0, 1.0, (N_NODES, N_NODES))
    np.fill_diagonal(weights, 0.0)
    return Connectome(weights=weights / weights.max(), name="tiny")


def budget(g_high: float, *, dt_ms: float = 0.1, duration_ms: float = 100.0, seed: int = 0) -> Budget:
    simulation = Simulation(
        "mpr", connectome=connectome(), dt_ms=dt_ms, duration_ms=duration_ms, monitors=(TemporalAverage(1.0),)
    )
    prior = Prior({"G": (0.0, g_high)}, model="mpr", n_nodes=N_NODES)
    return Budget(simulation, prior, n_sims=64, features=["moments"], seed=seed)


def diverged(g: float, dt_ms: float, n: int = 32) -> int:
    """Runs of 100 ms at G = g that end non-finite, by plain simulation."""
    simulation = Simulation(
        "mpr", connectome=connectome(), dt_ms=dt_ms, duration_ms=100.0, monitors=(TemporalAverage(1.0),)
    )
    r = simulation.run({"G": np.full(n, g)}, seed=5, first_sim=100)["r"].values
    return int((~np.isfinite(r).all(axis=(1, 2))).sum())


def test_the_divergent_configuration_really_diverges_at_dt_only():
    assert diverged(0.9, 0.1) >= 4
    assert diverged(0.9, 0.05) == 0


def test_flags_divergence_at_dt_but_not_at_half_dt():
    report = preflight(budget(0.9), n_runs=64)
    assert not report.ok
    assert (report.dt_ms, report.half_dt_ms) == (0.1, 0.05)
    [finding] = report.findings
    assert finding.kind == "diverges"
    assert finding.point.label == "G high" and finding.point.theta == (0.9,)
    assert "G=0.9" in finding.message
    assert "at dt 0.1 ms" in finding.message and "none at 0.05 ms" in finding.message
    assert "lower dt (to 0.05 ms or less)" in finding.message
    by_label = {r.point.label: r for r in report.results}
    n_dt, n_half = by_label["G high"].diverged
    assert n_dt >= 4 and n_half == 0
    assert by_label["centre"].diverged == by_label["G low"].diverged == (0, 0)
    assert finding.message in str(report)


def test_divergence_at_both_steps_says_to_narrow_the_prior():
    report = preflight(budget(2.0))  # every run at G = 2 blows up within a few ms, at either step
    finding = next(f for f in report.findings if f.point.label == "G high")
    result = next(r for r in report.results if r.point.label == "G high")
    assert result.diverged == result.runs
    assert "halving dt does not help" in finding.message and "narrow the prior" in finding.message


def test_healthy_configuration_passes_and_is_deterministic():
    report = preflight(budget(0.5), n_runs=64)
    assert report.ok and report.findings == ()
    assert [r.point.label for r in report.results] == ["centre", "G low", "G high"]
    assert all(r.diverged == (0, 0) for r in report.results)
    assert all(0 <= v < report.tolerance for r in report.results for v in r.relative_difference.values())
    assert "OK" in str(report)
    again = preflight(budget(0.5), PreflightOptions(n_runs=64))
    assert again == report  # wall time aside, the same configuration gives the same report


def test_flags_a_step_size_bias_without_divergence():
    # at G = 0.7, dt = 0.1 ms, runs stay finite but the firing rate is half that at 0.05 ms
    report = preflight(budget(0.7, duration_ms=300.0), n_runs=64)
    [finding] = report.findings
    assert finding.kind == "disagrees" and finding.point.label == "G high"
    result = next(r for r in report.results if r.point.label == "G high")
    at_dt, at_half = result.means["r"]
    assert at_dt < 0.75 * at_half
    assert result.relative_difference["r"] > report.tolerance
    assert "r:" in finding.message and "dt 0.1 ms and 0.05 ms" in finding.message


def test_points_cover_the_prior_corners():
    prior = Prior(
        {
            "G": (0.0, 1.0),
            "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]},
            "J": {"dist": "Normal", "loc": 14.5, "scale": 1.0},
        },
        model="mpr",
        n_nodes=N_NODES,
    )
    points = {p.label: np.array(p.theta) for p in prior_points(prior)}
    assert list(points) == [
        "centre",
        "G low",
        "G high",
        "eta low",
        "eta high",
        "J low",
        "J high",
        "all low",
        "all high",
    ]
    j_low, j_high = 14.5 + norm.ppf([0.005, 0.995])  # columns: G, eta[0], eta[3], J
    np.testing.assert_allclose(points["centre"], [0.5, -4.75, -4.75, 14.5])
    np.testing.assert_allclose(points["eta high"], [0.5, -3.5, -3.5, 14.5])  # the regions move together
    np.testing.assert_allclose(points["J low"], [0.5, -4.75, -4.75, j_low])
    np.testing.assert_allclose(points["all high"], [1.0, -3.5, -3.5, j_high])
    single = prior_points(Prior({"G": (0.0, 1.0)}, model="mpr", n_nodes=N_NODES))
    assert [p.label for p in single] == ["centre", "G low", "G high"]  # all low/high are the same points
    grid = prior_points(Grid({"G": [0.1, 0.3, 0.9]}, model="mpr", n_nodes=N_NODES))
    assert [p.theta for p in grid] == [(0.5,), (0.1,), (0.9,)]


def test_options_are_checked():
    with pytest.raises(ValueError, match="tolerance"):
        PreflightOptions(tolerance=0.0)
    with pytest.raises(ValueError, match="n_runs"):
        PreflightOptions(n_runs=0)


# ---------------------------------------------------------------------- invalid rows
def _theta(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, Prior]:
    prior = Prior({"G": (0.0, 1.0), "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}}, model="mpr", n_nodes=N_NODES)
    return prior.sample(n, seed=seed), prior


def test_invalid_rows_at_high_g_name_g():
    theta, prior = _theta()
    rng = np.random.default_rng(1)
    valid = ~((theta[:, 0] > 0.8) & (rng.random(len(theta)) < 0.5))
    lines = invalid_by_prior(theta, valid, prior)
    n_invalid = int((~valid).sum())
    assert lines[0].startswith(f"{n_invalid} invalid rows of 4000 (")
    [line] = lines[1:]
    found = re.fullmatch(
        r"they concentrate at high G: G >= (\S+) holds (\S+)% of them; (\S+)% of the rows there "
        r"are invalid",
        line,
    )
    assert found, line
    edge, share, rate = map(float, found.groups())
    assert 0.8 <= edge <= 0.85 and share >= 90  # the edge sits where the invalid rows start
    assert 40 <= rate <= 60  # half of the rows above 0.8 were made invalid


def test_invalid_rows_at_low_regional_eta_name_that_region():
    theta, prior = _theta()
    valid = theta[:, 2] > -5.7  # eta[3] < -5.7 invalid
    lines = invalid_by_prior(theta, valid, prior)
    assert any(line.startswith("they concentrate at low eta[3]: eta[3] <= -5.7 holds") for line in lines)
    assert not any(" G" in line or "eta[0]" in line for line in lines)


def test_scattered_invalid_rows_name_nothing():
    theta, prior = _theta()
    valid = np.random.default_rng(2).random(len(theta)) > 0.05
    lines = invalid_by_prior(theta, valid, prior)
    assert len(lines) == 2 and "no parameter concentrates them" in lines[1]
    assert not any("concentrate at" in line for line in lines)


def test_no_invalid_rows_report_nothing():
    theta, prior = _theta(100)
    assert invalid_by_prior(theta, np.ones(100, dtype=bool), prior) == []
    with pytest.raises(ValueError, match="theta must be"):
        invalid_by_prior(theta[:, :2], np.ones(100, dtype=bool), prior)


# ---------------------------------------------------------------------- vbi-dask check
def _config(folder, g_high: float):
    np.savetxt(folder / "weights.txt", connectome().weights)
    config = {
        "model": "mpr",
        "connectome": {"weights": "weights.txt", "normalise": "none", "name": "tiny"},
        "simulation": {"dt_ms": 0.1, "duration_ms": 100.0, "monitors": {"temporal_average": {"period_ms": 1.0}}},
        "prior": {"G": [0.0, g_high]},
        "n_sims": 64,
        "seed": 0,
        "features": ["moments"],
    }
    path = folder / f"budget_{g_high}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_command_exit_codes(tmp_path, capsys):
    assert main(["check", str(_config(tmp_path, 0.5)), "--n-runs", "64"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check", str(_config(tmp_path, 0.9)), "--n-runs", "64"]) == 1
    out = capsys.readouterr().out
    assert "G=0.9" in out and "lower dt (to 0.05 ms or less)" in out
    assert main(["check", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error
        main(["check", str(_config(tmp_path, 0.5)), "--tolerance", "-1"])
    assert usage.value.code == 2


def test_simulate_warns_before_a_new_budget_and_its_summary_says_where_rows_diverged(tmp_path, capsys):
    config = _config(tmp_path, 0.9)
    store = tmp_path / "s.zarr"
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warning: the numerical pre-flight has 1 finding(s)" in captured.err
    assert "G=0.9" in captured.err and "lower dt" in captured.err
    summary = captured.out
    n_invalid = int(re.search(r"invalid \(NaN/inf\)\s+(\d+)", summary).group(1))
    assert n_invalid > 0 and re.search(rf"invalid rows:\n  {n_invalid} invalid rows? of 64 ", summary)
    # resumed (something done): no pre-flight again; --no-check skips it for a new store
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync", "--quiet"]) == 0
    assert "pre-flight" not in capsys.readouterr().err
    assert (
        main(
            [
                "simulate",
                str(config),
                "--store",
                str(tmp_path / "t.zarr"),
                "--scheduler",
                "sync",
                "--quiet",
                "--no-check",
            ]
        )
        == 0
    )
    assert "pre-flight" not in capsys.readouterr().err
