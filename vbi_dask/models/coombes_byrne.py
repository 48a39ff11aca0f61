"""Coombes-Byrne next-generation neural mass with synaptic conductance dynamics.

    dr/dt = Delta / pi + 2 V r - g r
    dV/dt = V^2 - pi^2 r^2 + eta + (v_syn - V) g + c_r
    dg/dt = alpha q
    dq/dt = alpha (k pi r - g - 2 q)

The exact (Ott-Antonsen) mean field of quadratic integrate-and-fire (theta) neurons
with Lorentzian-distributed excitabilities (centre eta, half-width Delta), coupled
through a conductance ``g`` with reversal potential ``v_syn`` that follows the
population rate through an alpha-function synapse (``(1 + d/dt / alpha)^2 g = k pi r``).
``r`` is the firing rate, ``V`` the mean membrane potential and
``c_r = G sum_j w_ij r_j(t - d_ij)`` the long-range input. With a conductance, the rate
equation has ``- g r`` (the centre z = V + i pi r of the Lorentzian flows as
dz/dt = z^2 - g z + eta + g v_syn + i Delta): this is TVB's ``dfun``, whose docstring
prints ``g r^2`` by mistake.

Defaults are TVB's ``CoombesByrne`` (``tvb/simulator/models/infinite_theta.py``):
Delta = 0.5, alpha = 0.95, v_syn = -10, k = 1, eta = 20, where a single node has one
equilibrium, an unstable focus, and oscillates; with Delta = 1 the equilibrium is stable.
Time in TVB's unit (ms). G, its range and the noise amplitudes are vbi-dask's choices.

References
----------
Coombes, Byrne (2019). Next generation neural mass models. In Nonlinear Dynamics in
Computational Neuroscience (Corinto, Torcini, eds.), PoliTO Springer Series, pp. 1-16.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    pi, two = f(math.pi), f(2.0)

    def drift(r, V, g, q, c_r, Delta, alpha, v_syn, k, eta):
        dr = Delta / pi + two * V * r - g * r
        dV = V * V - pi * pi * r * r + eta + (v_syn - V) * g + c_r
        dg = alpha * q
        dq = alpha * (k * pi * r - g - two * q)
        return dr, dV, dg, dq

    def efferent(r):
        return (r,)

    def observe(r, V):
        return r, V

    return Equations(drift, efferent, observe)


COOMBES_BYRNE = ModelSpec(
    name="coombes_byrne",
    states=(
        State("r", (0.0, 2.0), "", "population firing rate", bounds=(0.0, None), noise=0.01),
        State("V", (-2.0, 2.0), "", "mean membrane potential", noise=0.01),
        State("g", (1.0, 2.0), "", "synaptic conductance"),
        State("q", (-0.5, 0.7), "", "conductance rate of change / alpha"),
    ),
    params=(
        Param("Delta", 0.5, (0.1, 2.0), "", "half-width of the excitability distribution"),
        Param("alpha", 0.95, (0.2, 5.0), "1/ms", "rate of the alpha-function synapse"),
        Param("v_syn", -10.0, (-20.0, 0.0), "", "synaptic reversal potential"),
        Param("k", 1.0, (0.0, 5.0), "", "local synaptic coupling strength"),
        Param("eta", 20.0, (-10.0, 30.0), "", "centre of the excitability distribution (per region)"),
    ),
    equations=equations,
    coupled=("r",),
    observed=("r", "V"),
    coupling="linear",
    G=Param("G", 0.5, (0.0, 1.5), "", "global coupling strength"),
    dt_ms=0.01,
    reference="Coombes & Byrne (2019) Next generation neural mass models; TVB's CoombesByrne",
    doc=__doc__,
)
