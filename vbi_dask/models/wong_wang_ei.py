"""Wong-Wang excitatory/inhibitory model (Deco et al. 2014, TVB's ReducedWongWangExcInh).

    x_e = W_e I_o + w_p J_N S_e - J_i S_i + J_N c_S_e
    x_i = W_i I_o + J_N S_e - S_i + lambda J_N c_S_e
    H_k(x) = (a_k x - b_k) / (1 - exp(-d_k (a_k x - b_k)))       (Hz)
    dS_e/dt = -S_e / tau_e + (1 - S_e) gamma_e H_e(x_e)
    dS_i/dt = -S_i / tau_i + gamma_i H_i(x_i)

``c_S_e = G sum_j w_ij S_e,j(t - d_ij)``. Time in ms (gamma in 1/ms per Hz of rate, as in
the paper's 0.641/1000). Defaults from Deco et al. (2014), Table 1; J_i is the local
inhibitory weight the paper tunes for feedback inhibition control.

References
----------
Deco, Ponce-Alvarez, Hagmann, Romani, Mantini, Corbetta (2014). How local
excitation-inhibition ratio impacts the whole brain dynamics. J. Neurosci. 34:7886-7898.
"""

from ._spec import Equations, ModelSpec, Param, State, no_jit
from .wong_wang import rate_function


def equations(f, jit=no_jit):
    one = f(1.0)
    rate = rate_function(f, jit)

    def drift(
        S_e,
        S_i,
        c_S_e,
        a_e,
        b_e,
        d_e,
        gamma_e,
        tau_e,
        w_p,
        J_N,
        W_e,
        a_i,
        b_i,
        d_i,
        gamma_i,
        tau_i,
        J_i,
        W_i,
        I_o,
        lamda,
    ):
        x_e = W_e * I_o + w_p * J_N * S_e - J_i * S_i + J_N * c_S_e
        x_i = W_i * I_o + J_N * S_e - S_i + lamda * J_N * c_S_e
        dS_e = -S_e / tau_e + (one - S_e) * gamma_e * rate(x_e, a_e, b_e, d_e)
        dS_i = -S_i / tau_i + gamma_i * rate(x_i, a_i, b_i, d_i)
        return dS_e, dS_i

    def efferent(S_e):
        return (S_e,)

    def observe(S_e, S_i):
        return S_e, S_i

    return Equations(drift, efferent, observe)


WONG_WANG_EI = ModelSpec(
    name="wong_wang_ei",
    states=(
        State("S_e", (0.0, 0.2), "", "excitatory NMDA gating", bounds=(0.0, 1.0), noise=0.001),
        State("S_i", (0.0, 0.2), "", "inhibitory GABA gating", bounds=(0.0, 1.0), noise=0.001),
    ),
    params=(
        Param("a_e", 310.0, (0.0, 500.0), "1/nC", "excitatory input-output slope"),
        Param("b_e", 125.0, (0.0, 200.0), "Hz", "excitatory threshold"),
        Param("d_e", 0.160, (0.05, 0.3), "s", "excitatory curvature"),
        Param("gamma_e", 0.641 / 1000, (0.0, 0.001), "1/ms", "excitatory kinetic parameter"),
        Param("tau_e", 100.0, (50.0, 150.0), "ms", "NMDA decay time"),
        Param("w_p", 1.4, (0.0, 2.0), "", "local excitatory recurrence"),
        Param("J_N", 0.15, (0.001, 0.5), "nA", "excitatory synaptic coupling"),
        Param("W_e", 1.0, (0.0, 2.0), "", "external input scaling onto E"),
        Param("a_i", 615.0, (0.0, 1000.0), "1/nC", "inhibitory input-output slope"),
        Param("b_i", 177.0, (0.0, 200.0), "Hz", "inhibitory threshold"),
        Param("d_i", 0.087, (0.03, 0.2), "s", "inhibitory curvature"),
        Param("gamma_i", 1.0 / 1000, (0.0, 0.002), "1/ms", "inhibitory kinetic parameter"),
        Param("tau_i", 10.0, (5.0, 100.0), "ms", "GABA decay time"),
        Param("J_i", 1.0, (0.001, 2.0), "nA", "local inhibitory coupling"),
        Param("W_i", 0.7, (0.0, 1.0), "", "external input scaling onto I"),
        Param("I_o", 0.382, (0.0, 1.0), "nA", "external input"),
        Param("lamda", 0.0, (0.0, 1.0), "", "long-range feedforward inhibition"),
    ),
    equations=equations,
    coupled=("S_e",),
    observed=("S_e", "S_i"),
    coupling="linear",
    G=Param("G", 2.0, (0.0, 5.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Deco et al. (2014) J. Neurosci. 34:7886",
    doc=__doc__,
)
