"""Published behaviour of the models, checked on the compiled kernels."""

import numpy as np
import pytest
from scipy import signal

from vbi_dask.connectome import Connectome
from vbi_dask.monitors import Bold, Raw, TemporalAverage
from vbi_dask.simulation import Simulation

ONE_NODE = Connectome(weights=np.zeros((1, 1)), name="single")


def test_mpr_bistability_down_and_up_states():
    """Montbrió et al. (2015), Fig. 2: tau = 1, Delta = 1, J = 15, eta = -5 is bistable.

    Fixed points solve -pi^2 r^4 + J r^3 + eta r^2 + Delta^2 / (4 pi^2) = 0 with
    v = -Delta / (2 pi r); the low and high roots are stable, the middle one a saddle.
    """
    tau, delta, J, eta = 1.0, 1.0, 15.0, -5.0
    roots = np.roots([-np.pi**2, J, eta, 0.0, delta**2 / (4 * np.pi**2)])
    r_star = np.sort(roots[(np.abs(roots.imag) < 1e-12) & (roots.real > 0)].real)
    assert r_star.size == 3
    params = {"tau": tau, "Delta": delta, "J": J, "eta": eta, "I": 0.0, "G": 0.0}

    def settle(r0, v0):
        sim = Simulation("mpr", connectome=ONE_NODE, dt_ms=0.01, duration_ms=100.0, noise={"r": 0.0, "v": 0.0},
                         monitors=(Raw(100.0),), dtype="float64", initial_state={"r": r0, "v": v0})
        return sim.run_arrays(params, n_sims=1, threads=1)["sampled"][-1, :, 0, 0]

    v_star = -delta / (2 * np.pi * r_star)
    # start 20% away from each stable point, on the far side of the saddle from the other
    down = settle(0.8 * r_star[0], 1.2 * v_star[0])
    up = settle(1.2 * r_star[2], 0.8 * v_star[2])
    np.testing.assert_allclose(down, [r_star[0], v_star[0]], rtol=1e-6)
    np.testing.assert_allclose(up, [r_star[2], v_star[2]], rtol=1e-6)


def test_jansen_rit_alpha_peak():
    """Jansen & Rit (1995): standard parameters with noisy input give an alpha rhythm."""
    sim = Simulation("jansen_rit", connectome=ONE_NODE, dt_ms=0.1, duration_ms=12_000.0, t_cut_ms=2000.0,
                     monitors=(TemporalAverage(2.0),))
    psp = sim.run(n_sims=4, seed=1, threads=1)["psp"].values[:, :, 0]  # (sim, time)
    f, p = signal.welch(psp, fs=500.0, nperseg=2048, axis=-1)
    peak = f[1:][np.argmax(p.mean(axis=0)[1:])]
    assert 8.0 <= peak <= 12.0


@pytest.mark.parametrize("G_over_critical, expect_sync", [(10.0, True), (0.3, False)])
def test_kuramoto_order_parameter(G_over_critical, expect_sync):
    """All-to-all weights 1/N, Lorentzian natural frequencies of half-width gamma:
    incoherence loses stability at G_c = 2 gamma (Kuramoto 1975); far above, r -> 1."""
    n = 48
    gamma, omega0 = 0.01, 0.06
    quantiles = (np.arange(n) + 0.5) / n
    omega = omega0 + gamma * np.tan(np.pi * (quantiles - 0.5) * 0.9)  # tails trimmed
    w = np.full((n, n), 1.0 / n)
    np.fill_diagonal(w, 0.0)
    sim = Simulation("kuramoto", connectome=Connectome(weights=w), dt_ms=0.1, duration_ms=3000.0,
                     t_cut_ms=2000.0, monitors=(Raw(5.0),))
    ds = sim.run({"omega": omega, "G": G_over_critical * 2 * gamma}, n_sims=2, seed=3, threads=1)
    z = ds["cos_theta"].values + 1j * ds["sin_theta"].values  # (sim, time, node)
    r = np.abs(z.mean(axis=-1)).mean()
    if expect_sync:
        assert r > 0.95
    else:
        assert r < 0.4


@pytest.mark.parametrize("a", [0.25, 0.04])
def test_stuart_landau_amplitude_sqrt_a(a):
    sim = Simulation("stuart_landau", connectome=ONE_NODE, dt_ms=0.05, duration_ms=400.0, t_cut_ms=300.0,
                     noise={"x": 0.0, "y": 0.0}, monitors=(Raw(1.0),), dtype="float64")
    ds = sim.run({"a": a, "beta": 0.5}, n_sims=3, seed=0, threads=1)
    amplitude = np.hypot(ds["x"].values, ds["y"].values)
    np.testing.assert_allclose(amplitude, np.sqrt(a), rtol=1e-4)  # Heun's O(dt^2) bias ~2e-6 here


def test_stuart_landau_decays_below_bifurcation():
    sim = Simulation("stuart_landau", connectome=ONE_NODE, dt_ms=0.05, duration_ms=400.0,
                     noise={"x": 0.0, "y": 0.0}, monitors=(Raw(400.0),), dtype="float64")
    ds = sim.run({"a": -0.1}, n_sims=2, seed=0, threads=1)
    assert np.all(np.hypot(ds["x"].values, ds["y"].values) < 1e-12)


def test_bold_impulse_response_peaks_at_4_to_6_s_then_undershoots():
    """A 1 ms burst of activity (a fast-decaying linear node) through the Balloon model."""
    sim = Simulation(
        "generic2d", connectome=ONE_NODE, dt_ms=0.05, duration_ms=30_000.0,
        noise={"V": 0.0, "W": 0.0}, initial_state={"V": 1.0, "W": 0.0},
        monitors=(Bold(tr_ms=100.0, dt_ms=1.0),), dtype="float64",
    )
    params = dict(tau=1.0, a=0.0, b=0.0, c_w=0.0, d=1.0, e=0.0, f_=0.0, g=-1.0, alpha=0.0, beta=1.0, gamma=1.0, I=0.0)
    ds = sim.run(params, n_sims=1, threads=1)
    y = ds["bold"].values[0, :, 0]
    t_s = ds["time_bold"].values / 1000.0
    k = np.argmax(y)
    assert y[k] > 0
    assert 4.0 <= t_s[k] <= 6.0
    assert y[k:].min() < -0.05 * y[k]  # post-stimulus undershoot
    assert abs(y[-1]) < 0.05 * y[k]  # back to baseline
