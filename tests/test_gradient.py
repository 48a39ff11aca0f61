"""The differentiable (torch) simulator against the Numba kernel, its gradients against
finite differences, and recovery of regional parameters from an FC.

Independent truths: the kernel (``Simulation.run_arrays`` in float64, generated code,
its own sum order) for the forward pass; central differences of the forward pass for
the gradients; known regional parameters of a simulated subject for the fit.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vbi_dask.connectome import Connectome  # noqa: E402
from vbi_dask.gradient import TORCH_MATH, TorchSimulator, fc_torch, fit_fc  # noqa: E402
from vbi_dask.monitors import Bold, Raw, TemporalAverage  # noqa: E402
from vbi_dask.simulation import Simulation  # noqa: E402
from vbi_dask.stimulus import Sinusoid, Stimulus  # noqa: E402

EPS = np.finfo(np.float64).eps


def small_connectome(n: int = 4, seed: int = 0) -> Connectome:
    """Random symmetric weights (max 1) and tract lengths of 1-19 mm."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 1.0, (n, n))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    lengths = rng.integers(1, 20, (n, n)).astype(float)
    lengths = np.triu(lengths, 1) + np.triu(lengths, 1).T
    return Connectome(weights=w / w.max(), tract_lengths_mm=lengths, name=f"small{n}")


def assert_close_to_kernel(sim: Simulation, params: dict, seed: int = 3, first_sim: int = 2) -> float:
    """Max abs difference (relative to max(1, |x|)) between torch and kernel outputs.

    Tolerance: both compute the same float64 operations per step except the order of
    the coupling sums (the kernel's partial accumulators); a few ulps per step, carried
    along a stable trajectory, grow at most linearly: 100 n_steps eps (3e-12 for 150
    steps), far below any modelling difference (a 1e-6 change of one parameter moves
    the outputs by ~1e-7).
    """
    want = sim.run_arrays(params, seed=seed, first_sim=first_sim, threads=1)
    got = TorchSimulator(sim).run(params, seed=seed, first_sim=first_sim)
    tol = 100 * sim.n_steps * EPS
    worst = 0.0
    for key, value in got.items():
        ref = want[key][..., 0]
        assert value.shape == ref.shape, key
        err = float(np.max(np.abs(value.detach().numpy() - ref) / np.maximum(1.0, np.abs(ref))))
        assert err <= tol, (key, err, tol)
        worst = max(worst, err)
    return worst


DT_MPR = 0.01


@pytest.mark.parametrize("delays", [False, True])
def test_mpr_heun_with_noise_equals_kernel(delays):
    """MPR, stochastic Heun, noise on both states, regional eta, Raw + Bold monitors, a
    recorded window after a transient; with delays of 1-19 steps (the history buffer)."""
    sim = Simulation(
        "mpr",
        connectome=small_connectome(),
        dt_ms=DT_MPR,
        duration_ms=150 * DT_MPR,
        speed_mm_per_ms=100.0 if delays else None,
        noise={"r": 0.01, "v": 0.02},
        dtype="float64",
        monitors=(Raw(5 * DT_MPR), Bold(tr_ms=25 * DT_MPR, dt_ms=5 * DT_MPR)),
        t_cut_ms=20 * DT_MPR,
    )
    params = {"G": 0.6, "eta": np.array([-4.6, -4.0, -5.0, -4.3])}
    assert_close_to_kernel(sim, params)
    if delays:  # the delays matter: the same run without them is far off
        fast = Simulation(
            "mpr",
            connectome=sim.connectome,
            dt_ms=DT_MPR,
            duration_ms=150 * DT_MPR,
            noise={"r": 0.01, "v": 0.02},
            dtype="float64",
            monitors=(Raw(5 * DT_MPR),),
            t_cut_ms=20 * DT_MPR,
        )
        a = TorchSimulator(sim).run(params, seed=3, first_sim=2)["sampled"]
        b = TorchSimulator(fast).run(params, seed=3, first_sim=2)["sampled"]
        assert float((a - b).abs().max()) > 1e-6


