"""Stimuli: time-dependent input to chosen regions and one state of a model.

>>> stim = Stimulus(Pulses(onset_ms=500.0, width_ms=10.0, period_ms=100.0, count=5), state="v",
...                 nodes=[4, 12], amplitude=2.0)
>>> sim = Simulation("mpr", stimulus=stim, duration_ms=2000.0)
>>> ds = sim.run({"G": 0.4, "stimulus_amplitude": [0.5, 1.0, 2.0]})   # amplitude per simulation

The input is added to the derivative of ``state``, as The Virtual Brain does:
``d state_i / dt = f(...) + amplitude * weight_i * pattern(t)``, in the state's units per
model time unit (per ms for most models, per s for the Hopf model). ``weight`` is 1 on
``nodes`` (or the given per-node weights) and 0 elsewhere.

The pattern is sampled at every integration step's time ``t_n = n dt`` (Euler, and
Heun's predictor) and ``t_{n+1}`` (Heun's corrector): both shells, CPU and CUDA, read
the same array, so the stimulus is exactly the same on every backend and chunking. A
stimulus has no randomness of its own.

Inference: the amplitude may vary per simulation: name ``stimulus_amplitude`` in a
prior (``Prior({"stimulus_amplitude": (0, 2)}, model="mpr", n_nodes=84)``) or in the
parameters of a run; it multiplies the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Pulses", "Sinusoid", "Samples", "Stimulus", "STIMULUS_AMPLITUDE", "stimulus_from_dict"]

STIMULUS_AMPLITUDE = "stimulus_amplitude"


def _positive(name: str, value: float, *, zero: bool = False) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} number of ms, got {value!r}")
    return value


@dataclass(frozen=True)
class Pulses:
    """Rectangular pulses of height 1: ``width_ms`` long, starting at ``onset_ms`` and every
    ``period_ms`` after it, ``count`` of them (None: until the end; one pulse without a period)."""

    onset_ms: float
    width_ms: float
    period_ms: float | None = None
    count: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "onset_ms", _positive("onset_ms", self.onset_ms, zero=True))
        object.__setattr__(self, "width_ms", _positive("width_ms", self.width_ms))
        if self.period_ms is not None:
            object.__setattr__(self, "period_ms", _positive("period_ms", self.period_ms))
            if self.width_ms > self.period_ms:
                raise ValueError(f"width_ms ({self.width_ms}) exceeds period_ms ({self.period_ms})")
        if self.count is not None and (isinstance(self.count, bool) or int(self.count) != self.count or self.count < 1):
            raise ValueError(f"count must be a positive integer or None, got {self.count!r}")

    def __call__(self, t_ms: np.ndarray) -> np.ndarray:
        since = np.asarray(t_ms, dtype=np.float64) - self.onset_ms
        if self.period_ms is None:
            index, phase = np.zeros_like(since), since
        else:
            index, phase = np.floor(since / self.period_ms), np.mod(since, self.period_ms)
        on = (since >= 0) & (phase < self.width_ms)
        if self.count is not None:
            on &= index < self.count
        return on.astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "pulses",
            "onset_ms": self.onset_ms,
            "width_ms": self.width_ms,
            "period_ms": self.period_ms,
            "count": self.count,
        }


@dataclass(frozen=True)
class Sinusoid:
    """``sin(2 pi f (t - onset) + phase)`` from ``onset_ms`` for ``duration_ms`` (None: to the end)."""

    frequency_hz: float
    phase: float = 0.0
    onset_ms: float = 0.0
    duration_ms: float | None = None

    def __post_init__(self):
        if not (np.isfinite(self.frequency_hz) and self.frequency_hz > 0):
            raise ValueError(f"frequency_hz must be positive, got {self.frequency_hz!r}")
        object.__setattr__(self, "onset_ms", _positive("onset_ms", self.onset_ms, zero=True))
        if self.duration_ms is not None:
            object.__setattr__(self, "duration_ms", _positive("duration_ms", self.duration_ms))

    def __call__(self, t_ms: np.ndarray) -> np.ndarray:
        since = np.asarray(t_ms, dtype=np.float64) - self.onset_ms
        on = since >= 0
        if self.duration_ms is not None:
            on &= since < self.duration_ms
        return np.where(on, np.sin(2 * np.pi * self.frequency_hz * since / 1000.0 + self.phase), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "sinusoid",
            "frequency_hz": self.frequency_hz,
            "phase": self.phase,
            "onset_ms": self.onset_ms,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Samples:
    """A user's time course ``values`` sampled every ``dt_ms`` from ``onset_ms``, linearly
    interpolated to the integration times; 0 before the first and after the last sample."""

    values: Sequence[float]
    dt_ms: float
    onset_ms: float = 0.0

    def __post_init__(self):
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1 or values.size < 2 or not np.isfinite(values).all():
            raise ValueError(f"values must be a 1-D series of at least 2 finite numbers, got shape {values.shape}")
        object.__setattr__(self, "values", tuple(values.tolist()))
        object.__setattr__(self, "dt_ms", _positive("dt_ms", self.dt_ms))
        object.__setattr__(self, "onset_ms", _positive("onset_ms", self.onset_ms, zero=True))

    def __call__(self, t_ms: np.ndarray) -> np.ndarray:
        times = self.onset_ms + self.dt_ms * np.arange(len(self.values))
        return np.interp(np.asarray(t_ms, dtype=np.float64), times, np.asarray(self.values), left=0.0, right=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "samples", "values": list(self.values), "dt_ms": self.dt_ms, "onset_ms": self.onset_ms}


_PATTERNS = {"pulses": Pulses, "sinusoid": Sinusoid, "samples": Samples}


@dataclass(frozen=True)
class Stimulus:
    """Input ``amplitude * weight_i * pattern(t)`` to the derivative of ``state``.

    Parameters
    ----------
    pattern : :class:`Pulses`, :class:`Sinusoid` or :class:`Samples` (or its dict).
    state : the model state receiving the input (checked by the simulation).
    nodes : indices of the stimulated regions (weight 1), or
    weights : one weight per region (the connectome's order); give one of the two.
    amplitude : default amplitude; ``stimulus_amplitude`` in a run's parameters or a
        prior replaces it per simulation.
    """

    pattern: Pulses | Sinusoid | Samples
    state: str
    nodes: Sequence[int] | None = None
    weights: Sequence[float] | None = None
    amplitude: float = 1.0

    def __post_init__(self):
        if isinstance(self.pattern, Mapping):
            spec = dict(self.pattern)
            kind = spec.pop("kind", None)
            if kind not in _PATTERNS:
                raise ValueError(f"unknown stimulus pattern {kind!r}; valid: {', '.join(_PATTERNS)}")
            object.__setattr__(self, "pattern", _PATTERNS[kind](**spec))
        if not isinstance(self.pattern, tuple(_PATTERNS.values())):
            raise TypeError(f"pattern must be Pulses, Sinusoid or Samples, got {type(self.pattern).__name__}")
        if (self.nodes is None) == (self.weights is None):
            raise ValueError("give the stimulated regions as nodes=[...] or weights=[one per region] (one of them)")
        if self.nodes is not None:
            nodes = tuple(int(k) for k in np.atleast_1d(self.nodes))
            if not nodes or len(set(nodes)) != len(nodes) or min(nodes) < 0:
                raise ValueError(f"nodes must be distinct non-negative region indices, got {self.nodes!r}")
            object.__setattr__(self, "nodes", nodes)
        else:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.ndim != 1 or not np.isfinite(weights).all():
                raise ValueError("weights must be one finite number per region")
            object.__setattr__(self, "weights", tuple(weights.tolist()))
        if not np.isfinite(self.amplitude):
            raise ValueError(f"amplitude must be finite, got {self.amplitude!r}")
        object.__setattr__(self, "amplitude", float(self.amplitude))

    def spatial(self, n_nodes: int) -> np.ndarray:
        """Weights (node,) float64, checked against the number of regions."""
        if self.nodes is not None:
            if max(self.nodes) >= n_nodes:
                raise ValueError(f"stimulus nodes {list(self.nodes)} outside the connectome's {n_nodes} regions")
            out = np.zeros(n_nodes)
            out[list(self.nodes)] = 1.0
            return out
        if len(self.weights) != n_nodes:
            raise ValueError(f"stimulus weights have {len(self.weights)} values, the connectome {n_nodes} regions")
        return np.asarray(self.weights)

    def time_course(self, n_steps: int, dt_ms: float) -> np.ndarray:
        """The pattern at the integration times ``n dt`` for ``n = 0 .. n_steps`` (float64)."""
        return self.pattern(np.arange(n_steps + 1) * dt_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern.to_dict(),
            "state": self.state,
            "nodes": None if self.nodes is None else list(self.nodes),
            "weights": None if self.weights is None else list(self.weights),
            "amplitude": self.amplitude,
        }


def stimulus_from_dict(data: Mapping[str, Any] | Stimulus | None) -> Stimulus | None:
    """A :class:`Stimulus` from :meth:`Stimulus.to_dict` (or a configuration mapping)."""
    if data is None or isinstance(data, Stimulus):
        return data
    unknown = sorted(set(data) - {"pattern", "state", "nodes", "weights", "amplitude"})
    if unknown:
        raise ValueError(f"unknown stimulus key(s) {unknown}; valid: pattern, state, nodes, weights, amplitude")
    return Stimulus(**dict(data))
