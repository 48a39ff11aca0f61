"""Wilson-Cowan excitatory/inhibitory rate model (The Virtual Brain's formulation).

    tau_e dE/dt = -E + (k_e - r_e E) S_e(alpha_e (c_ee E - c_ei I + P - theta_e + c_E))
    tau_i dI/dt = -I + (k_i - r_i I) S_i(alpha_i (c_ie E - c_ii I + Q - theta_i))
    S_x(u) = c_x / (1 + exp(-a_x (u - b_x)))

Long-range input ``c_E = G sum_j w_ij E_j(t - d_ij)``. Time in ms. Defaults: TVB's
WilsonCowan (Sanz-Leon et al. 2015), after Wilson & Cowan (1972) Fig. 5.

References
----------
Wilson, Cowan (1972). Excitatory and inhibitory interactions in localized populations of
model neurons. Biophys. J. 12:1-24.
Sanz-Leon, Knock, Spiegler, Jirsa (2015). Mathematical framework for large-scale brain
network modeling in The Virtual Brain. NeuroImage 111:385-430.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    one = f(1.0)

    @jit
    def sigmoid(u, c, a, b):
        return c / (one + math.exp(-a * (u - b)))

    def drift(
        E,
        I,
        c_E,
        c_ee,
        c_ei,
        c_ie,
        c_ii,
        tau_e,
        tau_i,
        a_e,
        b_e,
        c_e,
        theta_e,
        a_i,
        b_i,
        c_i,
        theta_i,
        r_e,
        r_i,
        k_e,
        k_i,
        P,
        Q,
        alpha_e,
        alpha_i,
    ):
        x_e = alpha_e * (c_ee * E - c_ei * I + P - theta_e + c_E)
        x_i = alpha_i * (c_ie * E - c_ii * I + Q - theta_i)
        dE = (-E + (k_e - r_e * E) * sigmoid(x_e, c_e, a_e, b_e)) / tau_e
        dI = (-I + (k_i - r_i * I) * sigmoid(x_i, c_i, a_i, b_i)) / tau_i
        return dE, dI

    def efferent(E):
        return (E,)

    def observe(E, I):
        return E, I

    return Equations(drift, efferent, observe)


WILSON_COWAN = ModelSpec(
    name="wilson_cowan",
    states=(
        State("E", (0.0, 0.2), "", "excitatory activity (fraction active)", bounds=(0.0, 1.0), noise=0.001),
        State("I", (0.0, 0.2), "", "inhibitory activity (fraction active)", bounds=(0.0, 1.0), noise=0.001),
    ),
    params=(
        Param("c_ee", 12.0, (11.0, 16.0), "", "E -> E coupling"),
        Param("c_ei", 4.0, (2.0, 15.0), "", "I -> E coupling"),
        Param("c_ie", 13.0, (2.0, 22.0), "", "E -> I coupling"),
        Param("c_ii", 11.0, (2.0, 15.0), "", "I -> I coupling"),
        Param("tau_e", 10.0, (0.5, 150.0), "ms", "excitatory time constant"),
        Param("tau_i", 10.0, (0.5, 150.0), "ms", "inhibitory time constant"),
        Param("a_e", 1.2, (0.0, 1.4), "", "excitatory sigmoid slope"),
        Param("b_e", 2.8, (1.4, 6.0), "", "excitatory sigmoid position"),
        Param("c_e", 1.0, (1.0, 20.0), "", "excitatory sigmoid maximum"),
        Param("theta_e", 0.0, (0.0, 60.0), "", "excitatory threshold"),
        Param("a_i", 1.0, (0.0, 2.0), "", "inhibitory sigmoid slope"),
        Param("b_i", 4.0, (2.0, 6.0), "", "inhibitory sigmoid position"),
        Param("c_i", 1.0, (1.0, 20.0), "", "inhibitory sigmoid maximum"),
        Param("theta_i", 0.0, (0.0, 60.0), "", "inhibitory threshold"),
        Param("r_e", 1.0, (0.5, 2.0), "ms", "excitatory refractory period"),
        Param("r_i", 1.0, (0.5, 2.0), "ms", "inhibitory refractory period"),
        Param("k_e", 1.0, (0.5, 2.0), "", "maximum excitatory response"),
        Param("k_i", 1.0, (0.5, 2.0), "", "maximum inhibitory response"),
        Param("P", 0.0, (-5.0, 5.0), "", "external input to E"),
        Param("Q", 0.0, (-5.0, 5.0), "", "external input to I"),
        Param("alpha_e", 1.0, (0.0, 10.0), "", "excitatory input gain"),
        Param("alpha_i", 1.0, (0.0, 10.0), "", "inhibitory input gain"),
    ),
    equations=equations,
    coupled=("E",),
    observed=("E", "I"),
    coupling="linear",
    G=Param("G", 0.5, (0.0, 3.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Wilson, Cowan (1972) Biophys. J. 12:1-24; TVB WilsonCowan defaults",
    doc=__doc__,
)