@pytest.mark.parametrize(
    "model, integrator, dt_ms",
    [
        ("hopf", "heun", 10.0),  # time in seconds, difference coupling of two signals
        ("wilson_cowan", "euler", 0.1),  # a helper (sigmoid) closure calling math.exp, bounds
        ("epileptor", "heun", None),  # branches on values: evaluated node by node
        ("aln", "heun", None),  # data tables, a signal summed with squared weights, 44-argument drift
    ],
)
def test_other_models_equal_kernel(model, integrator, dt_ms):
    sim = Simulation(
        model,
        connectome=small_connectome(),
        dt_ms=dt_ms,
        duration_ms=150 * (dt_ms or 0.05),
        integrator=integrator,
        dtype="float64",
        monitors=(TemporalAverage(5 * (dt_ms or Simulation(model).dt_ms)),),
    )
    assert_close_to_kernel(sim, {"G": 0.4})


def test_rk4_with_stimulus_equals_kernel():
    """Deterministic RK4 (stage coupling at step n, stimulus at n, n + 1/2, n + 1)."""
    stim = Stimulus(Sinusoid(frequency_hz=100.0), state="E", nodes=[0, 2], amplitude=0.5)
    sim = Simulation(
        "wilson_cowan",
        connectome=small_connectome(),
        integrator="rk4",
        noise={"E": 0.0, "I": 0.0},
        duration_ms=15.0,
        dtype="float64",
        monitors=(TemporalAverage(1.0),),
        stimulus=stim,
    )
    assert_close_to_kernel(sim, {"G": 0.7, "stimulus_amplitude": 0.8})


def mpr_fc_loss(n_steps: int = 200):
    """1 - corr(FC, target) of a 3-node noisy MPR run (Heun, delays), as a function of
    (G, eta per region)."""
    sim = Simulation(
        "mpr",
        connectome=small_connectome(3, seed=1),
        dt_ms=DT_MPR,
        duration_ms=n_steps * DT_MPR,
        speed_mm_per_ms=100.0,
        noise={"r": 0.005, "v": 0.05},
        dtype="float64",
        monitors=(TemporalAverage(5 * DT_MPR),),
    )
    simulator = TorchSimulator(sim)
    target = torch.tensor([0.2, 0.5, -0.1], dtype=torch.float64)
    rows, cols = torch.triu_indices(3, 3, 1)

    def loss(G, eta):
        fc = fc_torch(simulator.forward({"G": G, "eta": eta, "Delta": 1.0}, seed=11))
        upper = fc[rows, cols]
        a, b = upper - upper.mean(), target - target.mean()
        return 1.0 - (a @ b) / (a.norm() * b.norm())

    return loss


def test_gradient_equals_central_differences():
    """d loss / d (G, eta_i) by autograd against central differences with h = 1e-5.

    Error of the difference quotient: truncation h^2 |f'''| / 6 ~ 1e-10 (third derivatives
    of order 1 here) plus rounding ~ eps |f| / h ~ 1e-11 (|f| ~ 1, and the forward pass
    differs from a smooth function only by rounding): a relative tolerance of 1e-6 on
    the gradient vector leaves a margin of ~1e4, and a wrong chain (a missing path
    through the coupling, the delays or the monitor) is off by far more.
    """
    loss = mpr_fc_loss()
    G = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    eta = torch.tensor([-4.6, -4.2, -5.0], dtype=torch.float64, requires_grad=True)
    value = loss(G, eta)
    value.backward()
    auto = np.concatenate([[G.grad.item()], eta.grad.numpy()])
    h = 1e-5
    numeric = []
    with torch.no_grad():
        for k in range(4):
            plus, minus = [G.detach().clone(), eta.detach().clone()], [G.detach().clone(), eta.detach().clone()]
            if k == 0:
                plus[0] += h
                minus[0] -= h
            else:
                plus[1][k - 1] += h
                minus[1][k - 1] -= h
            numeric.append((loss(*plus) - loss(*minus)).item() / (2 * h))
    numeric = np.asarray(numeric)
    assert np.all(np.abs(auto) > 1e-4), auto  # a real dependence, not a zero gradient
    np.testing.assert_allclose(auto, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())


