"""Delayed coupling: the block design against the float64 NumPy reference, and invariance.

A 7-node network whose tract lengths give delays of 0 to 40 steps exactly (1 mm per step),
so rows mix long edges (summed once per block, ahead) and short ones (summed at every
evaluation), delay 0 and the maximum included, and 150 steps cross several blocks. The
reference (``tests/reference.py``) keeps a Python list of past states and sums edge by
edge: nothing of the kernel's ring, blocks or edge split.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr

from tests.reference import reference_run
from vbi_dask import simulation as simulation_module
from vbi_dask.connectome import Connectome
from vbi_dask.kernels.edges import MAX_BLOCK, N_PARTIAL, choose_block, plan_edges
from vbi_dask.monitors import Bold, TemporalAverage
from vbi_dask.simulation import Simulation

N_STEPS = 150
DT = 0.01
SPEED = 100.0  # mm/ms: 1 mm of tract per step of 0.01 ms


def delayed_connectome() -> Connectome:
    rng = np.random.default_rng(3)
    n = 7
    w = rng.uniform(0.1, 1.0, (n, n))
    w[rng.uniform(size=(n, n)) < 0.2] = 0.0  # some missing edges
    np.fill_diagonal(w, 0.0)
    lengths = rng.integers(1, 41, (n, n)).astype(float)
    lengths = np.triu(lengths, 1) + np.triu(lengths, 1).T
    lengths[0, 1] = lengths[1, 0] = 0.0  # delay 0 (e.g. a zero-length tract)
    lengths[2, 5] = lengths[5, 2] = 40.0  # the maximum
    w[0, 1] = w[1, 0] = w[2, 5] = w[5, 2] = 0.7
    return Connectome(weights=w, tract_lengths_mm=lengths, name="delayed7")


def delayed_simulation(dtype: str = "float64", integrator: str = "heun", **kw) -> Simulation:
    return Simulation(
        "mpr",
        connectome=delayed_connectome(),
        dt_ms=DT,
        duration_ms=N_STEPS * DT,
        integrator=integrator,
        speed_mm_per_ms=SPEED,
        monitors=(TemporalAverage(5 * DT), Bold(tr_ms=50 * DT, dt_ms=5 * DT)),
        noise={"r": 0.01, "v": 0.02},
        dtype=dtype,
        **kw,
    )


PARAMS = {"G": np.array([0.3, 0.6, 0.9]), "eta": -4.6}


def test_the_network_has_long_and_short_edges_with_delay_zero_and_the_maximum():
    sim = delayed_simulation()
    plan = sim._graph
    assert plan.delays.min() == 0 and plan.delays.max() == 40
    assert plan.n_long > 0 and plan.n_short > 0, (plan.block, plan.n_long, plan.n_short)


@pytest.mark.parametrize("integrator", ["heun", "euler"])
@pytest.mark.parametrize("block", [None, 1, 7, MAX_BLOCK])
def test_delayed_coupling_equals_numpy_reference(monkeypatch, integrator, block):
    """Automatic and forced block lengths: 1 (every edge but the delay-0 one is long), 7,
    and the largest (most edges short, one block spans many steps)."""
    monkeypatch.setattr(simulation_module, "plan_edges", functools.partial(plan_edges, block=block))
    sim = delayed_simulation(integrator=integrator)
    if block is not None:
        assert sim._graph.block == block
    got = sim.run_arrays(PARAMS, n_sims=3, seed=5, first_sim=2, threads=1)
    want = reference_run(sim, PARAMS, 3, seed=5, first_sim=2)
    tol = 1e3 * N_STEPS * np.finfo(np.float64).eps  # summation order differs from the reference's
    for key in ("sampled", "bold"):
        assert got[key].shape == want[key].shape
        scale = np.maximum(1.0, np.abs(want[key]))
        err = np.max(np.abs(got[key] - want[key]) / scale)
        assert err <= tol, (key, err)
    # the delays matter: the same network without them (the reference again) is far off
    fast = Simulation(
        "mpr",
        connectome=sim.connectome,
        dt_ms=DT,
        duration_ms=N_STEPS * DT,
        integrator=integrator,
        monitors=sim.monitors,
        noise=sim.noise,
        dtype="float64",
    )
    undelayed = reference_run(fast, PARAMS, 3, seed=5, first_sim=2)["sampled"]
    assert np.max(np.abs(undelayed - want["sampled"])) > 1e3 * tol


def test_batch_chunk_and_thread_invariance_with_delays():
    """40 simulations at once, on 2 threads, in chunks of 16 + 17 + 7 (a padded block),
    and single simulations (the one-simulation shell): identical bits."""
    sim = delayed_simulation("float32")
    G = np.linspace(0.2, 1.0, 40)
    whole = sim.run_arrays({"G": G}, seed=9, threads=1)
    threaded = sim.run_arrays({"G": G}, seed=9, threads=2)
    chunks = [(0, 16), (16, 33), (33, 40)]
    parts = [sim.run_arrays({"G": xr.DataArray(G[a:b], dims="sim")}, seed=9, first_sim=a, threads=1) for a, b in chunks]
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(threaded[key], whole[key])
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts], axis=-1), whole[key])
        for k in (0, 21, 39):
            single = sim.run_arrays({"G": G[k : k + 1]}, seed=9, first_sim=k, threads=1)[key]
            np.testing.assert_array_equal(single, whole[key][..., k : k + 1])


def test_choose_block_minimises_the_cost_model():
    # all delays >= 100: the longest block, every edge long
    assert choose_block(np.full(50, 100)) == MAX_BLOCK
    # ten edges of delay 0 cost 2 each whatever T; the rest decide
    assert choose_block(np.r_[np.zeros(10, int), np.full(50, 100)]) == MAX_BLOCK
    # delays 3: T = 3 makes every edge long (cost 60 * 4/3 = 80) against short ones (120)
    assert choose_block(np.full(60, 3)) == 3
    # half at 2, half at 40: T = 2 (60 * 3/2 = 90) beats T = 40 (30 * 41/40 + 60 = 90.75)
    assert choose_block(np.r_[np.full(30, 2), np.full(30, 40)]) == 2


def test_plan_orders_rows_long_first_and_wraps_slots():
    w = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0], [6.0, 7.0, 8.0, 0.0]])
    d = np.array([[0, 9, 1, 12], [3, 0, 0, 0], [0, 0, 0, 0], [10, 2, 11, 0]])
    plan = plan_edges(w, d, block=5)
    assert plan.block == 5 and plan.ring == 12 + 2
    rows = [slice(int(a), int(b)) for a, b in zip(plan.indptr[:-1], plan.indptr[1:])]
    splits = [int(s) - int(a) for s, a in zip(plan.split, plan.indptr[:-1])]
    # row 0: long edges (delay >= 5) to 1 and 3, then the short one to 2
    assert plan.indices[rows[0]].tolist() == [1, 3, 2] and splits[0] == 2
    assert plan.weights[rows[0]].tolist() == [1.0, 3.0, 2.0]
    assert plan.indices[rows[1]].tolist() == [0, 3] and splits[1] == 0  # delays 3 and 0: short
    assert plan.indices[rows[2]].tolist() == [] and splits[2] == 0
    assert plan.indices[rows[3]].tolist() == [0, 2, 1] and splits[3] == 2
    np.testing.assert_array_equal(plan.back, plan.ring - plan.delays)
    assert plan.n_long == 4 and plan.n_short == 4
    free = plan_edges(w)
    np.testing.assert_array_equal(free.split, free.indptr[:-1])  # without delays every edge is short
    assert N_PARTIAL == 4
    with pytest.raises(ValueError, match="block must be >= 1"):
        plan_edges(w, d, block=0)
