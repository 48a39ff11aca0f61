"""Two-dimensional reduced Epileptor, the node model of virtual epileptic patients.

    dx/dt = 1 - x^3 - 2 x^2 - z + I1
    dz/dt = (4 (x - x0) - z - c_x) / tau0,    c_x = G sum_j w_ij (x_j(t - d_ij) - x_i)

``x0`` is the regional excitability (the quantity inferred in VEP/VBI: regions with
x0 > -2.05 seize autonomously); ``z`` the slow permittivity variable. Time is the
model's dimensionless time. Defaults: Proix et al. (2014) with tau0 as in Hashemi et al.
(2020) so that seizures unfold within a few hundred time units.

References
----------
Proix, Bartolomei, Chauvel, Bernard, Jirsa (2014). Permittivity coupling across brain
regions determines seizure recruitment in partial epilepsy. J. Neurosci. 34:15009-15021.
Hashemi et al. (2020). The Bayesian Virtual Epileptic Patient. NeuroImage 217:116839.
"""

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    one, two, four = f(1.0), f(2.0), f(4.0)

    def drift(x, z, c_x, x0, I1, tau0):
        dx = one - x * x * x - two * x * x - z + I1
        dz = (four * (x - x0) - z - c_x) / tau0
        return dx, dz

    def efferent(x):
        return (x,)

    def observe(x, z):
        return x, z

    return Equations(drift, efferent, observe)


EPILEPTOR2D = ModelSpec(
    name="epileptor2d",
    states=(
        State("x", (-2.0, -1.5), "", "fast activity (LFP-like)", noise=0.0),
        State("z", (3.0, 4.0), "", "slow permittivity", noise=0.0),
    ),
    params=(
        Param("x0", -2.5, (-5.0, -1.0), "", "excitability (per region)"),
        Param("I1", 3.1, (2.5, 3.5), "", "input current"),
        Param("tau0", 10.0, (5.0, 100.0), "", "time scale of z"),
    ),
    equations=equations,
    coupled=("x",),
    observed=("x", "z"),
    coupling="difference",
    G=Param("G", 1.0, (0.0, 5.0), "", "global coupling strength (K)"),
    dt_ms=0.05,
    time_unit="ms",
    reference="Proix et al. (2014) J. Neurosci. 34:15009",
    doc=__doc__,
)
