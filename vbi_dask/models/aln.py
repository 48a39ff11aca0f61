"""ALN: the adaptive linear-nonlinear cascade mean field of AdEx neurons (neurolib's ``aln``).

One node is an excitatory (E) and an inhibitory (I) population of adaptive exponential
integrate-and-fire neurons. Each population's rate is read from precomputed tables of the
Fokker-Planck steady state, r = Phi(mu, sigma) (kHz), with mean membrane potential
V(mu, sigma) and input-filter time constant tau_mu(mu, sigma) (bilinear interpolation on
the (mu, sigma) grid, clamped at its edges, as neurolib's ``fast_interp2_opt``):

    r_e = Phi(mufe - IA / C, sigmae_f),        r_i = Phi(mufi, sigma_i)
    dmufe/dt = (Jee seem + Jei seim + mue_ext_mean + sigma_ou xi_e - mufe) / tau_mu(mufe - IA / C, sigmae_f)
    dmufi/dt = (Jie siem + Jii siim + mui_ext_mean + sigma_ou xi_i - mufi) / tau_mu(mufi, sigma_i)
    dIA/dt = (a (V(mufe - IA / C, sigmae_f) - EA) - IA + tauA b r_e) / tauA
    ds_xym/dt = ((1 - s_xym) z1_xy - s_xym) / tau_sy                     (xy = ee, ei, ie, ii)
    ds_xyv/dt = ((1 - s_xym)^2 z2_xy + (z2_xy - 2 tau_sy (z1_xy + 1)) s_xyv) / tau_sy^2
    dxi_e/dt = -xi_e / tau_ou (+ unit noise),  dxi_i/dt = -xi_i / tau_ou (+ unit noise)
    drd_e/dt = (r_e - rd_e) / de,  drd_i/dt = (r_i - rd_i) / di
    dsigmae_f/dt = (sigma_e - sigmae_f) / tau_sigma_f

with the synaptic drives (rates in kHz; c_xy = cxy tau_sy / |J_xy| from the PSC amplitudes
cee, cei, cie, cii, and c'_gl = c_gl tau_se / Jee)

    z1_ee = c_ee Ke rd_e + c'_gl c_r_e,      z2_ee = c_ee^2 Ke rd_e + c'_gl^2 c_r_e_sq
    z1_ie = c_ie Ke rd_e,                    z1_ei = c_ei Ki rd_i,   z1_ii = c_ii Ki rd_i  (z2: c^2)
    sigma_e^2 = 2 Jee^2 seev tau_se taum / ((1 + z1_ee) taum + tau_se)
                + 2 Jei^2 seiv tau_si taum / ((1 + z1_ei) taum + tau_si) + sigmae_ext^2
    sigma_i^2 = the same with Jie, siev, z1_ie and Jii, siiv, z1_ii, + sigmai_ext^2

and the network input of two coupled signals, both the E rate ``r_e`` of the other areas
(kHz) summed with the connectome's weights and with their squares:
``c_r_e = G sum_j w_ij r_e_j(t - d_ij)``, ``c_r_e_sq = G sum_j w_ij^2 r_e_j(t - d_ij)``,
G = neurolib's Ke_gl (default 250). These are neurolib's ``timeIntegration.py`` (Cakan &
Obermayer 2020, Methods; Augustin et al. 2017), with three differences forced by a
scalar drift whose only delays are the connectome's:

- Local delays: neurolib feeds each population's own rates back after fixed delays
  (de = 4 ms for E, di = 2 ms for I). Here ``rd_e`` and ``rd_i`` are the rates passed
  through an exponential delay kernel of the same mean (neurolib's ``distr_delay`` form,
  with tau_de = de, tau_di = di instead of its 1 ms): fixed points are unchanged; the
  oscillations of the E-I loop are slightly smoothed and shifted in frequency (21 vs
  20 Hz at the limit cycle tested). neurolib's self-delay (the diagonal of its delay
  matrix) is this local delay; its inter-areal delays are rounded up by one step.
- sigma_e is relaxed (``sigmae_f``, tau_sigma_f = 0.1 ms, about one step) rather than
  instantaneous, because the rate sent to other nodes must be a function of the node's
  state while sigma_e depends on the network input. Fixed points are unchanged. (neurolib's
  ``filter_sigma`` with the table's tau_sigma cannot be used: it is 0 on most of the grid.)
  Stability needs dt <= 0.2 ms (neurolib's dt is 0.1 ms).
- Input noise: neurolib's OU inputs mue_ou = mue_ext_mean + sigma_ou xi_e (likewise I)
  are written with unit OU states xi_e, xi_i whose additive state noise must stay 1
  (the default): sigma_ou is then an ordinary parameter. Noise-free runs set it to 0.
  neurolib's time-dependent inputs (ext_exc_current, ext_*_rate) are not modelled; use a
  stimulus on mufe/mufi instead.

Every parameter of neurolib's ALN is a parameter here (defaults from its
``loadDefaultParams.py``), except the single-neuron parameters the tables were computed
for (C = 200 pF, gL = 10 nS, so taum = 20 ms; EL = -65 mV, DeltaT = 1.5 mV, VT = -50 mV,
Vr = -70 mV, Vs = -40 mV, Tref = 1.5 ms), which cannot change without recomputing them.
Rates are in kHz inside the equations (the coupled ``r_e``) and in Hz in the outputs
(``rates_exc``, ``rates_inh``, as neurolib's). The tables are neurolib's
``quantities_cascade.h5`` (MIT, see ``vbi_dask/data/README.md``), passed to the kernels as
an input (global memory on a GPU: at 269 KB in float32 they exceed CUDA's 64 KB constant
bank). Prior ranges are vbi-dask's choices.

References
----------
Augustin, Ladenbauer, Baumann, Obermayer (2017). Low-dimensional spike rate models
derived from networks of adaptive integrate-and-fire neurons: comparison and
implementation. PLoS Comput. Biol. 13:e1005545.
Cakan, Obermayer (2020). Biophysically grounded mean-field models of neural populations
under electrical stimulation. PLoS Comput. Biol. 16:e1007822.
Cakan, Jajcay, Obermayer (2021). neurolib: a simulation framework for whole-brain neural
mass modeling. Cognitive Computation, doi:10.1007/s12559-021-09931-9.
"""

