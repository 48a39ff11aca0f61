"""An independent float64 NumPy reference of a Simulation (tiny networks only).

Written from the equations, not from the kernel: dense coupling with explicit per-edge
delays from a Python history list, the model's scalar equations called once per node and
simulation in plain Python, the same counter-based noise stream, and its own
Balloon-Windkessel integration. Slow by design.
"""

from __future__ import annotations

import math

import numpy as np

from vbi_dask._params import param_array
from vbi_dask.kernels import rng
from vbi_dask.kernels.bold import BALLOON_DEFAULTS
from vbi_dask.kernels.coupling import COUPLINGS
from vbi_dask.models import no_jit
from vbi_dask.monitors import Raw
from vbi_dask.simulation import Simulation


def _balloon_numpy(s, f, v, q, z, kappa, gamma, tau, alpha, e0):
    v_out = v ** (1 / alpha)
    ds = z - kappa * s - gamma * (f - 1)
    dv = (f - v_out) / tau
    dq = (f * (1 - (1 - e0) ** (1 / f)) / e0 - v_out * q / v) / tau
    return ds, s, dv, dq


def reference_run(sim: Simulation, params: dict, n_sims: int, seed: int, first_sim: int = 0) -> dict:
    model = sim.model
    eq = model.equations(np.float64, no_jit)
    kind = COUPLINGS[sim.coupling]
    c = sim.connectome
    N, S, K = c.n_nodes, len(model.states), len(model.coupled)
    params = dict(params)
    amplitude = params.pop("stimulus_amplitude", None)
    P = param_array(model, params, N, n_sims, n_sims, np.float64)  # (param, node, sim)
    stimulus = sim.stimulus
    if stimulus is not None:  # input(t) (state, node, sim) = amplitude x weight x pattern(t)
        amp = np.broadcast_to(
            np.asarray(stimulus.amplitude if amplitude is None else amplitude, dtype=np.float64), (n_sims,)
        )
        s_stim = model.state_names.index(stimulus.state)
        space = stimulus.spatial(N)[:, None] * amp[None, :]

    def stim(t_ms):
        out = np.zeros((S, N, n_sims))
        if stimulus is not None:
            out[s_stim] = space * float(stimulus.pattern(np.array([t_ms]))[0])
        return out

    n_model = len(model.params)
    W = np.asarray(c.weights, dtype=np.float64)
    rowsum = W.sum(axis=1)
    Wk = np.stack([W * W if name in model.weights_squared else W for name in model.coupled])  # (K, N, N)
    tables = model.table_values(np.float64)
    D = c.delay_steps(sim.speed_mm_per_ms, sim.dt_ms) if sim.speed_mm_per_ms else np.zeros((N, N), int)
    dt = sim.dt_ms / model.ms_per_time_unit
    sigma = np.array([sim.noise[s] for s in model.state_names])
    x = sim.initial_conditions(n_sims, seed=seed, first_sim=first_sim)

    def named(i, b, state, cpl=None):
        """Every value an equation may take at node i, simulation b, by name."""
        values = dict(zip(model.state_names, state[:, i, b]))
        values.update(zip(model.param_names, P[:n_model, i, b]))
        values["tables"] = tables
        if cpl is not None:
            values.update(zip(model.coupling_inputs, cpl[:, i, b]))
        return values

    def call(fn, values):  # by keyword: the argument order is the function's business
        return fn(**{name: values[name] for name in _signature(fn)})

    def pre_values(state):  # (K, n_pre, N, B)
        out = np.empty((K, kind.n_pre, N, n_sims))
        eff = np.empty((K, N, n_sims))
        for i in range(N):
            for b in range(n_sims):
                e = call(eq.efferent, named(i, b, state))
                for k in range(K):
                    eff[k, i, b] = e[k]
                    out[k, :, i, b] = kind.pre(e[k])
        return out, eff

    history = []  # pre values of accepted states, by step

    def coupling(step, current_pre, eff):
        cpl = np.empty((K, N, n_sims))
        for i in range(N):
            sums = np.zeros((K, kind.n_pre, n_sims))
            for j in range(N):
                if W[i, j] == 0:
                    continue
                src = step - D[i, j]
                value = current_pre if src == step else history[max(src, 0)]
                sums += Wk[:, i, j, None, None] * value[:, :, j, :]
            for k in range(K):
                for b in range(n_sims):
                    cpl[k, i, b] = kind.post(P[n_model, i, b], rowsum[i], eff[k, i, b], *sums[k, :, b])
        return cpl

    def drift(state, cpl):
        out = np.empty_like(state)
        for i in range(N):
            for b in range(n_sims):
                out[:, i, b] = call(eq.drift, named(i, b, state, cpl))
        return out

    def clamp(state):
        for s, st in enumerate(model.states):
            lo, hi = st.bounds
            if lo is not None:
                state[s] = np.maximum(state[s], lo)
            if hi is not None:
                state[s] = np.minimum(state[s], hi)
        return state

    def observe(state):
        out = np.empty((len(model.observed), N, n_sims))
        for i in range(N):
            for b in range(n_sims):
                out[:, i, b] = call(eq.observe, named(i, b, state))
        return out

    sims = first_sim + np.arange(n_sims)
    n_steps, n_cut = sim.n_steps, sim.n_cut
    sampled, bold = sim.sampled_monitor, sim.bold_monitor
    decim = int(round(sampled.period_ms / sim.dt_ms)) if sampled else 1
    samples, window = [], []
    if bold:
        bdec = int(round(bold.dt_ms / sim.dt_ms))
        trdec = int(round(bold.tr_ms / bold.dt_ms))
        cst = {**BALLOON_DEFAULTS, **bold.constants}
        bs, bf, bv, bq = np.zeros((N, n_sims)), np.ones((N, n_sims)), np.ones((N, n_sims)), np.ones((N, n_sims))
        bacc, bold_samples = np.zeros((N, n_sims)), []
        bidx = (bold.variable and model.observed.index(bold.variable)) or 0
        q_cut = n_cut // (bdec * trdec)
    for n in range(n_steps):
        pre_n, eff_n = pre_values(x)
        history.append(pre_n)
        t0_ms, t1_ms = n * sim.dt_ms, (n + 1) * sim.dt_ms
        f1 = drift(x, coupling(n, pre_n, eff_n)) + stim(t0_ms)
        noise = np.zeros_like(x)
        for s in range(S):
            if sigma[s] > 0:
                z = rng.normals_numpy(seed, n, np.arange(N)[:, None], sims[None, :], rng.STREAM_NOISE, s // 4)
                noise[s] = sigma[s] * math.sqrt(dt) * z[..., s % 4].astype(np.float64)
        if sim.integrator == "euler":
            x = clamp(x + dt * f1 + noise)
        elif sim.integrator == "heun":
            xt = clamp(x + dt * f1 + noise)
            pre_t, eff_t = pre_values(xt)
            f2 = drift(xt, coupling(n + 1, pre_t, eff_t)) + stim(t1_ms)
            x = clamp(x + 0.5 * dt * (f1 + f2) + noise)
        else:  # rk4
            k1 = f1
            x2 = x + 0.5 * dt * k1
            mid = 0.5 * (stim(t0_ms) + stim(t1_ms))  # the pattern between two steps: linear
            k2 = drift(x2, coupling(n, *pre_values(x2))) + mid
            x3 = x + 0.5 * dt * k2
            k3 = drift(x3, coupling(n, *pre_values(x3))) + mid
            x4 = x + dt * k3
            k4 = drift(x4, coupling(n, *pre_values(x4))) + stim(t1_ms)
            x = clamp(x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
        obs = observe(x)
        if sampled and n >= n_cut:
            window.append(obs)
            if len(window) == decim:
                samples.append(window[-1] if isinstance(sampled, Raw) else np.mean(window, axis=0))
                window = []
        if bold:
            bacc += obs[bidx]
            if (n + 1) % bdec == 0:
                m = (n + 1) // bdec
                z = bacc / bdec * bold.scale
                bacc[:] = 0
                h = bold.dt_ms / 1000.0
                args = (cst["kappa"], cst["gamma"], cst["tau"], cst["alpha"], cst["E0"])
                d0 = _balloon_numpy(bs, bf, bv, bq, z, *args)
                s1, f1_, v1, q1 = (a + h * d for a, d in zip((bs, bf, bv, bq), d0))
                d1 = _balloon_numpy(s1, f1_, v1, q1, z, *args)
                bs, bf, bv, bq = (a + 0.5 * h * (u + w) for a, u, w in zip((bs, bf, bv, bq), d0, d1))
                if m % trdec == 0 and m // trdec > q_cut:
                    e0, v0 = cst["E0"], cst["V0"]
                    bold_samples.append(v0 * (7 * e0 * (1 - bq) + 2 * (1 - bq / bv) + (2 * e0 - 0.2) * (1 - bv)))
    out = {"state": x}
    if sampled:
        out["sampled"] = np.stack(samples)  # (time, obs, node, sim)
    if bold:
        out["bold"] = np.stack(bold_samples)  # (time, node, sim)
    return out


def _signature(fn):
    import inspect

    return list(inspect.signature(fn).parameters)
