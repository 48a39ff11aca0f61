"""Generic Hopf normal form of whole-brain BOLD dynamics (Deco et al. 2017).

    dx/dt = (a - x^2 - y^2) x - omega y + G sum_j w_ij (x_j - x_i)
    dy/dt = (a - x^2 - y^2) y + omega x + G sum_j w_ij (y_j - y_i)

The Stuart-Landau equations without shear (they are reused, not rewritten), diffusive
coupling, time in seconds: this model describes the slow (0.01-0.1 Hz) BOLD
fluctuations directly. Defaults: a = -0.02 (just below the bifurcation, the working
point of the paper), omega = 2 pi 0.05 rad/s, noise 0.02 (the paper's beta).

References
----------
Deco, Kringelbach, Jirsa, Ritter (2017). The dynamics of resting fluctuations in the
brain: metastability and its dynamical cortical core. Sci. Rep. 7:3095.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit
from .stuart_landau import equations as _stuart_landau


def equations(f, jit=no_jit):
    sl = _stuart_landau(f, jit)
    sl_drift = jit(sl.drift)
    zero = f(0.0)

    def drift(x, y, c_x, c_y, a, omega):
        return sl_drift(x, y, c_x, c_y, a, omega, zero)

    def efferent(x, y):
        return x, y

    def observe(x, y):
        return x, y

    return Equations(drift, efferent, observe)


HOPF = ModelSpec(
    name="hopf",
    states=(
        State("x", (-0.1, 0.1), "", "real part (BOLD-like signal)", noise=0.02),
        State("y", (-0.1, 0.1), "", "imaginary part", noise=0.02),
    ),
    params=(
        Param("a", -0.02, (-0.5, 0.5), "1/s", "bifurcation parameter (per region)"),
        Param("omega", 2 * math.pi * 0.05, (2 * math.pi * 0.01, 2 * math.pi * 0.1), "rad/s", "angular frequency"),
    ),
    equations=equations,
    coupled=("x", "y"),
    observed=("x", "y"),
    coupling="difference",
    G=Param("G", 0.5, (0.0, 3.0), "1/s", "global coupling strength"),
    dt_ms=10.0,
    time_unit="s",
    reference="Deco et al. (2017) Sci. Rep. 7:3095",
    doc=__doc__,
)
