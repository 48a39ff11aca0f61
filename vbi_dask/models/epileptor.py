"""Epileptor: the six-dimensional phenomenological model of seizure dynamics.

    dx1/dt = y1 - f1(x1, x2, z) - z + Iext
    dy1/dt = c - d x1^2 - y1
    dz/dt  = r (s (x1 - x0) + h(z) - z - c_x1)
    dx2/dt = -y2 + x2 - x2^3 + Iext2 + 2 g - 0.3 (z - 3.5)
    dy2/dt = (-y2 + f2(x2)) / tau
    dg/dt  = -0.01 (g - 0.1 x1)

    f1 = a x1^3 - b x1^2                    if x1 < 0
       = -(slope - x2 + 0.6 (z - 4)^2) x1   otherwise
    f2 = 0 if x2 < -0.25 else aa (x2 + 0.25);   h(z) = -0.1 z^7 if z < 0 else 0

Coupling ``c_x1 = G sum_j w_ij (x1_j(t - d_ij) - x1_i)`` on the slow variable (as in
TVB's Epileptor with Ks = -G); observables: the LFP-like ``x2 - x1`` and ``z``.
Defaults from Jirsa et al. (2014) as in TVB. Time is the model's dimensionless time.

References
----------
Jirsa, Stacey, Quilichini, Ivanov, Bernard (2014). On the nature of seizure dynamics.
Brain 137:2210-2230.
"""

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    zero, two = f(0.0), f(2.0)
    k03, k06, k4, k35, k025, k01, k001 = f(0.3), f(0.6), f(4.0), f(3.5), f(0.25), f(0.1), f(0.01)

    def drift(x1, y1, z, x2, y2, g, c_x1, a, b, c, d, r, s, x0, Iext, slope, Iext2, tau, aa):
        zm4 = z - k4
        f1 = (a * x1 * x1 - b * x1) * x1 if x1 < zero else -(slope - x2 + k06 * zm4 * zm4) * x1
        dx1 = y1 - f1 - z + Iext
        dy1 = c - d * x1 * x1 - y1
        z2 = z * z
        h = -k01 * z2 * z2 * z2 * z if z < zero else zero
        dz = r * (s * (x1 - x0) + h - z - c_x1)
        dx2 = -y2 + x2 - x2 * x2 * x2 + Iext2 + two * g - k03 * (z - k35)
        f2 = zero if x2 < -k025 else aa * (x2 + k025)
        dy2 = (-y2 + f2) / tau
        dg = -k001 * (g - k01 * x1)
        return dx1, dy1, dz, dx2, dy2, dg

    def efferent(x1):
        return (x1,)

    def observe(x1, z, x2):
        return x2 - x1, z

    return Equations(drift, efferent, observe)


EPILEPTOR = ModelSpec(
    name="epileptor",
    states=(
        State("x1", (-2.0, 1.0), "", "fast population: membrane potential"),
        State("y1", (-20.0, 2.0), "", "fast population: recovery"),
        State("z", (2.0, 5.0), "", "slow permittivity"),
        State("x2", (-2.0, 0.0), "", "spike-wave population: potential"),
        State("y2", (0.0, 2.0), "", "spike-wave population: recovery"),
        State("g", (-1.0, 1.0), "", "low-pass filter of x1"),
    ),
    params=(
        Param("a", 1.0, (0.5, 1.5), "", "cubic coefficient of f1"),
        Param("b", 3.0, (2.0, 4.0), "", "square coefficient of f1"),
        Param("c", 1.0, (0.5, 1.5), "", "additive coefficient of y1"),
        Param("d", 5.0, (4.0, 6.0), "", "square coefficient of y1"),
        Param("r", 0.00035, (0.0001, 0.001), "", "time-scale separation of z"),
        Param("s", 4.0, (3.0, 5.0), "", "slope of the z nullcline"),
        Param("x0", -1.6, (-5.0, -1.0), "", "excitability (per region)"),
        Param("Iext", 3.1, (2.5, 3.5), "", "input current of population 1"),
        Param("slope", 0.0, (-1.0, 1.0), "", "slope of f1 for x1 >= 0"),
        Param("Iext2", 0.45, (0.3, 0.6), "", "input current of population 2"),
        Param("tau", 10.0, (5.0, 20.0), "", "time constant of y2"),
        Param("aa", 6.0, (4.0, 8.0), "", "slope of f2"),
    ),
    equations=equations,
    coupled=("x1",),
    observed=("lfp", "z"),
    coupling="difference",
    G=Param("G", 0.0, (0.0, 5.0), "", "global coupling strength (-Ks)"),
    dt_ms=0.05,
    reference="Jirsa et al. (2014) Brain 137:2210",
    doc=__doc__,
)
