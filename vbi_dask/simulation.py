"""Simulation: a model on a connectome, with coupling, integrator, noise, delays and monitors.

>>> sim = Simulation("mpr", duration_ms=2000.0, monitors=(Bold(tr_ms=500.0),))
>>> ds = sim.run({"G": np.linspace(0.2, 0.8, 16), "eta": -4.6}, seed=1)

A simulation's output depends only on (configuration, seed, global simulation index):
the kernel's noise and initial conditions are counter-based, keyed by ``first_sim + k``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np
import xarray as xr

from .backend import resolve_backend
from .connectome import Connectome, default_connectome
from .kernels import cpu as _cpu
from .kernels.config import INTEGRATORS, KernelConfig, KernelInputs
from .kernels import rng as _rng
from .kernels.edges import EdgePlan, plan_edges
from .kernels.bold import balloon_constants
from .kernels.coupling import COUPLINGS
from .models import ModelSpec, get_model
from .monitors import EEG, MEG, Bold, Monitor, Raw, TemporalAverage, eeg_leadfield_sphere
from .monitors import monitor_from_dict, monitor_to_dict
from ._params import broadcast_param, param_array, resolve_n_sims
from .stimulus import STIMULUS_AMPLITUDE, Stimulus, stimulus_from_dict

__all__ = ["Simulation", "simulate"]


def _steps(name: str, value_ms: float, dt_ms: float) -> int:
    ratio = value_ms / dt_ms
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"{name} ({value_ms} ms) must be a positive multiple of dt ({dt_ms} ms)")
    return k


@dataclass(frozen=True)
class Simulation:
    """A whole-brain simulation configuration (immutable, validated on construction).

    Parameters
    ----------
    model : registered model name or :class:`ModelSpec`.
    connectome : structural connectome; default: the embedded 84-region connectome with
        weights divided by their maximum.
    dt_ms : integration step, ms (models in seconds are integrated with dt_ms / 1000 s);
        default: the model's recommended step.
    duration_ms : simulated time, ms.
    integrator : "heun" (stochastic Heun), "euler" (Euler-Maruyama) or "rk4" (deterministic).
    coupling : "linear", "difference" or "sine"; default: the model's.
    noise : per-state additive noise amplitude sigma (dx = f dt + sigma dW, state units per
        sqrt(model time unit)); states not named keep the model's default; 0 disables.
    speed_mm_per_ms : conduction speed (m/s == mm/ms); None: no delays.
    monitors : Raw / TemporalAverage / EEG / MEG (at most one of these) and/or Bold.
    t_cut_ms : initial transient not recorded, ms.
    dtype : "float32" (default) or "float64".
    initial_state : per-state initial values (scalar or per node) replacing the random
        initial conditions drawn uniformly in the model's initial ranges.
    stimulus : a :class:`~vbi_dask.stimulus.Stimulus` (or its dict): time-dependent input
        to chosen regions and one state; its amplitude may vary per simulation
        (``stimulus_amplitude`` in the parameters).
    """

    model: ModelSpec | str
    connectome: Connectome | None = None
    dt_ms: float | None = None
    duration_ms: float = 1000.0
    integrator: str = "heun"
    coupling: str | None = None
    noise: Mapping[str, float] | None = None
    speed_mm_per_ms: float | None = None
    monitors: tuple[Monitor, ...] = (TemporalAverage(1.0),)
    t_cut_ms: float = 0.0
    dtype: str = "float32"
    initial_state: Mapping[str, float] | None = field(default=None)
    stimulus: Stimulus | None = None

    def __post_init__(self):
        model = get_model(self.model)
        object.__setattr__(self, "model", model)
        if self.connectome is None:
            object.__setattr__(self, "connectome", default_connectome().normalised("max"))
        if not isinstance(self.connectome, Connectome):
            raise TypeError(f"connectome must be a Connectome, got {type(self.connectome).__name__}")
        if self.dt_ms is None:
            object.__setattr__(self, "dt_ms", model.dt_ms)
        if not (np.isfinite(self.dt_ms) and self.dt_ms > 0):
            raise ValueError(f"dt_ms must be positive, got {self.dt_ms}")
        if not self.duration_ms >= self.dt_ms:
            raise ValueError(f"duration_ms ({self.duration_ms}) must be at least dt_ms ({self.dt_ms})")
        if not 0 <= self.t_cut_ms < self.duration_ms:
            raise ValueError(f"t_cut_ms must be in [0, duration_ms), got {self.t_cut_ms}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {self.integrator!r}; valid: {list(INTEGRATORS)}")
        coupling = self.coupling or model.coupling
        if coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {coupling!r}; valid: {list(COUPLINGS)}")
        if model.weights_squared and coupling != "linear":
            raise ValueError(
                f"model {model.name} sums {', '.join(model.weights_squared)} with squared weights: "
                f"its coupling must be 'linear', not {coupling!r}"
            )
        object.__setattr__(self, "coupling", coupling)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        noise = dict(model.noise_defaults())
        for name, sigma in (self.noise or {}).items():
            if name not in noise:
                raise KeyError(f"unknown state {name!r} in noise for model {model.name}; states: {', '.join(noise)}")
            if not (np.isfinite(sigma) and sigma >= 0):
                raise ValueError(f"noise for {name!r} must be a non-negative number, got {sigma}")
            noise[name] = float(sigma)
        object.__setattr__(self, "noise", noise)
        if self.integrator == "rk4" and any(noise.values()):
            noisy = [k for k, v in noise.items() if v]
            raise ValueError(f"rk4 is deterministic: set the noise of {noisy} to 0 or use 'heun'/'euler'")
        if self.speed_mm_per_ms is not None:
            if self.integrator == "rk4":
                raise ValueError("rk4 is delay-free; use 'heun' or 'euler' with delays")
            if self.connectome.tract_lengths_mm is None:
                raise ValueError("delays need tract lengths: the connectome has no tract_lengths_mm")
            self.connectome.delay_steps(self.speed_mm_per_ms, self.dt_ms)  # validates speed
        for name in self.initial_state or {}:
            if name not in model.state_names:
                raise KeyError(f"unknown state {name!r} in initial_state; states: {', '.join(model.state_names)}")
        object.__setattr__(self, "monitors", tuple(self.monitors))
        self._check_monitors()
        stimulus = stimulus_from_dict(self.stimulus)
        if stimulus is not None:
            if stimulus.state not in model.state_names:
                raise KeyError(
                    f"unknown state {stimulus.state!r} for the stimulus; states of {model.name}: "
                    f"{', '.join(model.state_names)}"
                )
            stimulus.spatial(self.connectome.n_nodes)  # validates the regions
        object.__setattr__(self, "stimulus", stimulus)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """A JSON-able description (the connectome by name and hash; see :meth:`from_dict`);
        ``stimulus`` only when there is one (descriptions made before stimuli match)."""
        extra = {} if self.stimulus is None else {"stimulus": self.stimulus.to_dict()}
        return {
            "model": self.model.name,
            "connectome": {
                "name": self.connectome.name,
                "hash": self.connectome.hash(),
                "n_nodes": self.connectome.n_nodes,
            },
            "dt_ms": self.dt_ms,
            "duration_ms": self.duration_ms,
            "integrator": self.integrator,
            "coupling": self.coupling,
            "noise": dict(self.noise),
            "speed_mm_per_ms": self.speed_mm_per_ms,
            "monitors": [monitor_to_dict(m) for m in self.monitors],
            "t_cut_ms": self.t_cut_ms,
            "dtype": self.dtype,
            "initial_state": {k: np.asarray(v).tolist() for k, v in (self.initial_state or {}).items()} or None,
            **extra,
        }

    @classmethod
    def from_dict(cls, spec: Mapping, connectome: Connectome | None = None) -> "Simulation":
        """Rebuild from :meth:`to_dict`; the connectome must match the recorded hash."""
        spec = dict(spec)
        recorded = spec.pop("connectome")
        if connectome is None:
            connectome = default_connectome().normalised("max")
        if recorded and recorded.get("hash") not in (None, connectome.hash()):
            raise ValueError(
                f"connectome mismatch: the description was made with {recorded.get('name')!r} "
                f"(hash {recorded.get('hash', '')[:12]}), got {connectome.name!r} (hash {connectome.hash()[:12]})"
            )
        spec["monitors"] = tuple(monitor_from_dict(m) for m in spec.get("monitors", ()))
        return cls(connectome=connectome, **spec)

    # ------------------------------------------------------------------ layout
    def _check_monitors(self):
        sampled = [m for m in self.monitors if isinstance(m, (Raw, TemporalAverage, EEG, MEG))]
        bolds = [m for m in self.monitors if isinstance(m, Bold)]
        other = [m for m in self.monitors if not isinstance(m, (Raw, TemporalAverage, EEG, MEG, Bold))]
        if other:
            raise TypeError(f"unsupported monitor(s): {other}")
        if len(bolds) > 1:
            raise ValueError("at most one Bold monitor per simulation")
        if len(sampled) > 1:
            kinds = [type(m).__name__ for m in sampled]
            # one sampled buffer: a Raw alone, or averaged monitors sharing a period (the
            # EEG/MEG projections are of the temporal average)
            if "Raw" in kinds or len(set(kinds)) < len(kinds) or len({float(m.period_ms) for m in sampled}) > 1:
                raise ValueError(
                    f"monitors {', '.join(kinds)} cannot be combined: a simulation has one sampled "
                    "monitor (Raw, TemporalAverage, EEG or MEG), or TemporalAverage, EEG and MEG "
                    "(at most one of each) with the same period_ms "
                    f"(got {', '.join(f'{k} {m.period_ms:g} ms' for k, m in zip(kinds, sampled))})"
                )
        observed = self.model.observed
        for m in self.monitors:
            var = getattr(m, "variable", None)
            if var is not None and var not in observed:
                raise KeyError(f"unknown observable {var!r}; model {self.model.name} observes {', '.join(observed)}")
        n_steps, n_cut = self.n_steps, self.n_cut
        if sampled:
            decim = _steps(f"{type(sampled[0]).__name__}.period_ms", sampled[0].period_ms, self.dt_ms)
            if (n_steps - n_cut) // decim < 1:
                raise ValueError("the recorded time is shorter than one monitor period")
        if bolds:
            b = bolds[0]
            period = _steps("Bold.dt_ms", b.dt_ms, self.dt_ms) * _steps("Bold.tr_ms", b.tr_ms, b.dt_ms)
            if n_steps // period - n_cut // period < 1:
                raise ValueError(f"duration_ms - t_cut_ms is shorter than one BOLD TR ({b.tr_ms} ms)")
        if any(isinstance(m, MEG) and m.gain is None for m in sampled):
            raise ValueError("MEG needs a gain matrix (see meg_leadfield_sphere)")

    @property
    def n_steps(self) -> int:
        return int(round(self.duration_ms / self.dt_ms))

    @property
    def n_cut(self) -> int:
        return int(round(self.t_cut_ms / self.dt_ms))

    def sample_times_ms(self) -> np.ndarray:
        """Times (ms, end of each window) of the sampled monitor's samples; empty without one."""
        sampled = self.sampled_monitor
        if sampled is None:
            return np.zeros(0)
        decim = _steps("period", sampled.period_ms, self.dt_ms)
        n_t = (self.n_steps - self.n_cut) // decim
        return (self.n_cut + decim * np.arange(1, n_t + 1)) * self.dt_ms

    def bold_times_ms(self) -> np.ndarray:
        """Times (ms) of the BOLD samples (multiples of the TR after t_cut); empty without Bold."""
        bold = self.bold_monitor
        if bold is None:
            return np.zeros(0)
        period = _steps("Bold.dt_ms", bold.dt_ms, self.dt_ms) * _steps("Bold.tr_ms", bold.tr_ms, bold.dt_ms)
        q_cut = self.n_cut // period
        return bold.tr_ms * (q_cut + np.arange(1, self.n_steps // period - q_cut + 1))

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_graph", None)  # a cache, rebuilt on demand: keep pickles (Dask tasks) small
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def sampled_monitor(self) -> Monitor | None:
        """The first sampled monitor (Raw, TemporalAverage, EEG or MEG): its kind and period
        are the kernel's sampled buffer's (see :attr:`sampled_monitors`)."""
        return next(iter(self.sampled_monitors), None)

    @property
    def sampled_monitors(self) -> tuple[Monitor, ...]:
        """The sampled monitors: one, or TemporalAverage, EEG and MEG of one period, all read
        from the kernel's one averaged buffer."""
        return tuple(m for m in self.monitors if isinstance(m, (Raw, TemporalAverage, EEG, MEG)))

    def gain(self, monitor: EEG | MEG) -> np.ndarray:
        """The (sensor, node) lead field of an EEG or MEG monitor: its own, else (EEG) the
        sphere model's from the connectome's region centres.

        Raises
        ------
        ValueError
            No gain and no region centres, or a gain whose columns are not the nodes.
        """
        c = self.connectome
        gain = monitor.gain
        if gain is None:
            if c.centres_mm is None:
                raise ValueError(
                    f"{type(monitor).__name__} without a gain matrix needs region centres in the connectome"
                )
            gain = eeg_leadfield_sphere(c.centres_mm)
        if gain.shape[1] != c.n_nodes:
            raise ValueError(
                f"{type(monitor).__name__} gain has {gain.shape[1]} columns, the connectome {c.n_nodes} nodes"
            )
        return gain

    def project(self, monitor: EEG | MEG, sampled: np.ndarray) -> np.ndarray:
        """The sensors' signals (sim, time, sensor) float64 of the kernel's sampled output
        (time, obs, node, sim): ``gain @`` the monitor's observable."""
        k = self.model.observed.index(monitor.variable or self.model.observed[0])
        x = np.moveaxis(sampled[:, k], -1, 0).astype(np.float64)  # (sim, time, node)
        return monitor.project(x, self.gain(monitor))

    @property
    def bold_monitor(self) -> Bold | None:
        return next((m for m in self.monitors if isinstance(m, Bold)), None)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.model.all_params)

    @property
    def lanes(self) -> int:
        return _cpu.lanes_for(np.dtype(self.dtype))

    def padded(self, n_sims: int) -> int:
        """Columns the kernels run for ``n_sims`` simulations (see :func:`~vbi_dask.kernels.cpu.batch_columns`)."""
        return _cpu.batch_columns(n_sims, self.lanes)

    @cached_property
    def _graph(self) -> EdgePlan:
        """The connectome's edges as the kernels read them (see :mod:`vbi_dask.kernels.edges`)."""
        w = self.connectome.weights
        if self.speed_mm_per_ms is None:
            return plan_edges(w)
        return plan_edges(w, self.connectome.delay_steps(self.speed_mm_per_ms, self.dt_ms))

    @property
    def max_delay_steps(self) -> int:
        delays = self._graph.delays
        return int(delays.max()) if delays.size else 0

    def kernel_config(self) -> KernelConfig:
        model, sampled, bold = self.model, self.sampled_monitor, self.bold_monitor
        kind = COUPLINGS[self.coupling]
        if sampled is None:
            monitor = _cpu.MONITOR_NONE
        elif isinstance(sampled, Raw):
            monitor = _cpu.MONITOR_RAW
        else:
            monitor = _cpu.MONITOR_TAVG
        bold_var = (bold.variable or model.observed[0]) if bold else model.observed[0]
        return KernelConfig(
            equations=model.equations,
            pre=kind.pre,
            post=kind.post,
            state_names=model.state_names,
            coupling_inputs=model.coupling_inputs,
            param_names=model.param_names,
            n_pre=kind.n_pre,
            n_obs=len(model.observed),
            bold_obs=model.observed.index(bold_var),
            noisy=tuple(k for k, s in enumerate(model.state_names) if self.noise[s] > 0),
            bounds=tuple(s.bounds for s in model.states),
            integrator=self.integrator,
            delays=self.speed_mm_per_ms is not None,
            monitor=monitor,
            bold=bold is not None,
            dtype=self.dtype,
            stimulus=-1 if self.stimulus is None else model.state_names.index(self.stimulus.state),
            squared=tuple(k for k, name in enumerate(model.coupled) if name in model.weights_squared),
            tables=model.tables,
        )

    # ------------------------------------------------------------------ running
    def initial_conditions(self, n_sims: int, *, seed: int, first_sim: int = 0) -> np.ndarray:
        """Initial states (state, node, sim) float64: uniform in each state's initial range,
        keyed by (seed, node, global sim index, state), or ``initial_state`` where given."""
        model, n = self.model, self.connectome.n_nodes
        sims = first_sim + np.arange(n_sims, dtype=np.uint64)
        nodes = np.arange(n, dtype=np.uint64)
        x0 = np.empty((len(model.states), n, n_sims))
        for word in range((len(model.states) + 3) // 4):
            u = _rng.uniforms_numpy(seed, 0, nodes[:, None], sims[None, :], _rng.STREAM_INIT, word)
            for s in range(4 * word, min(4 * word + 4, len(model.states))):
                lo, hi = model.states[s].initial
                x0[s] = lo + (hi - lo) * u[..., s % 4]
        for name, value in (self.initial_state or {}).items():
            s = model.state_names.index(name)
            x0[s] = np.broadcast_to(
                np.asarray(value, dtype=np.float64).reshape(-1, 1) if np.ndim(value) else value, (n, n_sims)
            )
        return x0

    def run_arrays(
        self,
        params: Mapping | None = None,
        *,
        n_sims: int | None = None,
        seed: int = 0,
        first_sim: int = 0,
        threads: int | None = None,
        backend: str = "cpu",
    ) -> dict[str, np.ndarray]:
        """Run and return raw arrays: ``sampled`` (time, obs, node, sim) and ``bold`` (time, node, sim).

        ``backend``: "cpu", "cuda" or "auto" (CUDA when this process sees a GPU; see
        :func:`vbi_dask.backend.resolve_backend`); ``threads`` applies to the CPU.
        """
        backend = resolve_backend(backend)
        n_sims = resolve_n_sims(params or {}, n_sims, self.connectome.n_nodes)
        inputs = self.kernel_inputs(params, n_sims=n_sims, seed=seed, first_sim=first_sim)
        if backend == "cuda":
            from .kernels import cuda as _cuda  # numba.cuda only where it is used

            _cuda.build_kernel(self.kernel_config())(inputs)
        else:
            _cpu.build_kernel(self.kernel_config())(inputs, threads=_default_threads() if threads is None else threads)
        n_t = self.sample_times_ms().size
        n_q = self.bold_times_ms().size if self.bold_monitor else 0
        return {"sampled": inputs.out_mon[:n_t, :, :, :n_sims], "bold": inputs.out_bold[:n_q, :, :n_sims]}

    def kernel_inputs(
        self, params: Mapping | None = None, *, n_sims: int | None = None, seed: int = 0, first_sim: int = 0
    ) -> KernelInputs:
        """The kernels' inputs for a batch: states, parameters, edges, noise keys, the
        monitors' output arrays (NaN until run; padded to whole SIMD blocks) and the tables."""
        params = dict(params or {})
        n_sims = resolve_n_sims(params, n_sims, self.connectome.n_nodes)
        if first_sim < 0:
            raise ValueError(f"first_sim must be >= 0, got {first_sim}")
        dtype = np.dtype(self.dtype)
        n, bp = self.connectome.n_nodes, self.padded(n_sims)
        P = self._parameters(params, n_sims, bp, dtype)
        x0 = np.empty((len(self.model.states), n, bp), dtype=dtype)
        x0[:, :, :n_sims] = self.initial_conditions(n_sims, seed=seed, first_sim=first_sim)
        x0[:, :, n_sims:] = x0[:, :, :1]
        plan = self._graph
        unit = self.model.ms_per_time_unit
        dt = dtype.type(self.dt_ms / unit)
        sigma = np.array([self.noise[s] for s in self.model.state_names], dtype=dtype)
        n_steps, n_cut = self.n_steps, self.n_cut
        sampled, bold = self.sampled_monitor, self.bold_monitor
        decim = _steps("period", sampled.period_ms, self.dt_ms) if sampled else 1
        n_t = self.sample_times_ms().size
        out_mon = np.full((max(n_t, 1), len(self.model.observed), n, bp), np.nan, dtype=dtype)
        if bold:
            bold_decim = _steps("Bold.dt_ms", bold.dt_ms, self.dt_ms)
            tr_decim = _steps("Bold.tr_ms", bold.tr_ms, bold.dt_ms)
            q_cut = n_cut // (bold_decim * tr_decim)
            n_q = self.bold_times_ms().size
            bc = balloon_constants(dtype, scale=bold.scale, **bold.constants)
        else:
            bold_decim, tr_decim, q_cut, n_q, bc = 1, 1, 0, 0, balloon_constants(dtype)
        out_bold = np.full((max(n_q, 1), n, bp), np.nan, dtype=dtype)
        seed_lo, seed_hi = _rng.split_seed(seed)
        stim = (
            np.zeros(1, dtype=dtype)
            if self.stimulus is None
            else self.stimulus.time_course(n_steps, self.dt_ms).astype(dtype)
        )
        inputs = KernelInputs(
            x0=x0,
            P=P,
            indptr=plan.indptr,
            split=plan.split,
            indices=plan.indices,
            weights=plan.weights.astype(dtype),
            back=plan.back,
            rowsum=self.connectome.weights.sum(axis=1).astype(dtype),
            sigma=sigma,
            dt=dt,
            nsteps=n_steps,
            seed_lo=np.uint64(seed_lo),
            seed_hi=np.uint64(seed_hi),
            sim0=np.uint64(first_sim),
            n_cut=n_cut,
            decim=decim,
            out_mon=out_mon,
            bold_decim=bold_decim,
            tr_decim=tr_decim,
            q_cut=q_cut,
            bold_dt=dtype.type(bold.dt_ms / 1000.0 if bold else 1.0),
            bc=bc,
            out_bold=out_bold,
            stim=stim,
            tables=self.model.table_values(dtype.type),
            H=plan.ring,
            T=plan.block,
        )
        return inputs

    def _parameters(self, params: dict, n_sims: int, n_padded: int, dtype) -> np.ndarray:
        """The kernel's (param, node, padded sim) array: the model's parameters, G, and with
        a stimulus its amplitude times the regions' weights (popped from ``params``)."""
        amplitude = params.pop(STIMULUS_AMPLITUDE, None)
        n = self.connectome.n_nodes
        P = param_array(self.model, params, n, n_sims, n_padded, dtype)
        if self.stimulus is None:
            if amplitude is not None:
                raise ValueError(f"{STIMULUS_AMPLITUDE!r} given, but the simulation has no stimulus")
            return P
        values = (
            broadcast_param(STIMULUS_AMPLITUDE, self.stimulus.amplitude if amplitude is None else amplitude, n, n_sims)
            * self.stimulus.spatial(n)[:, None]
        )
        row = np.empty((1, n, n_padded), dtype=dtype)
        row[0, :, :n_sims] = values
        row[0, :, n_sims:] = values[:, :1]
        return np.concatenate([P, row])

    def run(
        self,
        params: Mapping | None = None,
        *,
        n_sims: int | None = None,
        seed: int = 0,
        first_sim: int = 0,
        threads: int | None = None,
        backend: str = "cpu",
    ) -> xr.Dataset:
        """Simulate a batch; parameters default to the model's (see :func:`broadcast_param`).

        Returns an ``xarray.Dataset`` with one variable per observable (sim, time, node),
        ``bold`` (sim, time_bold, node) and ``eeg``/``meg`` (sim, time, sensor) as monitored.
        Swept parameters (those whose value differs between simulations) are coordinates:
        on ``sim`` when the value is the same for every region (``ds.sel(sim=ds.G > 0.5)``,
        ``ds.swap_dims(sim="G")``), on ``(sim, node)`` otherwise.
        """
        params = dict(params or {})
        arrays = self.run_arrays(
            params, n_sims=n_sims, seed=seed, first_sim=first_sim, threads=threads, backend=backend
        )
        ds = self.to_dataset(arrays, first_sim=first_sim)
        return ds.assign_coords(self._swept(params, ds.sizes["sim"]))

    def _swept(self, params: Mapping, n_sims: int) -> dict[str, tuple]:
        """Coordinates of the parameters that differ between simulations."""
        n, units = self.connectome.n_nodes, {p.name: p.unit for p in self.model.all_params}
        coords = {}
        for name, value in params.items():
            values = broadcast_param(name, value, n, n_sims)  # (node, sim)
            if (values == values[:, :1]).all():
                continue  # the same in every simulation: not swept
            attrs = {"units": units.get(name, ""), "description": "swept parameter"}
            if (values == values[:1]).all():
                coords[name] = ("sim", values[0].copy(), attrs)
            else:
                coords[name] = (("sim", "node"), values.T.copy(), attrs)
        return coords

    def to_dataset(self, arrays: Mapping[str, np.ndarray], *, first_sim: int = 0) -> xr.Dataset:
        model, c = self.model, self.connectome
        sampled, bold = self.sampled_monitor, self.bold_monitor
        n_sims = arrays["sampled"].shape[-1] if sampled else arrays["bold"].shape[-1] if bold else 0
        coords = {"sim": first_sim + np.arange(n_sims), "node": np.array(c.labels, dtype=object)}
        data = {}
        for monitor in self.sampled_monitors:
            x = np.moveaxis(arrays["sampled"], -1, 0)  # (sim, time, obs, node)
            coords["time"] = ("time", self.sample_times_ms(), {"units": "ms"})
            if isinstance(monitor, (EEG, MEG)):
                name = type(monitor).__name__.lower()
                both = sum(isinstance(m, (EEG, MEG)) for m in self.sampled_monitors) > 1
                dim = f"{name}_sensor" if both else "sensor"  # EEG and MEG have their own sensors
                data[name] = (
                    ("sim", "time", dim),
                    self.project(monitor, arrays["sampled"]),
                    {"units": "V" if name == "eeg" else "T"},
                )
                if monitor.sensor_labels is not None:
                    coords[dim] = np.array(monitor.sensor_labels, dtype=object)
            else:
                for k, obs in enumerate(model.observed):
                    unit = next((s.unit for s in model.states if s.name == obs), "")
                    data[obs] = (("sim", "time", "node"), x[:, :, k, :], {"units": unit})
        if bold is not None:
            b = np.moveaxis(arrays["bold"], -1, 0)
            coords["time_bold"] = ("time_bold", self.bold_times_ms(), {"units": "ms"})
            data["bold"] = (("sim", "time_bold", "node"), b, {"units": "fractional signal change"})
        attrs = {
            "model": model.name,
            "dt_ms": self.dt_ms,
            "integrator": self.integrator,
            "coupling": self.coupling,
            "connectome": c.name,
            "connectome_hash": c.hash(),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def simulate(
    model: ModelSpec | str, params: Mapping | None = None, *, seed: int = 0, n_sims: int | None = None, **config
) -> xr.Dataset:
    """One-call simulation: ``Simulation(model, **config).run(params, seed=seed)``."""
    return Simulation(model, **config).run(params, n_sims=n_sims, seed=seed)
