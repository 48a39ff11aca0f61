"""Montbrió-Pazó-Roxin (MPR): exact mean field of quadratic integrate-and-fire neurons.

    tau dr/dt = Delta / (pi tau) + 2 r v
    tau dv/dt = v^2 + eta + J tau r + I + c_r - (pi tau r)^2

``r`` is the population firing rate (1/ms), ``v`` the mean membrane potential
(dimensionless), ``c_r = G sum_j w_ij r_j(t - d_ij)`` the long-range input.

Defaults: tau, eta, J and Delta are those of VBI's whole-brain MPR studies (Rabuffo et al.
2021; Hashemi et al. 2024/2025), in the bistable regime of a single node. G = 0.5:
VBI's backends disagree (0.5, 0.72, 0.733); 0.5 is the middle of the uniform prior
(0, 1) used for G with max-normalised weights, so the default network sits inside the
prior rather than on its edge. One value, used everywhere in vbi-dask.

References
----------
Montbrió, Pazó, Roxin (2015). Macroscopic description for networks of spiking neurons.
Phys. Rev. X 5:021028.
Rabuffo, Fousek, Bernard, Jirsa (2021). Neuronal cascades shape whole-brain functional
dynamics at rest. eNeuro 8(5).
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    pi, two = f(math.pi), f(2.0)

    def drift(r, v, c_r, tau, eta, J, Delta, I):
        dr = (Delta / (pi * tau) + two * r * v) / tau
        pr = pi * tau * r
        dv = (v * v + eta + J * tau * r + I + c_r - pr * pr) / tau
        return dr, dv

    def efferent(r):
        return (r,)

    def observe(r, v):
        return r, v

    return Equations(drift, efferent, observe)


MPR = ModelSpec(
    name="mpr",
    states=(
        State("r", (0.0, 0.4), "1/ms", "population firing rate", bounds=(0.0, None), noise=math.sqrt(2 * 0.037)),
        State("v", (-2.0, 0.0), "", "mean membrane potential", noise=math.sqrt(4 * 0.037)),
    ),
    params=(
        Param("tau", 1.0, (0.5, 2.0), "ms", "membrane time constant"),
        Param("eta", -4.6, (-6.5, -3.5), "", "mean neuronal excitability (per region)"),
        Param("J", 14.5, (5.0, 20.0), "", "synaptic weight"),
        Param("Delta", 0.7, (0.1, 2.0), "", "half-width of the excitability distribution"),
        Param("I", 0.0, (-2.0, 2.0), "", "external current"),
    ),
    equations=equations,
    coupled=("r",),
    observed=("r", "v"),
    coupling="linear",
    G=Param("G", 0.5, (0.0, 1.5), "", "global coupling strength"),
    dt_ms=0.01,
    reference="Montbrió, Pazó, Roxin (2015) Phys. Rev. X 5:021028",
    doc=__doc__,
)