import math
from functools import lru_cache
from importlib import resources

import numpy as np

from ._spec import Equations, ModelSpec, Param, State, no_jit

# the tables' neurons (see the module docstring)
C_PF, GL_NS = 200.0, 10.0  # membrane capacitance and leak conductance
TAU_SIGMA_F_MS = 0.1  # relaxation of sigma_e (one step at neurolib's dt)

TABLE_FILE = "aln_quantities_cascade.npz"


@lru_cache(maxsize=None)
def transfer_tables(ftype: type = np.float64) -> dict:
    """neurolib's precomputed ALN quantities on the (mu, sigma) grid, as ``ftype``:
    ``mu_vals`` (mV/ms), ``sigma_vals`` (mV/sqrt(ms)), ``r_ss`` (kHz), ``V_mean_ss`` (mV),
    ``tau_mu_exp`` and ``tau_sigma_exp`` (ms), the tables indexed ``[mu, sigma]``."""
    with resources.files("vbi_dask.data").joinpath(TABLE_FILE).open("rb") as fh, np.load(fh) as data:
        return {k: np.ascontiguousarray(data[k], dtype=ftype) for k in data.files}


TABLE_ROWS = ("r_ss", "V_mean_ss", "tau_mu_exp")  # the rows of the kernels' input ``tables``


@lru_cache(maxsize=None)
def tables(ftype: type = np.float64) -> np.ndarray:
    """The kernels' input: r (kHz), V (mV) and tau_mu (ms), stacked as (3, n_mu, n_sigma)
    (269 KB in float32: global memory on CUDA, whose constant memory holds 64 KB); built
    once per float type and shared: read it, do not write it."""
    found = transfer_tables(ftype)
    return np.stack([found[name] for name in TABLE_ROWS])


