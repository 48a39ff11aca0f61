"""Stuart-Landau oscillator: the normal form of a supercritical Hopf bifurcation.

    dz/dt = (a + i omega) z - (1 + i beta) |z|^2 z + c,   z = x + i y

Above the bifurcation (a > 0) every node settles on a limit cycle of amplitude sqrt(a),
rotating at omega - beta a. Both x and y are coupled linearly:
``c_x = G sum_j w_ij x_j(t - d_ij)`` (same for y). Time in ms; the default omega is a
10 Hz (alpha) rotation.

References
----------
Kuramoto (1984). Chemical Oscillations, Waves, and Turbulence. Springer.
Selivanov et al. (2012). Adaptive synchronization in delay-coupled networks of
Stuart-Landau oscillators. Phys. Rev. E 85:016201.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    def drift(x, y, c_x, c_y, a, omega, beta):
        rho2 = x * x + y * y
        dx = a * x - omega * y - rho2 * (x - beta * y) + c_x
        dy = a * y + omega * x - rho2 * (y + beta * x) + c_y
        return dx, dy

    def efferent(x, y):
        return x, y

    def observe(x, y):
        return x, y

    return Equations(drift, efferent, observe)


STUART_LANDAU = ModelSpec(
    name="stuart_landau",
    states=(
        State("x", (-0.5, 0.5), "", "real part", noise=0.001),
        State("y", (-0.5, 0.5), "", "imaginary part", noise=0.001),
    ),
    params=(
        Param("a", 0.25, (-1.0, 1.0), "1/ms", "bifurcation parameter (limit cycle for a > 0)"),
        Param("omega", 2 * math.pi * 0.01, (0.0, 2 * math.pi * 0.1), "rad/ms", "angular frequency"),
        Param("beta", 0.0, (-1.0, 1.0), "", "nonlinear frequency shift (shear)"),
    ),
    equations=equations,
    coupled=("x", "y"),
    observed=("x", "y"),
    coupling="linear",
    G=Param("G", 0.01, (0.0, 0.1), "1/ms", "global coupling strength"),
    dt_ms=0.1,
    reference="Kuramoto (1984) Chemical Oscillations, Waves, and Turbulence",
    doc=__doc__,
)
