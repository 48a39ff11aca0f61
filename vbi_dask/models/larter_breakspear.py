"""Larter-Breakspear: a Morris-Lecar-type pyramidal population with inhibitory feedback.

    dV/dt = - (gCa + (1 - C) rNMDA aee QV + C rNMDA aee c_QV) mCa (V - VCa)
            - gK W (V - VK) - gL (V - VL)
            - (gNa mNa + (1 - C) aee QV + C aee c_QV) (V - VNa)
            - aie Z QZ + Iext
    dW/dt = phi (mK - W) / tau_K
    dZ/dt = b (ani Iext + aei V QV)

    m_ion = (1 + tanh((V - T_ion) / d_ion)) / 2     (ion = Ca, Na; mK with TK = 0)
    QV = (1 + tanh((V - VT) / d_V)) / 2,  QZ = (1 + tanh(Z / d_Z)) / 2

``V`` is the mean membrane potential of the pyramidal cells, ``W`` the fraction of open
potassium channels and ``Z`` the mean potential of the inhibitory interneurons; all are
non-dimensional. A node sends its firing rate ``QV`` and receives
``c_QV = G sum_j w_ij QV_j(t - d_ij)``. ``C`` shares the excitatory (AMPA and NMDA) drive
between the node's own rate, weight ``1 - C``, and the long-range input, weight ``C``:
this is TVB's ``dfun`` with TVB's ``HyperbolicTangent`` coupling of ``V`` at
a = QV_max / 2, midpoint = VT, sigma = d_V, whose pre-summation function is ``QV``. With
rows of ``w`` summing to one (``Connectome.normalised("rows")``) and G = 1, ``c_QV`` is the
mean rate ``<QV>`` over a node's afferents of Breakspear et al. (2003), Eq. 7.

Defaults are TVB's ``LarterBreakspear`` (``tvb/simulator/models/larter_breakspear.py``),
the parameters of Breakspear et al. (2003) as used by Honey et al. (2007) and Alstott
et al. (2009), except d_Z = 0.7 (TVB's default; the papers set d_Z = d_V). The prior
ranges are TVB's parameter domains (VK's, whose upper end TVB gives as +1, is kept
negative here). Along d_V an isolated node (C = 0) has a stable focus below d_V of about
0.55, oscillates above it and becomes chaotic above about 0.59 (Breakspear et al. 2003);
the default d_V = 0.65 is in the chaotic range. TVB integrates the equations with time in
ms. A second attractor lies at infinity: once V falls far enough, QV ~ 0, Z grows
linearly and V runs away with it. TVB's initial ranges ([-1.5, 1.5] for each state) send
about half of the nodes there, so the initial ranges here are the extents of the default
attractor. G, its range and the noise amplitude on V are vbi-dask's choices.

TVB's six further parameters are fixed at TVB's defaults. Three are redundant (no data
can tell them from the others, so a posterior over them would be a ridge): ``ane`` enters only as ``ane Iext`` and
``ani Iext``, ``QZ_max`` only as ``aie QZ_max`` and ``QV_max`` (with TVB's coupling
amplitude a = QV_max / 2) only as ``aee QV_max`` and ``aei QV_max``; TVB's values are
reproduced with Iext = ane Iext_TVB, ani = ani_TVB / ane, aie = aie_TVB QZ_max,
aee = aee_TVB QV_max and aei = aei_TVB QV_max. ``t_scale`` = 1 rescales time (set dt and
durations instead); the thresholds TK and ZT are 0 (TVB's domain of TK is [0, 1e-4];
Breakspear et al. 2003 set both to 0).

References
----------
Larter, Speelman, Worth (1999). A coupled ordinary differential equation lattice model
for the simulation of epileptic seizures. Chaos 9:795-804.
Breakspear, Terry, Friston (2003). Modulation of excitatory synaptic coupling facilitates
synchronization and complex dynamics in a biophysical model of neuronal dynamics.
Network: Comput. Neural Syst. 14:703-732.
"""

import math

from ._spec import Equations, ModelSpec, Param, State, no_jit


