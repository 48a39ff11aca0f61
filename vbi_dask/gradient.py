"""Gradient-based fitting: the model's own scalar equations run on torch tensors.

>>> sim = Simulation("hopf", connectome=c, dt_ms=100.0, duration_ms=300_000.0,
...                  monitors=(TemporalAverage(1000.0),), dtype="float64")
>>> torch_sim = TorchSimulator(sim)
>>> x = torch_sim.forward({"G": 0.5, "a": a_per_region}, seed=1)   # (time, node), differentiable
>>> fit = fit_fc(sim, fc_empirical, {"a": -0.05}, fit=["a"], steps=60, lr=0.1, seed=1)
>>> fit.params["a"], fit.loss_history, fit.fc_corr

The equations are written once (``ModelSpec.equations``); here they are called with
torch tensors holding every node at once. Their ``math.exp``, ``math.tanh``... are
redirected to torch through a copy of the model's factory whose global ``math`` is
:data:`TORCH_MATH` (a shim that dispatches tensors to torch and plain numbers to
:mod:`math`), so the kernels' source is untouched. Models whose equations branch on a
value (``a if x < 0 else b``: Epileptor, Wong-Wang) are evaluated node by node with
0-d tensors (slower, the same values).

The forward pass is the Numba kernel's arithmetic, step for step: the same initial
conditions (:meth:`Simulation.initial_conditions`), the same counter-based normals (drawn
with NumPy by :func:`vbi_dask.kernels.rng.normals_numpy`, keyed by seed, step, node and
global simulation index), the same Euler / stochastic Heun / RK4 update formulas with the
noise ``sigma sqrt(dt) xi`` added in predictor and corrector, the same clamping to state
bounds, delayed coupling through the history of past efferent signals, stimuli, and
Raw / TemporalAverage / Bold monitors. With ``dtype=torch.float64`` it equals
``Simulation.run_arrays`` in float64 to rounding (sums are taken in another order).

References
----------
Kingma, Ba (2015). Adam: a method for stochastic optimization. ICLR.
Deco, Kringelbach, Jirsa, Ritter (2017). The dynamics of resting fluctuations in the
brain: metastability and its dynamical cortical core. Sci. Rep. 7:3095 (fitting regional
bifurcation parameters to an empirical FC).
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .kernels import bold as _bold
from .kernels import rng as _rng
from .kernels.coupling import COUPLINGS
from .models import TABLES, no_jit
from .monitors import Raw, TemporalAverage
from .simulation import Simulation, _steps
from .stimulus import STIMULUS_AMPLITUDE

__all__ = ["TORCH_MATH", "torch_equations", "TorchSimulator", "fc_torch", "FitResult", "fit_fc"]

_NOISE_CHUNK = 1024  # steps of normals drawn at once (bounded memory for long runs)


def _torch():
    from ._extras import require

    require("train", "gradient fitting", ["torch"])
    import torch  # optional dependency: imported where it is used

    return torch


class _TorchMath(types.SimpleNamespace):
    """A ``math`` stand-in: tensors go to torch, plain numbers to :mod:`math` (so that a
    factory's constants, ``f(math.pi)``, stay plain numbers)."""

    def __getattr__(self, name):
        raise AttributeError(
            f"math.{name} has no torch counterpart in vbi_dask.gradient.TORCH_MATH; "
            f"available: {', '.join(sorted(vars(self)))}"
        )


def _dispatch(name: str, torch_name: str | None = None):
    scalar = getattr(math, name)

    def fn(*args):
        torch = _torch()
        if any(isinstance(a, torch.Tensor) for a in args):
            op = getattr(torch, torch_name or name)
            first = next(a for a in args if isinstance(a, torch.Tensor))
            return op(*(a if isinstance(a, torch.Tensor) else torch.as_tensor(a, dtype=first.dtype) for a in args))
        return scalar(*args)

    fn.__name__ = name
    return fn


TORCH_MATH = _TorchMath(
    pi=math.pi,
    e=math.e,
    tau=math.tau,
    inf=math.inf,
    nan=math.nan,
    **{
        name: _dispatch(name)
        for name in (
            "exp",
            "expm1",
            "log",
            "log1p",
            "log10",
            "log2",
            "sqrt",
            "sin",
            "cos",
            "tan",
            "tanh",
            "sinh",
            "cosh",
            "asin",
            "acos",
            "atan",
            "atan2",
            "floor",
            "ceil",
            "erf",
            "erfc",
            "pow",
        )
    },
    fabs=_dispatch("fabs", "abs"),
)


def _rebind(fn: Callable, memo: dict) -> Callable:
    """A copy of ``fn`` whose global ``math`` is :data:`TORCH_MATH`; the functions of the
    same package that it (or a function nested in it) names, or holds in a closure, are
    rebound in turn (e.g. Hopf's factory calls Stuart-Landau's)."""
    if fn in memo:
        return memo[fn]
    package = (fn.__module__ or "").split(".")[0]
    namespace = {**fn.__globals__, "math": TORCH_MATH}

    def rebind_value(value):
        if isinstance(value, types.FunctionType) and (value.__module__ or "").split(".")[0] == package:
            return _rebind(value, memo)
        return value

    closure = None
    if fn.__closure__:
        closure = tuple(types.CellType(rebind_value(cell.cell_contents)) for cell in fn.__closure__)
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, closure)
    copy.__kwdefaults__ = fn.__kwdefaults__
    memo[fn] = copy
    codes = [fn.__code__]
    while codes:  # global names of fn and of the functions defined inside it
        code = codes.pop()
        for name in code.co_names:
            if name in namespace:
                namespace[name] = rebind_value(namespace[name])
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return copy


