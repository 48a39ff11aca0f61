"""Jansen-Rit: pyramidal cells with excitatory and inhibitory interneuron feedback.

    dy0/dt = y3                 dy3/dt = A a S(y1 - y2) - 2 a y3 - a^2 y0
    dy1/dt = y4                 dy4/dt = A a (mu + a2 J S(a1 J y0) + c_S_psp) - 2 a y4 - a^2 y1
    dy2/dt = y5                 dy5/dt = B b a4 J S(a3 J y0) - 2 b y5 - b^2 y2
    S(u) = 2 e0 / (1 + exp(r (v0 - u)))

Long-range input ``c_S_psp = G sum_j w_ij S(y1_j - y2_j)(t - d_ij)`` (TVB's sigmoidal
Jansen-Rit coupling); the observable is the pyramidal PSP ``y1 - y2`` (mV). Noise enters
``y4`` (the fluctuating input rate). Time in ms, rates in 1/ms.

Defaults: Jansen & Rit (1995), Table 1 (A = 3.25 mV, B = 22 mV, 1/a = 10 ms,
1/b = 20 ms, e0 = 2.5 Hz, v0 = 6 mV, r = 0.56 /mV, C = J = 135), with mean input
mu = 220 Hz, inside the 120-320 Hz range of the original paper: the alpha rhythm.

References
----------
Jansen, Rit (1995). Electroencephalogram and visual evoked potential generation in a
mathematical model of coupled cortical columns. Biol. Cybern. 73:357-366.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    one, two = f(1.0), f(2.0)

    @jit
    def sigmoid(u, e0, v0, r):
        return two * e0 / (one + math.exp(r * (v0 - u)))

    def drift(y0, y1, y2, y3, y4, y5, c_S_psp, A, B, a, b, e0, v0, r, J, a1, a2, a3, a4, mu):
        dy3 = A * a * sigmoid(y1 - y2, e0, v0, r) - two * a * y3 - a * a * y0
        dy4 = A * a * (mu + a2 * J * sigmoid(a1 * J * y0, e0, v0, r) + c_S_psp) - two * a * y4 - a * a * y1
        dy5 = B * b * a4 * J * sigmoid(a3 * J * y0, e0, v0, r) - two * b * y5 - b * b * y2
        return y3, y4, y5, dy3, dy4, dy5

    def efferent(y1, y2, e0, v0, r):
        return (sigmoid(y1 - y2, e0, v0, r),)

    def observe(y1, y2):
        return (y1 - y2,)

    return Equations(drift, efferent, observe)


JANSEN_RIT = ModelSpec(
    name="jansen_rit",
    states=(
        State("y0", (0.0, 0.2), "mV", "PSP of the pyramidal population"),
        State("y1", (5.0, 20.0), "mV", "excitatory PSP onto pyramidal cells"),
        State("y2", (5.0, 20.0), "mV", "inhibitory PSP onto pyramidal cells"),
        State("y3", (-0.5, 0.5), "mV/ms", "derivative of y0"),
        State("y4", (-0.5, 0.5), "mV/ms", "derivative of y1", noise=0.05),
        State("y5", (-0.5, 0.5), "mV/ms", "derivative of y2"),
    ),
    params=(
        Param("A", 3.25, (2.6, 9.75), "mV", "maximum excitatory PSP amplitude"),
        Param("B", 22.0, (17.6, 110.0), "mV", "maximum inhibitory PSP amplitude"),
        Param("a", 0.1, (0.05, 0.15), "1/ms", "excitatory rate constant"),
        Param("b", 0.05, (0.025, 0.075), "1/ms", "inhibitory rate constant"),
        Param("e0", 0.0025, (0.0016, 0.0030), "1/ms", "half of the maximum firing rate"),
        Param("v0", 6.0, (3.12, 6.0), "mV", "potential at half-maximum firing"),
        Param("r", 0.56, (0.28, 0.84), "1/mV", "sigmoid steepness"),
        Param("J", 135.0, (65.0, 1350.0), "", "average number of synapses (C)"),
        Param("a1", 1.0, (0.5, 1.5), "", "pyramidal -> excitatory interneuron fraction"),
        Param("a2", 0.8, (0.4, 1.2), "", "excitatory interneuron -> pyramidal fraction"),
        Param("a3", 0.25, (0.125, 0.375), "", "pyramidal -> inhibitory interneuron fraction"),
        Param("a4", 0.25, (0.125, 0.375), "", "inhibitory interneuron -> pyramidal fraction"),
        Param("mu", 0.22, (0.12, 0.32), "1/ms", "mean extrinsic input rate"),
    ),
    equations=equations,
    coupled=("S_psp",),
    observed=("psp",),
    coupling="linear",
    G=Param("G", 1.0, (0.0, 10.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Jansen, Rit (1995) Biol. Cybern. 73:357-366",
    doc=__doc__,
)
