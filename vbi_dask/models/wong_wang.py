"""Reduced Wong-Wang: one population of NMDA-gated synaptic activity.

    x = w J_N S + I_o + J_N c_S
    H(x) = (a x - b) / (1 - exp(-d (a x - b)))
    dS/dt = -S / tau_s + (1 - S) gamma H(x)

``S`` is the fraction of open NMDA channels, ``H`` the population rate (kHz),
``c_S = G sum_j w_ij S_j(t - d_ij)``. Time in ms. Defaults: Deco et al. (2013) as in TVB's
ReducedWongWang.

References
----------
Wong, Wang (2006). A recurrent network mechanism of time integration in perceptual
decisions. J. Neurosci. 26:1314-1328.
Deco, Ponce-Alvarez, Mantini, Romani, Hagmann, Corbetta (2013). Resting-state functional
connectivity emerges from structurally and dynamically shaped slow linear fluctuations.
J. Neurosci. 33:11239-11252.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def rate_function(f, jit=no_jit):
    """H(x) = (a x - b) / (1 - exp(-d (a x - b))), continuous at a x = b (limit 1/d)."""
    one, half, tiny = f(1.0), f(0.5), f(1e-6)

    @jit
    def rate(x, a, b, d):
        y = a * x - b
        small = abs(d * y) < tiny
        safe = y if not small else one
        h = safe / (one - math.exp(-d * safe))
        return h if not small else one / d + half * y

    return rate


def equations(f, jit=no_jit):
    one = f(1.0)
    rate = rate_function(f, jit)

    def drift(S, c_S, a, b, d, gamma, tau_s, w, J_N, I_o):
        x = w * J_N * S + I_o + J_N * c_S
        return (-S / tau_s + (one - S) * gamma * rate(x, a, b, d),)

    def efferent(S):
        return (S,)

    def observe(S):
        return (S,)

    return Equations(drift, efferent, observe)


WONG_WANG = ModelSpec(
    name="wong_wang",
    states=(State("S", (0.0, 1.0), "", "NMDA gating variable", bounds=(0.0, 1.0), noise=0.001),),
    params=(
        Param("a", 0.270, (0.0, 0.4), "1/nC", "input-output slope"),
        Param("b", 0.108, (0.0, 0.2), "kHz", "input-output threshold"),
        Param("d", 154.0, (100.0, 200.0), "ms", "input-output curvature"),
        Param("gamma", 0.641, (0.0, 1.0), "", "kinetic parameter"),
        Param("tau_s", 100.0, (50.0, 150.0), "ms", "NMDA decay time"),
        Param("w", 0.6, (0.0, 1.0), "", "local excitatory recurrence"),
        Param("J_N", 0.2609, (0.2609, 0.5), "nA", "synaptic coupling"),
        Param("I_o", 0.33, (0.0, 1.0), "nA", "external input"),
    ),
    equations=equations,
    coupled=("S",),
    observed=("S",),
    coupling="linear",
    G=Param("G", 0.5, (0.0, 2.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Deco et al. (2013) J. Neurosci. 33:11239",
    doc=__doc__,
)
