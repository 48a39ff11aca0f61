"""Equations are bound to states, coupling inputs and parameters by name.

A spec refuses, when it is built, an equation naming something that does not exist, a
drift omitting a state or a coupling input, and a parameter no equation takes; an
equation listing its arguments in any order receives them by name (kernel and
reference alike).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.models.test_contract import N_STEPS, noisy, tiny_connectome
from tests.reference import reference_run
from vbi_dask.models import MODELS, Equations, no_jit
from vbi_dask.models.mpr import MPR, equations as mpr_equations
from vbi_dask.monitors import Bold, TemporalAverage
from vbi_dask.simulation import Simulation


def _mpr_reordered(f, jit=no_jit):
    """MPR's own equations behind signatures in another order than the spec's (and an
    efferent taking a parameter it does not use)."""
    eq = mpr_equations(f, jit)
    drift_in_spec_order = jit(eq.drift)

    def drift(I, Delta, c_r, v, J, tau, r, eta):
        return drift_in_spec_order(r, v, c_r, tau, eta, J, Delta, I)

    def efferent(eta, r):
        return (r,)

    def observe(v, r):
        return r, v

    return Equations(drift, efferent, observe)


def _factory(drift, efferent=lambda r: (r,), observe=lambda r, v: (r, v)):
    return lambda f, jit=no_jit: Equations(drift, efferent, observe)


def test_registered_drifts_name_every_state_and_coupling_input():
    for model in MODELS.values():
        assert model.coupling_inputs == tuple(f"c_{k}" for k in model.coupled)


def test_drift_in_another_order_receives_arguments_by_name():
    reordered = dataclasses.replace(MPR, name="mpr_reordered", equations=_mpr_reordered)
    dt = MPR.dt_ms
    runs = {}
    for model in (MPR, reordered):
        sim = Simulation(
            model,
            connectome=tiny_connectome(),
            dt_ms=dt,
            duration_ms=N_STEPS * dt,
            noise=noisy(MPR),
            speed_mm_per_ms=4.0 / (3 * dt),
            monitors=(TemporalAverage(4 * dt), Bold(tr_ms=20 * dt, dt_ms=5 * dt)),
            dtype="float64",
        )
        params = {"G": np.linspace(0.2, 0.6, 4), "eta": -4.0, "I": 0.3}
        runs[model.name] = (sim.run_arrays(params, n_sims=4, seed=5, threads=1), sim, params)
    (want, _, _), (got, sim, params) = runs["mpr"], runs["mpr_reordered"]
    for key in ("sampled", "bold"):
        np.testing.assert_array_equal(got[key], want[key])
    ref = reference_run(sim, params, 4, seed=5)  # calls the reordered equations by keyword
    np.testing.assert_allclose(got["sampled"], ref["sampled"], rtol=1e3 * N_STEPS * np.finfo(np.float64).eps)


def _drift_unknown(r, v, c_r, tau, eta, J, Delta, I, gain):
    return r, v


def _drift_missing_state(r, c_r, tau, eta, J, Delta, I):
    return r, r


def _drift_missing_input(r, v, tau, eta, J, Delta, I):
    return r, v


def _drift_without_I(r, v, c_r, tau, eta, J, Delta):
    return r, v


def _drift_star(r, v, c_r, *params):
    return r, v


def _drift(r, v, c_r, tau, eta, J, Delta, I):
    return r, v


@pytest.mark.parametrize(
    "equations, message",
    [
        (
            _factory(_drift_unknown),
            r"drift takes unknown argument\(s\) \['gain'\].*parameters \(tau, eta, J, Delta, I\)",
        ),
        (_factory(_drift_missing_state), r"drift must take every state and coupling input; missing \['v'\]"),
        (_factory(_drift_missing_input), r"drift must take every state and coupling input; missing \['c_r'\]"),
        (_factory(_drift, efferent=lambda r, c_r: (r,)), r"efferent takes unknown argument\(s\) \['c_r'\]"),
        (_factory(_drift, observe=lambda r, v, G: (r, v)), r"observe takes unknown argument\(s\) \['G'\]"),
        (_factory(_drift_without_I), r"parameter\(s\) \['I'\] are taken by none of drift, efferent, observe"),
        (_factory(_drift_star), r"drift must name its arguments"),
    ],
    ids=["unknown", "missing-state", "missing-input", "efferent-input", "observe-G", "unused-param", "star-args"],
)
def test_spec_refuses_equations_whose_names_do_not_match(equations, message):
    with pytest.raises(ValueError, match=f"model mpr: {message}"):
        dataclasses.replace(MPR, equations=equations)


def test_coupling_input_may_not_shadow_a_parameter():
    params = MPR.params + (dataclasses.replace(MPR.params[0], name="c_r"),)
    with pytest.raises(ValueError, match=r"duplicated names \['c_r'\]"):
        dataclasses.replace(MPR, params=params)
