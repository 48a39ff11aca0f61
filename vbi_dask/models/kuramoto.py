"""Kuramoto phase oscillators.

    dtheta_i/dt = omega_i + G sum_j w_ij sin(theta_j(t - d_ij) - theta_i)

With all-to-all weights 1/N and Lorentzian natural frequencies of half-width gamma, the
incoherent state loses stability at G_c = 2 gamma and the order parameter
|<exp(i theta)>| grows to 1 as G increases. Time in ms; omega is per region.

References
----------
Kuramoto (1975). Self-entrainment of a population of coupled non-linear oscillators.
Lecture Notes in Physics 39:420-422.
Strogatz (2000). From Kuramoto to Crawford. Physica D 143:1-20.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    def drift(theta, c_theta, omega):
        return (omega + c_theta,)

    def efferent(theta):
        return (theta,)

    def observe(theta):
        return math.sin(theta), math.cos(theta)

    return Equations(drift, efferent, observe)


KURAMOTO = ModelSpec(
    name="kuramoto",
    states=(State("theta", (0.0, 2 * math.pi), "rad", "phase", noise=0.0),),
    params=(Param("omega", 2 * math.pi * 0.01, (0.0, 2 * math.pi * 0.1), "rad/ms", "natural frequency (per region)"),),
    equations=equations,
    coupled=("theta",),
    observed=("sin_theta", "cos_theta"),
    coupling="sine",
    G=Param("G", 0.1, (0.0, 1.0), "1/ms", "global coupling strength"),
    dt_ms=0.1,
    reference="Kuramoto (1975); Strogatz (2000) Physica D 143:1-20",
    doc=__doc__,
)