def test_torch_gradcheck_on_a_short_run():
    """torch's own gradcheck (its finite differences, every input) on 60 steps."""
    loss = mpr_fc_loss(60)
    G = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    eta = torch.tensor([-4.6, -4.2, -5.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss, (G, eta), eps=1e-6, atol=1e-7, rtol=1e-5)


def hopf_subject():
    """A 5-node Hopf network, per-region bifurcation parameters ``a`` (1/s) spread over
    the fluctuating regime below the bifurcation; 200 s at dt = 0.2 s (Euler-Maruyama,
    |a| dt, omega dt << 1), 1 s averages: 200 samples per FC."""
    rng = np.random.default_rng(1)
    w = rng.uniform(0.0, 1.0, (5, 5))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    c = Connectome(weights=w / w.max(), name="hopf5")
    sim = Simulation(
        "hopf",
        connectome=c,
        dt_ms=200.0,
        duration_ms=200_000.0,
        integrator="euler",
        dtype="float64",
        monitors=(TemporalAverage(1000.0),),
    )
    return sim, np.array([-0.3, -0.05, -0.15, -0.02, -0.1]), 0.3


@pytest.mark.slow  # ~30 s alone on one core: 50 forward and backward passes of 1000 steps
def test_fit_recovers_regional_bifurcation_parameters():
    """A simulated subject (seed 7) and a fit from a homogeneous start (a = -0.12 in every
    region, errors 0.03-0.18) with the subject's noise realisation (common random numbers).

    With the realisation known, the true ``a`` is a global minimum (loss 0), so what is
    left is the optimiser's and the landscape's resolution: 1 - r changes by only ~1e-4
    for a 0.02 change of one region's ``a`` (FC of 200 samples), so the tolerance is
    0.02 (4% of the range (-0.5, 0); measured: <= 0.008), and every region that starts
    far (> 0.05) ends at least 4x closer. The FC correlation reaches the truth's level
    (1 with the realisation known) to 1e-3.
    """
    sim, a_true, G = hopf_subject()
    simulator = TorchSimulator(sim)
    subject = fc_torch(simulator.forward({"G": G, "a": a_true}, seed=7)).numpy()
    start = np.full(5, -0.12)
    t0 = time.perf_counter()
    fit = fit_fc(
        sim,
        subject,
        {"G": G, "a": start},
        fit=["a"],
        steps=50,
        lr=0.1,
        lr_decay=0.98,
        seed=7,
        fc_mse=10.0,
        bounds={"a": (-0.5, 0.0)},
    )
    elapsed = time.perf_counter() - t0
    err = np.abs(fit.params["a"] - a_true)
    assert fit.loss_history.shape == (50,)
    assert fit.loss < 0.05 * fit.loss_history[0], (fit.loss, fit.loss_history[0])
    assert np.all(err <= 0.02), (fit.params["a"], a_true)
    far = np.abs(start - a_true) > 0.05
    assert np.all(err[far] <= 0.25 * np.abs(start - a_true)[far]), err
    assert fit.fc_corr > 1 - 1e-3
    assert np.all((fit.params["a"] > -0.5) & (fit.params["a"] < 0.0))

    print(f"fit: {elapsed:.1f} s, |a - a_true| = {np.round(err, 4)}, r = {fit.fc_corr:.6f}")


def test_errors_name_the_problem():
    sim = Simulation(
        "mpr", connectome=small_connectome(), duration_ms=0.1, dtype="float64", monitors=(TemporalAverage(DT_MPR),)
    )
    simulator = TorchSimulator(sim)
    with pytest.raises(KeyError, match="valid parameters: tau, eta"):
        simulator.forward({"etta": -4.0})
    with pytest.raises(ValueError, match="one value per node"):
        simulator.forward({"eta": torch.zeros(3)})
    fc = np.eye(4)
    with pytest.raises(ValueError, match="strictly inside its range"):
        fit_fc(sim, fc, {"eta": -7.0}, fit=["eta"], steps=1)
    with pytest.raises(KeyError, match="need a starting value"):
        fit_fc(sim, fc, {"G": 0.5}, fit=["eta"], steps=1)
    with pytest.raises(ValueError, match=r"\(node, node\) = \(4, 4\)"):
        fit_fc(sim, np.eye(3), {"eta": -4.0}, fit=["eta"], steps=1)


def test_torch_math_keeps_numbers_as_numbers():
    """Factories evaluate constants (``f(math.pi)``) with the shim: numbers stay numbers."""
    assert TORCH_MATH.exp(1.0) == np.exp(1.0) and isinstance(TORCH_MATH.exp(1.0), float)
    assert torch.equal(TORCH_MATH.tanh(torch.tensor([0.5])), torch.tanh(torch.tensor([0.5])))
    with pytest.raises(AttributeError, match="no torch counterpart"):
        TORCH_MATH.gamma
