"""Generic two-dimensional oscillator (TVB's Generic2dOscillator).

    dV/dt = d tau (alpha W - f V^3 + e V^2 + g V + gamma I + gamma c_V)
    dW/dt = d (a + b V + c V^2 - beta W) / tau

A FitzHugh-Nagumo-like normal form that covers excitable, bistable and oscillatory
regimes; with e = f = c = 0 it is linear, which the integrator order tests use.
``c_V = G sum_j w_ij V_j(t - d_ij)``. Defaults: TVB (Sanz-Leon et al. 2015), an excitable
configuration and TVB's parameter names. Time in ms.

References
----------
Sanz-Leon, Knock, Spiegler, Jirsa (2015). Mathematical framework for large-scale brain
network modeling in The Virtual Brain. NeuroImage 111:385-430.
"""

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(ftype, jit=no_jit):  # ``f`` is the cubic coefficient here
    def drift(V, W, c_V, tau, a, b, c, d, e, f, g, alpha, beta, gamma, I):
        V2 = V * V
        dV = d * tau * (alpha * W - f * V2 * V + e * V2 + g * V + gamma * I + gamma * c_V)
        dW = d * (a + b * V + c * V2 - beta * W) / tau
        return dV, dW

    def efferent(V):
        return (V,)

    def observe(V, W):
        return V, W

    return Equations(drift, efferent, observe)


GENERIC2D = ModelSpec(
    name="generic2d",
    states=(
        State("V", (-2.0, 4.0), "", "fast variable", noise=0.001),
        State("W", (-6.0, 6.0), "", "slow variable", noise=0.001),
    ),
    params=(
        Param("tau", 1.0, (1.0, 5.0), "", "time-scale separation"),
        Param("a", -2.0, (-5.0, 5.0), "", "W nullcline offset"),
        Param("b", -10.0, (-20.0, 15.0), "", "W nullcline slope"),
        Param("c", 0.0, (-10.0, 10.0), "", "W nullcline curvature"),
        Param("d", 0.02, (0.0001, 1.0), "1/ms", "overall time scale"),
        Param("e", 3.0, (-5.0, 5.0), "", "quadratic coefficient of V"),
        Param("f", 1.0, (-5.0, 5.0), "", "cubic coefficient of V"),
        Param("g", 0.0, (-5.0, 5.0), "", "linear coefficient of V"),
        Param("alpha", 1.0, (-5.0, 5.0), "", "W -> V coupling"),
        Param("beta", 1.0, (-5.0, 5.0), "", "W decay"),
        Param("gamma", 1.0, (-1.0, 1.0), "", "input gain"),
        Param("I", 0.0, (-5.0, 5.0), "", "external input"),
    ),
    equations=equations,
    coupled=("V",),
    observed=("V", "W"),
    coupling="linear",
    G=Param("G", 0.1, (0.0, 1.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Sanz-Leon et al. (2015) NeuroImage 111:385",
    doc=__doc__,
)
