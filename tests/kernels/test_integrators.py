"""Convergence orders of the integrators against exact solutions.

Deterministic: a damped linear oscillator (the Generic 2D oscillator with its nonlinear
terms off), exact solution by the matrix exponential: Euler 1, Heun 2, RK4 4.
Stochastic: an Ornstein-Uhlenbeck process driven by the kernel's own increments,
refined by Brownian bridges into a fine path on which the exact solution is a sum:
additive noise gives strong order 1 for Euler-Maruyama and stochastic Heun.
"""

import numpy as np
import pytest
from scipy.linalg import expm

from vbi_dask.connectome import Connectome
from vbi_dask.kernels import rng
from vbi_dask.monitors import Raw
from vbi_dask.simulation import Simulation

ONE_NODE = Connectome(weights=np.zeros((1, 1)), name="single")
LINEAR = dict(tau=1.0, a=0.0, b=-1.0, c=0.0, d=1.0, e=0.0, f=0.0, g=-0.5, alpha=1.0, beta=0.5, gamma=1.0, I=0.0)
T_MS = 2.0


def _final_state(integrator, dt, params, n_sims=1, noise=None, seed=0, x0=(1.0, 0.0)):
    sim = Simulation(
        "generic2d",
        connectome=ONE_NODE,
        dt_ms=dt,
        duration_ms=T_MS,
        integrator=integrator,
        noise=noise or {"V": 0.0, "W": 0.0},
        monitors=(Raw(T_MS),),
        dtype="float64",
        initial_state={"V": x0[0], "W": x0[1]},
    )
    out = sim.run_arrays(params, n_sims=n_sims, seed=seed, threads=1)["sampled"]
    return out[-1, :, 0, :]  # (obs=(V, W), sim)


def _slope(dts, errors):
    return np.polyfit(np.log(dts), np.log(errors), 1)[0]


@pytest.mark.parametrize(
    "integrator, order, dts",
    [
        ("euler", 1, [0.1, 0.05, 0.025, 0.0125]),
        ("heun", 2, [0.1, 0.05, 0.025, 0.0125]),
        ("rk4", 4, [0.4, 0.2, 0.1, 0.05]),
    ],
)
def test_deterministic_order(integrator, order, dts):
    p = LINEAR
    A = np.array(
        [
            [p["d"] * p["tau"] * p["g"], p["d"] * p["tau"] * p["alpha"]],
            [p["d"] * p["b"] / p["tau"], -p["d"] * p["beta"] / p["tau"]],
        ]
    )
    exact = expm(A * T_MS) @ np.array([1.0, 0.0])
    errors = [np.linalg.norm(_final_state(integrator, dt, p)[:, 0] - exact) for dt in dts]
    assert abs(_slope(dts, errors) - order) < 0.15, errors


@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_strong_order_ornstein_uhlenbeck(integrator):
    theta, sigma, n_sims, seed = 1.0, 0.5, 400, 2
    params = {**LINEAR, "alpha": 0.0, "g": -theta, "b": 0.0, "beta": 1.0}
    fine_steps = 2**12
    h = T_MS / fine_steps
    t_mid = (np.arange(fine_steps) + 0.5) * h
    weights = np.exp(-theta * (T_MS - t_mid))  # exact OU solution as a sum over the fine path
    bridge = np.random.default_rng(0)
    dts = [T_MS / 2**k for k in range(3, 8)]
    errors = []
    for dt in dts:
        n = int(round(T_MS / dt))
        m = fine_steps // n
        xi = rng.normals_numpy(seed, np.arange(n)[:, None], 0, np.arange(n_sims)[None, :])[..., 0]
        dW = np.sqrt(dt) * xi.astype(np.float64)  # (step, sim): the kernel's increments
        zeta = bridge.standard_normal((n, m, n_sims))
        fine = dW[:, None, :] / m + np.sqrt(h) * (zeta - zeta.mean(axis=1, keepdims=True))
        fine = fine.reshape(fine_steps, n_sims)
        exact = np.exp(-theta * T_MS) * 1.0 + sigma * (weights[:, None] * fine).sum(axis=0)
        got = _final_state(integrator, dt, params, n_sims=n_sims, noise={"V": sigma, "W": 0.0}, seed=seed)[0]
        errors.append(np.mean(np.abs(got - exact)))
    assert abs(_slope(dts, errors) - 1.0) < 0.2, errors