def equations(f, jit=no_jit):
    grid = transfer_tables(np.dtype(f).type)  # only the grid's geometry is frozen here
    mu_vals, sigma_vals = grid["mu_vals"], grid["sigma_vals"]
    n_mu, n_sigma = len(mu_vals), len(sigma_vals)
    mu0, sigma0 = f(mu_vals[0]), f(sigma_vals[0])
    dmu = f((float(mu_vals[-1]) - float(mu_vals[0])) / (n_mu - 1))
    dsigma = f((float(sigma_vals[-1]) - float(sigma_vals[0])) / (n_sigma - 1))
    mu_top, sigma_top = f(n_mu - 1), f(n_sigma - 1)
    zero, one, two, kilo = f(0.0), f(1.0), f(2.0), f(1000.0)
    C, taum, tau_sigma_f = f(C_PF), f(C_PF / GL_NS), f(TAU_SIGMA_F_MS)

    @jit
    def grid_position(x, x0, dx, top):
        """Cell index and fraction of x on a uniform grid, clamped at its edges (NaN -> 0)."""
        u = (x - x0) / dx
        if not u > zero:
            u = zero
        if u > top:
            u = top
        k = int(math.floor(u))
        if k > int(top) - 1:  # (not min(): see kernels._codegen.at_least)
            k = int(top) - 1
        return k, u - f(k)

    @jit
    def bilinear(tab, q, i, j, w00, w01, w10, w11):
        return w00 * tab[q, i, j] + w01 * tab[q, i, j + 1] + w10 * tab[q, i + 1, j] + w11 * tab[q, i + 1, j + 1]

    @jit
    def transfer(tables, mu, sigma):
        """Bilinear r (kHz), V (mV) and tau_mu (ms) at (mu, sigma)."""
        i, fm = grid_position(mu, mu0, dmu, mu_top)
        j, fs = grid_position(sigma, sigma0, dsigma, sigma_top)
        w00, w01 = (one - fm) * (one - fs), (one - fm) * fs
        w10, w11 = fm * (one - fs), fm * fs
        r = bilinear(tables, 0, i, j, w00, w01, w10, w11)
        V = bilinear(tables, 1, i, j, w00, w01, w10, w11)
        tau = bilinear(tables, 2, i, j, w00, w01, w10, w11)
        return r, V, tau

    @jit
    def sigma_input(J_x, s_xv, z1_x, tau_x, J_y, s_yv, z1_y, tau_y, sigma_ext):
        """Input standard deviation from the synaptic variances (mV / sqrt(ms))."""
        var = (
            two * J_x * J_x * s_xv * tau_x * taum / ((one + z1_x) * taum + tau_x)
            + two * J_y * J_y * s_yv * tau_y * taum / ((one + z1_y) * taum + tau_y)
            + sigma_ext * sigma_ext
        )
        return math.sqrt(zero if zero > var else var)  # max(var, 0) (see kernels._codegen.at_least)

    @jit
    def synaptic_scale(c_psc, tau_s, J):
        """neurolib's c_xy = c_psc tau_s / |J| (ms): a spike raises mu by the PSC amplitude."""
        return c_psc * tau_s / abs(J)

    @jit
    def mean_drive(s_m, z1, tau_s):
        return ((one - s_m) * z1 - s_m) / tau_s

    @jit
    def variance_drive(s_m, s_v, z1, z2, tau_s):
        return ((one - s_m) * (one - s_m) * z2 + (z2 - two * tau_s * (z1 + one)) * s_v) / (tau_s * tau_s)

    def drift(
        mufe,
        mufi,
        IA,
        seem,
        seim,
        siem,
        siim,
        seev,
        seiv,
        siev,
        siiv,
        xi_e,
        xi_i,
        rd_e,
        rd_i,
        sigmae_f,
        c_r_e,
        c_r_e_sq,
        tables,
        mue_ext_mean,
        mui_ext_mean,
        a,
        b,
        tauA,
        EA,
        Jee_max,
        Jei_max,
        Jie_max,
        Jii_max,
        cee,
        cei,
        cie,
        cii,
        Ke,
        Ki,
        tau_se,
        tau_si,
        de,
        di,
        c_gl,
        sigma_ou,
        tau_ou,
        sigmae_ext,
        sigmai_ext,
    ):
        c_ee = synaptic_scale(cee, tau_se, Jee_max)
        c_ie = synaptic_scale(cie, tau_se, Jie_max)
        c_ei = synaptic_scale(cei, tau_si, Jei_max)
        c_ii = synaptic_scale(cii, tau_si, Jii_max)
        cgl = synaptic_scale(c_gl, tau_se, Jee_max)
        z1ee = c_ee * Ke * rd_e + cgl * c_r_e
        z2ee = c_ee * c_ee * Ke * rd_e + cgl * cgl * c_r_e_sq
        z1ie, z2ie = c_ie * Ke * rd_e, c_ie * c_ie * Ke * rd_e
        z1ei, z2ei = c_ei * Ki * rd_i, c_ei * c_ei * Ki * rd_i
        z1ii, z2ii = c_ii * Ki * rd_i, c_ii * c_ii * Ki * rd_i
        sigma_e = sigma_input(Jee_max, seev, z1ee, tau_se, Jei_max, seiv, z1ei, tau_si, sigmae_ext)
        sigma_i = sigma_input(Jie_max, siev, z1ie, tau_se, Jii_max, siiv, z1ii, tau_si, sigmai_ext)
        r_e, V_e, tau_e = transfer(tables, mufe - IA / C, sigmae_f)
        r_i, _, tau_i = transfer(tables, mufi, sigma_i)
        mue = Jee_max * seem + Jei_max * seim + mue_ext_mean + sigma_ou * xi_e
        mui = Jie_max * siem + Jii_max * siim + mui_ext_mean + sigma_ou * xi_i
        return (
            (mue - mufe) / tau_e,
            (mui - mufi) / tau_i,
            (a * (V_e - EA) - IA + tauA * b * r_e) / tauA,
            mean_drive(seem, z1ee, tau_se),
            mean_drive(seim, z1ei, tau_si),
            mean_drive(siem, z1ie, tau_se),
            mean_drive(siim, z1ii, tau_si),
            variance_drive(seem, seev, z1ee, z2ee, tau_se),
            variance_drive(seim, seiv, z1ei, z2ei, tau_si),
            variance_drive(siem, siev, z1ie, z2ie, tau_se),
            variance_drive(siim, siiv, z1ii, z2ii, tau_si),
            -xi_e / tau_ou,
            -xi_i / tau_ou,
            (r_e - rd_e) / de,
            (r_i - rd_i) / di,
            (sigma_e - sigmae_f) / tau_sigma_f,
        )

    def efferent(mufe, IA, sigmae_f, tables):
        r_e, _, _ = transfer(tables, mufe - IA / C, sigmae_f)
        return r_e, r_e  # summed with w_ij and with w_ij^2

    def observe(
        mufe, mufi, IA, siev, siiv, rd_e, rd_i, sigmae_f, tables, Jie_max, Jii_max, cie, cii, Ke, Ki, tau_se, tau_si,
        sigmai_ext,
    ):  # fmt: skip
        r_e, _, _ = transfer(tables, mufe - IA / C, sigmae_f)
        z1ie = synaptic_scale(cie, tau_se, Jie_max) * Ke * rd_e
        z1ii = synaptic_scale(cii, tau_si, Jii_max) * Ki * rd_i
        sigma_i = sigma_input(Jie_max, siev, z1ie, tau_se, Jii_max, siiv, z1ii, tau_si, sigmai_ext)
        r_i, _, _ = transfer(tables, mufi, sigma_i)
        return kilo * r_e, kilo * r_i

    return Equations(drift, efferent, observe)