def torch_equations(factory: Callable, memo: dict | None = None):
    """``factory(float, no_jit)`` with torch math: the model's :class:`Equations` (or any
    function built on ``math``, such as a coupling's ``pre``/``post``) for tensors.

    Parameters
    ----------
    factory : callable
        A model's ``equations`` factory (``ModelSpec.equations``).

    Returns
    -------
    Equations
        ``drift``, ``efferent``, ``observe`` accepting torch tensors (and numbers).
    """
    return _rebind(factory, {} if memo is None else memo)(float, no_jit)


def fc_torch(x):
    """Pearson correlation between the nodes of ``x`` (time, node) over time (differentiable).

    Parameters
    ----------
    x : torch.Tensor, shape (time, node)

    Returns
    -------
    torch.Tensor, shape (node, node)
    """
    centred = x - x.mean(dim=0, keepdim=True)
    unit = centred / centred.norm(dim=0, keepdim=True)
    return unit.T @ unit


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a @ b) / (a.norm() * b.norm())


class TorchSimulator:
    """A differentiable twin of a :class:`~vbi_dask.Simulation` (one simulation at a time).

    Parameters
    ----------
    simulation : Simulation
        Model, connectome, integrator ("euler", "heun", "rk4"), coupling, noise, delays,
        stimulus and monitors (Raw or TemporalAverage and/or Bold; EEG/MEG are not
        supported). Its ``dtype`` is not used: the tensors' dtype is ``dtype``.
    dtype : torch.dtype
        Floating type of the computation (float64 by default: gradients by finite
        differences and the comparison with the kernel need it).
    variable : str or None
        The observable that :meth:`forward` returns from a Raw / TemporalAverage monitor
        (default: the model's first); a Bold monitor uses its own ``variable``.

    Raises
    ------
    ValueError
        An EEG/MEG monitor, or a model evaluated on tensors that fails.
    KeyError
        ``variable`` is not an observable of the model.
    """

    def __init__(self, simulation: Simulation, dtype=None, variable: str | None = None):
        torch = _torch()
        self.simulation = sim = simulation
        self.dtype = torch.float64 if dtype is None else dtype
        model = sim.model
        if sim.sampled_monitor is not None and not isinstance(sim.sampled_monitor, (Raw, TemporalAverage)):
            raise ValueError(
                f"monitor {type(sim.sampled_monitor).__name__} is not supported: use Raw, TemporalAverage and/or Bold"
            )
        observed = model.observed
        if variable is not None and variable not in observed:
            raise KeyError(f"unknown observable {variable!r}; model {model.name} observes {', '.join(observed)}")
        self.variable = variable or observed[0]
        memo: dict = {}
        self._eq = torch_equations(model.equations, memo)
        kind = COUPLINGS[sim.coupling]
        self._pre, self._post = _rebind(kind.pre, memo), _rebind(kind.post, memo)
        self._balloon, self._bold_signal = _rebind(_bold.balloon_drift, memo), _rebind(_bold.bold_signal, memo)
        self._args = {role: tuple(_argnames(fn)) for role, fn in zip(("drift", "efferent", "observe"), self._eq)}
        c = sim.connectome
        weights = np.array(c.weights, dtype=np.float64)
        squared = [name in model.weights_squared for name in model.coupled]
        # (coupled, node, node): w_ij, or w_ij^2 for a signal summed with squared weights
        self._weights = torch.as_tensor(
            np.stack([weights * weights if sq else weights for sq in squared]), dtype=self.dtype
        )
        self._tables = torch.as_tensor(model.table_values(np.float64), dtype=self.dtype)
        self._rowsum = torch.as_tensor(weights.sum(axis=1), dtype=self.dtype)
        if sim.speed_mm_per_ms is not None:  # edges grouped by lag: a gather per coupling evaluation
            lags = c.delay_steps(sim.speed_mm_per_ms, sim.dt_ms)
            rows, cols = np.nonzero(weights)
            self._lags = np.unique(lags[rows, cols]).tolist()
            self._edges = (
                torch.as_tensor(rows),
                torch.as_tensor(cols),
                torch.as_tensor(np.searchsorted(self._lags, lags[rows, cols])),
                self._weights[:, rows, cols].T,  # (edge, coupled)
            )
        else:
            self._lags = None
        self._dt = sim.dt_ms / model.ms_per_time_unit
        self._per_node = self._needs_per_node()

    # ------------------------------------------------------------------ equations
    def _needs_per_node(self) -> bool:
        """Whether the equations branch on values (then they run node by node)."""
        torch, model = _torch(), self.simulation.model
        n = self.simulation.connectome.n_nodes
        values = {s.name: torch.full((n,), float(np.mean(s.initial)), dtype=self.dtype) for s in model.states}
        values.update({p.name: torch.full((n,), p.default, dtype=self.dtype) for p in model.params})
        values.update({name: torch.zeros(n, dtype=self.dtype) for name in model.coupling_inputs})
        values[TABLES] = self._tables
        try:
            for role, fn in zip(("drift", "efferent", "observe"), self._eq):
                fn(*(values[a] for a in self._args[role]))
        except RuntimeError as err:
            if "ambiguous" not in str(err):
                raise ValueError(f"model {model.name}: its equations fail on torch tensors: {err}") from err
            return True
        return False

    def _call(self, role: str, values: Mapping[str, Any]) -> list:
        """Equation ``role`` for every node: a list of (node,) tensors."""
        torch = _torch()
        fn = getattr(self._eq, role)
        args = [values[a] for a in self._args[role]]
        n = self.simulation.connectome.n_nodes
        if not self._per_node:
            return [
                v
                if isinstance(v, torch.Tensor) and v.shape == (n,)
                else torch.broadcast_to(torch.as_tensor(v, dtype=self.dtype), (n,))
                for v in fn(*args)
            ]
        per_node = [a.ndim > 0 and name != TABLES for a, name in zip(args, self._args[role])]
        rows = [fn(*(a[i] if split else a for a, split in zip(args, per_node))) for i in range(n)]
        return [torch.stack([torch.as_tensor(r[k], dtype=self.dtype) for r in rows]) for k in range(len(rows[0]))]

    # ------------------------------------------------------------------ inputs
    def _parameters(self, params: Mapping[str, Any]) -> dict:
        torch, model = _torch(), self.simulation.model
        n = self.simulation.connectome.n_nodes
        given = dict(params)
        amplitude = given.pop(STIMULUS_AMPLITUDE, None)
        model.check_param_names(given)
        out = {}
        for p in model.all_params:
            value = given.get(p.name, p.default)
            value = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float64))
            value = value.to(self.dtype)
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
                raise ValueError(
                    f"parameter {p.name!r}: expected a scalar or one value per node ({n}), "
                    f"got shape {tuple(value.shape)}"
                )
            out[p.name] = value
        out[TABLES] = self._tables
        stimulus = self.simulation.stimulus
        if stimulus is None:
            if amplitude is not None:
                raise ValueError(f"{STIMULUS_AMPLITUDE!r} given, but the simulation has no stimulus")
        else:
            amp = stimulus.amplitude if amplitude is None else amplitude
            amp = amp if isinstance(amp, torch.Tensor) else torch.as_tensor(float(amp), dtype=self.dtype)
            out[STIMULUS_AMPLITUDE] = amp.to(self.dtype) * torch.as_tensor(stimulus.spatial(n), dtype=self.dtype)
        return out

    def _noise(self, seed: int, first_sim: int):
        """Yields, per step, the (state, node) float64 noise increments sigma sqrt(dt) xi
        of the kernel (None for a noise-free model), drawn in chunks of steps."""
        sim, model = self.simulation, self.simulation.model
        n, S = sim.connectome.n_nodes, len(model.states)
        sigma = np.array([sim.noise[s] for s in model.state_names], dtype=np.float64)
        noisy = [s for s in range(S) if sigma[s] > 0]
        sqrt_dt = np.sqrt(np.float64(self._dt))
        torch = _torch()
        nodes = np.arange(n, dtype=np.uint64)
        for n0 in range(0, sim.n_steps, _NOISE_CHUNK):
            steps = np.arange(n0, min(n0 + _NOISE_CHUNK, sim.n_steps), dtype=np.uint64)
            if not noisy:
                yield from (None for _ in steps)
                continue
            z = np.zeros((steps.size, S, n))
            for word in sorted({s // 4 for s in noisy}):
                xi = _rng.normals_numpy(
                    seed, steps[:, None], nodes[None, :], np.uint64(first_sim), _rng.STREAM_NOISE, word
                ).astype(np.float64)
                for s in noisy:
                    if s // 4 == word:
                        z[:, s] = sigma[s] * sqrt_dt * xi[..., s % 4]
            zt = torch.as_tensor(z, dtype=self.dtype)
            yield from zt

    # ------------------------------------------------------------------ integration
    def run(self, params: Mapping[str, Any] | None = None, *, seed: int = 0, first_sim: int = 0) -> dict:
        """Integrate one simulation and return what its monitors record.

        Parameters
        ----------
        params : mapping of str to tensor, array or float
            Model parameters and ``G``, each a scalar or one value per node; those not
            given take the model's defaults. Tensors with ``requires_grad`` are
            differentiated through.
        seed : int
            The kernel's seed: initial conditions and noise are those of
            ``Simulation.run_arrays(..., seed=seed, first_sim=first_sim)``.
        first_sim : int
            Global index of the simulation (its noise stream).

        Returns
        -------
        dict
            ``"sampled"``: (time, obs, node) tensor for a Raw/TemporalAverage monitor,
            ``"bold"``: (time_bold, node) tensor for a Bold monitor.
        """
        torch = _torch()
        sim, model = self.simulation, self.simulation.model
        P = self._parameters(params or {})
        states, bounds = model.state_names, [s.bounds for s in model.states]
        x = [
            t
            for t in torch.as_tensor(
                sim.initial_conditions(1, seed=seed, first_sim=first_sim)[:, :, 0], dtype=self.dtype
            )
        ]
        dt, half_dt, sixth_dt = self._dt, self._dt * 0.5, self._dt * (1.0 / 6.0)
        stim = None
        if sim.stimulus is not None:
            s_stim = states.index(sim.stimulus.state)
            stim = sim.stimulus.time_course(sim.n_steps, sim.dt_ms)
        history: list = []  # pre channels (coupled, n_pre, node) of accepted states, by step

        def clamp(s, value):
            lo, hi = bounds[s]
            return value if lo is None and hi is None else torch.clamp(value, min=lo, max=hi)

        def pre_of(state):
            named = {**dict(zip(states, state)), **P}
            eff = self._call("efferent", named)
            pre = torch.stack([torch.stack(list(self._pre(e))) for e in eff])
            return pre, eff

        def coupling(step, pre, eff):
            if self._lags is None:
                sums = pre @ self._weights.transpose(1, 2)  # (coupled, n_pre, node)
            else:
                rows, cols, lag, w = self._edges
                past = torch.stack([pre if step - d == step else history[max(step - d, 0)] for d in self._lags])
                contrib = past[lag, :, :, cols] * w[:, :, None]  # (edge, coupled, n_pre)
                sums = torch.zeros((len(eff),) + tuple(pre.shape[1:]), dtype=self.dtype).index_add(
                    2, rows, contrib.permute(1, 2, 0)
                )
            return [self._post(P["G"], self._rowsum, eff[k], *sums[k]) for k in range(len(eff))]

        def drift(state, cpl, t):
            named = {**dict(zip(states, state)), **dict(zip(model.coupling_inputs, cpl)), **P}
            d = self._call("drift", named)
            if stim is not None:
                value = stim[t] if isinstance(t, int) else 0.5 * (stim[t[0]] + stim[t[1]])
                d[s_stim] = d[s_stim] + P[STIMULUS_AMPLITUDE] * value
            return d

        sampled, bold = sim.sampled_monitor, sim.bold_monitor
        n_cut = sim.n_cut
        decim = _steps("period", sampled.period_ms, sim.dt_ms) if sampled else 1
        samples, acc = [], None
        if bold:
            bold_decim = _steps("Bold.dt_ms", bold.dt_ms, sim.dt_ms)
            tr_decim = _steps("Bold.tr_ms", bold.tr_ms, bold.dt_ms)
            q_cut = n_cut // (bold_decim * tr_decim)
            bc = _bold.balloon_constants(np.float64, scale=bold.scale, **bold.constants).tolist()
            b_obs = model.observed.index(bold.variable or model.observed[0])
            n = sim.connectome.n_nodes
            bst = [torch.zeros(n, dtype=self.dtype)] + [torch.ones(n, dtype=self.dtype) for _ in range(3)]
            bacc, bold_samples = torch.zeros(n, dtype=self.dtype), []
            bold_dt = bold.dt_ms / 1000.0
        noise = self._noise(seed, first_sim)
        for step in range(sim.n_steps):
            z = next(noise)
            pre, eff = pre_of(x)
            history.append(pre)
            f1 = drift(x, coupling(step, pre, eff), step)
            if sim.integrator == "euler":
                x = [clamp(s, x[s] + dt * f1[s] + (0.0 if z is None else z[s])) for s in range(len(x))]
            elif sim.integrator == "heun":
                xt = [clamp(s, x[s] + dt * f1[s] + (0.0 if z is None else z[s])) for s in range(len(x))]
                f2 = drift(xt, coupling(step + 1, *pre_of(xt)), step + 1)
                x = [clamp(s, x[s] + half_dt * (f1[s] + f2[s]) + (0.0 if z is None else z[s])) for s in range(len(x))]
            else:  # rk4: deterministic and delay-free; F accumulates as the kernel's does
                xt = [x[s] + half_dt * f1[s] for s in range(len(x))]
                k2 = drift(xt, coupling(step, *pre_of(xt)), (step, step + 1))
                F = [f1[s] + 2.0 * k2[s] for s in range(len(x))]
                xt = [x[s] + half_dt * k2[s] for s in range(len(x))]
                k3 = drift(xt, coupling(step, *pre_of(xt)), (step, step + 1))
                F = [F[s] + 2.0 * k3[s] for s in range(len(x))]
                xt = [x[s] + dt * k3[s] for s in range(len(x))]
                k4 = drift(xt, coupling(step, *pre_of(xt)), step + 1)
                x = [clamp(s, x[s] + sixth_dt * (F[s] + k4[s])) for s in range(len(x))]
            if sampled is None and not bold:
                continue
            obs = self._call("observe", {**dict(zip(states, x)), **P})
            if sampled and step >= n_cut:
                k = step - n_cut
                if isinstance(sampled, Raw):
                    if (k + 1) % decim == 0:
                        samples.append(torch.stack(obs))
                else:
                    acc = obs if acc is None else [a + o for a, o in zip(acc, obs)]
                    if (k + 1) % decim == 0:
                        samples.append(torch.stack(acc) * (1.0 / decim))
                        acc = None
            if bold:
                bacc = bacc + obs[b_obs]
                if (step + 1) % bold_decim == 0:
                    m = (step + 1) // bold_decim
                    zb = bacc * (bc[10] / bold_decim)
                    bacc = torch.zeros_like(bacc)
                    d0 = self._balloon(*bst, zb, *bc[:6])
                    b1 = [b + bold_dt * d for b, d in zip(bst, d0)]
                    d1 = self._balloon(*b1, zb, *bc[:6])
                    bst = [b + (0.5 * bold_dt) * (u + w) for b, u, w in zip(bst, d0, d1)]
                    if m % tr_decim == 0 and m // tr_decim > q_cut:
                        bold_samples.append(self._bold_signal(bst[2], bst[3], *bc[6:10]))
        out = {}
        if sampled:
            out["sampled"] = torch.stack(samples)
        if bold:
            out["bold"] = torch.stack(bold_samples)
        return out

    def forward(self, params: Mapping[str, Any] | None = None, *, seed: int = 0, first_sim: int = 0):
        """The monitored signal (time, node): BOLD when the simulation has a Bold monitor,
        else ``variable`` from its Raw/TemporalAverage monitor. See :meth:`run`."""
        out = self.run(params, seed=seed, first_sim=first_sim)
        if "bold" in out:
            return out["bold"]
        if "sampled" not in out:
            raise ValueError("the simulation has no monitor")
        return out["sampled"][:, self.simulation.model.observed.index(self.variable), :]

    __call__ = forward


def _argnames(fn) -> list[str]:
    import inspect

    return list(inspect.signature(fn).parameters)


# ---------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_fc`.

    Attributes
    ----------
    params : dict of str to numpy.ndarray
        Fitted values (scalar or per region, in the shape of ``init``), after the last step.
    loss_history : numpy.ndarray, shape (steps,)
        The loss at the start of each Adam step.
    fc_corr : float
        Pearson correlation of the simulated and empirical FC (upper triangles) at
        ``params``, with the fit's noise realisation.
    loss : float
        The loss at ``params``.
    fc : numpy.ndarray, shape (node, node)
        The simulated FC at ``params``.
    """

    params: dict
    loss_history: np.ndarray
    fc_corr: float
    loss: float
    fc: np.ndarray = field(repr=False)


def fit_fc(
    simulation: Simulation,
    empirical_fc,
    init: Mapping[str, Any],
    *,
    fit: Sequence[str],
    steps: int = 100,
    lr: float = 0.05,
    lr_decay: float = 1.0,
    seed: int = 0,
    first_sim: int = 0,
    fc_mse: float = 0.0,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    variable: str | None = None,
    dtype=None,
    callback: Callable[[int, float, dict], None] | None = None,
) -> FitResult:
    """Fit parameters to an empirical FC by gradient descent (Adam) through the simulator.

    Loss: ``1 - corr(FC_sim, FC_emp) + fc_mse * mean((FC_sim - FC_emp)^2)`` over the upper
    triangles (diagonal excluded). The correlation is blind to an affine change of all
    FC entries (e.g. a common shift of every region's excitability that scales every
    correlation alike); a small ``fc_mse`` weight pins that direction down.

    Each fitted parameter ``theta`` in ``(lo, hi)`` is optimised as ``u`` with
    ``theta = lo + (hi - lo) sigmoid(u)``, so it stays inside the model's range
    (``Param.range``, or ``bounds``) whatever the step.

    The noise realisation is fixed (common random numbers): every evaluation uses the
    initial conditions and noise of ``(seed, first_sim)``, so the loss is a smooth,
    deterministic function of the parameters and its gradient is exact; the fit is
    then conditional on that one realisation (fit with another seed, or several, to see
    the spread that the finite recording leaves).

    Parameters
    ----------
    simulation : Simulation
        The simulated subject's configuration (its monitor gives the FC signal: BOLD if
        present, else ``variable`` of the Raw/TemporalAverage monitor).
    empirical_fc : array_like, shape (node, node)
        The empirical FC.
    init : mapping of str to float or array
        Starting values of the fitted parameters and fixed values of the others (those
        absent take the model's defaults); scalar or one value per region.
    fit : sequence of str
        Names of the parameters to fit (each must be in ``init``).
    steps : int
        Adam steps (one forward and backward pass each).
    lr : float
        Adam's learning rate, in the unconstrained coordinates ``u``.
    lr_decay : float
        Factor applied to the learning rate after each step (1: constant); a decay lets
        Adam settle in a flat minimum instead of circling it.
    seed, first_sim : int
        The noise realisation (see above).
    fc_mse : float
        Weight of the mean squared FC difference.
    bounds : mapping of str to (float, float), optional
        Ranges replacing ``Param.range`` for the named parameters.
    variable : str, optional
        See :class:`TorchSimulator`.
    dtype : torch.dtype, optional
        float64 by default.
    callback : callable, optional
        ``callback(step, loss, values)`` after each evaluation.

    Returns
    -------
    FitResult

    Raises
    ------
    KeyError
        A fitted parameter that is unknown or missing from ``init``.
    ValueError
        An empirical FC of the wrong shape or with non-finite entries; a start outside
        its range.
    """
    torch = _torch()
    model = simulation.model
    model.check_param_names(list(init))
    missing = [name for name in fit if name not in init]
    if missing:
        raise KeyError(f"fitted parameter(s) {missing} need a starting value in init (given: {sorted(init)})")
    if not fit:
        raise ValueError("fit names no parameter")
    simulator = TorchSimulator(simulation, dtype=dtype, variable=variable)
    n = simulation.connectome.n_nodes
    emp = np.asarray(empirical_fc, dtype=np.float64)
    if emp.shape != (n, n):
        raise ValueError(f"empirical_fc must be shaped (node, node) = ({n}, {n}); got {emp.shape}")
    rows, cols = np.triu_indices(n, 1)
    if not np.all(np.isfinite(emp[rows, cols])):
        raise ValueError("empirical_fc has non-finite upper-triangle entries")
    target = torch.as_tensor(emp[rows, cols], dtype=simulator.dtype)
    rows_t, cols_t = torch.as_tensor(rows), torch.as_tensor(cols)
    ranges, free = {}, {}
    for name in fit:
        lo, hi = (bounds or {}).get(name, model.param(name).range)
        start = np.asarray(init[name], dtype=np.float64)
        if not np.all((start > lo) & (start < hi)):
            raise ValueError(f"the start of {name!r} ({start}) must lie strictly inside its range ({lo}, {hi})")
        unit = (start - lo) / (hi - lo)
        ranges[name] = (lo, hi)
        free[name] = torch.tensor(np.log(unit / (1 - unit)), dtype=simulator.dtype, requires_grad=True)
    fixed = {k: v for k, v in init.items() if k not in free}

    def values():
        return {
            **fixed,
            **{k: ranges[k][0] + (ranges[k][1] - ranges[k][0]) * torch.sigmoid(u) for k, u in free.items()},
        }

    def loss_of(theta):
        fc = fc_torch(simulator.forward(theta, seed=seed, first_sim=first_sim))
        upper = fc[rows_t, cols_t]
        r = _pearson(upper, target)
        loss = 1.0 - r
        if fc_mse:
            loss = loss + fc_mse * ((upper - target) ** 2).mean()
        return loss, r, fc

    optimiser = torch.optim.Adam(list(free.values()), lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=lr_decay)
    history = []
    for step in range(steps):
        optimiser.zero_grad()
        theta = values()
        loss, _, _ = loss_of(theta)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()} at step {step}: the simulation diverged")
        loss.backward()
        optimiser.step()
        schedule.step()
        history.append(loss.item())
        if callback is not None:
            callback(step, history[-1], {k: v.detach().numpy().copy() for k, v in theta.items() if k in free})
    with torch.no_grad():
        theta = values()
        loss, r, fc = loss_of(theta)
    fitted = {k: theta[k].detach().numpy().copy() for k in free}
    return FitResult(
        params=fitted,
        loss_history=np.asarray(history),
        fc_corr=float(r),
        loss=float(loss),
        fc=fc.detach().numpy().copy(),
    )