def equations(f, jit=no_jit):
    zero, one, half = f(0.0), f(1.0), f(0.5)

    @jit
    def activation(x, threshold, width):
        return half * (one + math.tanh((x - threshold) / width))

    def drift(
        V,
        W,
        Z,
        c_QV,
        gCa,
        gK,
        gL,
        phi,
        gNa,
        TCa,
        TNa,
        VCa,
        VK,
        VL,
        VNa,
        d_K,
        tau_K,
        d_Na,
        d_Ca,
        aei,
        aie,
        b,
        C,
        ani,
        aee,
        Iext,
        rNMDA,
        VT,
        d_V,
        d_Z,
    ):
        QV = activation(V, VT, d_V)
        ampa = (one - C) * aee * QV + C * aee * c_QV  # excitatory drive: own rate and afferent rates
        dV = (
            -(gCa + rNMDA * ampa) * activation(V, TCa, d_Ca) * (V - VCa)
            - gK * W * (V - VK)
            - gL * (V - VL)
            - (gNa * activation(V, TNa, d_Na) + ampa) * (V - VNa)
            - aie * Z * activation(Z, zero, d_Z)
            + Iext
        )
        dW = phi * (activation(V, zero, d_K) - W) / tau_K
        dZ = b * (ani * Iext + aei * V * QV)
        return dV, dW, dZ

    def efferent(V, VT, d_V):
        return (activation(V, VT, d_V),)

    def observe(V, W, Z):
        return V, W, Z

    return Equations(drift, efferent, observe)


LARTER_BREAKSPEAR = ModelSpec(
    name="larter_breakspear",
    states=(
        State("V", (-0.5, 0.35), "", "mean membrane potential of the pyramidal cells", noise=0.01),
        State("W", (0.1, 0.7), "", "fraction of open potassium channels"),
        State("Z", (0.1, 0.23), "", "mean membrane potential of the inhibitory interneurons"),
    ),
    params=(
        Param("gCa", 1.1, (0.9, 1.5), "", "conductance of the Ca++ channels"),
        Param("gK", 2.0, (1.95, 2.05), "", "conductance of the K+ channels"),
        Param("gL", 0.5, (0.45, 0.55), "", "conductance of the leak channels"),
        Param("phi", 0.7, (0.3, 0.9), "", "temperature scaling factor of the K+ relaxation"),
        Param("gNa", 6.7, (0.0, 10.0), "", "conductance of the Na+ channels"),
        Param("TCa", -0.01, (-0.02, -0.01), "", "threshold of the Ca++ channels"),
        Param("TNa", 0.3, (0.25, 0.3), "", "threshold of the Na+ channels"),
        Param("VCa", 1.0, (0.9, 1.1), "", "Ca++ Nernst potential"),
        Param("VK", -0.7, (-0.8, -0.6), "", "K+ Nernst potential"),
        Param("VL", -0.5, (-0.7, -0.4), "", "leak Nernst potential"),
        Param("VNa", 0.53, (0.51, 0.55), "", "Na+ Nernst potential"),
        Param("d_K", 0.3, (0.1, 0.4), "", "spread of the K+ channel thresholds"),
        Param("tau_K", 1.0, (1.0, 10.0), "ms", "K+ relaxation time"),
        Param("d_Na", 0.15, (0.1, 0.2), "", "spread of the Na+ channel thresholds"),
        Param("d_Ca", 0.15, (0.1, 0.2), "", "spread of the Ca++ channel thresholds"),
        Param("aei", 2.0, (0.1, 2.0), "", "excitatory -> inhibitory synaptic strength"),
        Param("aie", 2.0, (0.5, 2.0), "", "inhibitory -> excitatory synaptic strength"),
        Param("b", 0.1, (0.0001, 1.0), "", "time-scale factor of the inhibitory population"),
        Param("C", 0.1, (0.0, 1.0), "", "share of the excitatory drive from other nodes (1 - C: own)"),
        Param("ani", 0.4, (0.3, 0.5), "", "non-specific -> inhibitory synaptic strength"),
        Param("aee", 0.4, (0.0, 0.6), "", "excitatory -> excitatory synaptic strength"),
        Param("Iext", 0.3, (0.165, 0.3), "", "non-specific (subcortical) input (per region)"),
        Param("rNMDA", 0.25, (0.2, 0.3), "", "ratio of NMDA to AMPA receptors"),
        Param("VT", 0.0, (0.0, 0.7), "", "mean firing threshold of the pyramidal cells"),
        Param("d_V", 0.65, (0.49, 0.7), "", "spread of the pyramidal firing thresholds"),
        Param("d_Z", 0.7, (0.001, 0.75), "", "spread of the inhibitory firing thresholds"),
    ),
    equations=equations,
    coupled=("QV",),
    observed=("V", "W", "Z"),
    coupling="linear",
    G=Param("G", 1.0, (0.0, 2.0), "", "global coupling strength"),
    dt_ms=0.1,
    reference="Breakspear, Terry, Friston (2003) Network 14:703-732; TVB's LarterBreakspear",
    doc=__doc__,
)