ALN = ModelSpec(
    name="aln",
    states=(
        State("mufe", (0.0, 3.0), "mV/ms", "filtered mean input of E"),
        State("mufi", (0.0, 3.0), "mV/ms", "filtered mean input of I"),
        State("IA", (0.0, 200.0), "pA", "mean adaptation current of E"),
        State("seem", (0.0, 0.5), "", "mean of the E -> E synaptic gating"),
        State("seim", (0.0, 0.5), "", "mean of the I -> E synaptic gating"),
        State("siem", (0.0, 0.5), "", "mean of the E -> I synaptic gating"),
        State("siim", (0.0, 0.5), "", "mean of the I -> I synaptic gating"),
        State("seev", (0.0, 0.001), "", "variance of the E -> E synaptic gating", bounds=(0.0, None)),
        State("seiv", (0.0, 0.001), "", "variance of the I -> E synaptic gating", bounds=(0.0, None)),
        State("siev", (0.0, 0.01), "", "variance of the E -> I synaptic gating", bounds=(0.0, None)),
        State("siiv", (0.0, 0.01), "", "variance of the I -> I synaptic gating", bounds=(0.0, None)),
        State("xi_e", (0.0, 0.0), "", "unit OU input to E (keep its noise at 1; scale: sigma_ou)", noise=1.0),
        State("xi_i", (0.0, 0.0), "", "unit OU input to I (keep its noise at 1; scale: sigma_ou)", noise=1.0),
        State("rd_e", (0.0, 0.01), "kHz", "E rate through the local delay (mean de)", bounds=(0.0, None)),
        State("rd_i", (0.0, 0.01), "kHz", "I rate through the local delay (mean di)", bounds=(0.0, None)),
        State("sigmae_f", (1.5, 2.5), "mV/sqrt(ms)", "input standard deviation of E (relaxed)"),
    ),
    params=(
        Param("mue_ext_mean", 0.4, (0.0, 4.0), "mV/ms", "mean external input to E (per region)"),
        Param("mui_ext_mean", 0.3, (0.0, 4.0), "mV/ms", "mean external input to I"),
        Param("a", 0.0, (0.0, 40.0), "nS", "subthreshold adaptation conductance"),
        Param("b", 0.0, (0.0, 100.0), "pA", "spike-triggered adaptation increment"),
        Param("tauA", 200.0, (10.0, 1000.0), "ms", "adaptation time constant"),
        Param("EA", -80.0, (-100.0, -60.0), "mV", "adaptation reversal potential"),
        Param("Jee_max", 2.43, (1.0, 5.0), "mV/ms", "maximum E -> E coupling"),
        Param("Jei_max", -3.3, (-6.0, -1.0), "mV/ms", "maximum I -> E coupling"),
        Param("Jie_max", 2.6, (1.0, 5.0), "mV/ms", "maximum E -> I coupling"),
        Param("Jii_max", -1.64, (-4.0, -0.5), "mV/ms", "maximum I -> I coupling"),
        Param("cee", 0.3, (0.05, 1.0), "mV/ms", "PSC amplitude E -> E"),
        Param("cei", 0.5, (0.05, 1.0), "mV/ms", "PSC amplitude I -> E"),
        Param("cie", 0.3, (0.05, 1.0), "mV/ms", "PSC amplitude E -> I"),
        Param("cii", 0.5, (0.05, 1.0), "mV/ms", "PSC amplitude I -> I"),
        Param("Ke", 800.0, (100.0, 1600.0), "", "excitatory inputs per neuron"),
        Param("Ki", 200.0, (25.0, 400.0), "", "inhibitory inputs per neuron"),
        Param("tau_se", 2.0, (1.0, 10.0), "ms", "excitatory synaptic time constant"),
        Param("tau_si", 5.0, (1.0, 20.0), "ms", "inhibitory synaptic time constant"),
        Param("de", 4.0, (0.5, 10.0), "ms", "local delay of the E rate (mean of its kernel)"),
        Param("di", 2.0, (0.5, 10.0), "ms", "local delay of the I rate (mean of its kernel)"),
        Param("c_gl", 0.3, (0.0, 1.0), "mV/ms", "PSC amplitude of inter-areal connections"),
        Param("sigma_ou", 0.0, (0.0, 0.5), "mV/ms/sqrt(ms)", "intensity of the OU input noise"),
        Param("tau_ou", 5.0, (1.0, 20.0), "ms", "time constant of the OU input"),
        Param("sigmae_ext", 1.5, (1.0, 3.0), "mV/sqrt(ms)", "external input standard deviation of E"),
        Param("sigmai_ext", 1.5, (1.0, 3.0), "mV/sqrt(ms)", "external input standard deviation of I"),
    ),
    equations=equations,
    coupled=("r_e", "r_e_sq"),
    observed=("rates_exc", "rates_inh"),
    coupling="linear",
    weights_squared=("r_e_sq",),
    tables=tables,
    G=Param("G", 250.0, (0.0, 500.0), "", "global coupling: neurolib's Ke_gl (E inputs from each area)"),
    dt_ms=0.1,
    reference="Cakan & Obermayer (2020) PLoS Comput Biol 16:e1007822; neurolib's ALNModel",
    doc=__doc__,
)
