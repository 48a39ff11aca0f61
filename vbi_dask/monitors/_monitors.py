"""Monitor descriptions (frozen dataclasses; the kernel does the work)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.bold import BALLOON_DEFAULTS

__all__ = ["Monitor", "Raw", "TemporalAverage", "Bold", "EEG", "MEG", "monitor_to_dict", "monitor_from_dict"]


def _positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of ms, got {value!r}")


class Monitor:
    """Base of all monitors (abstract)."""


@dataclass(frozen=True)
class Raw(Monitor):
    """Instantaneous observables every ``period_ms`` (decimation of the integration)."""

    period_ms: float = 1.0

    def __post_init__(self):
        _positive("Raw.period_ms", self.period_ms)


@dataclass(frozen=True)
class TemporalAverage(Monitor):
    """Observables averaged over consecutive windows of ``period_ms``."""

    period_ms: float = 1.0

    def __post_init__(self):
        _positive("TemporalAverage.period_ms", self.period_ms)


@dataclass(frozen=True)
class Bold(Monitor):
    """BOLD signal of each region from the Balloon-Windkessel model.

    The neural observable ``variable`` (default: the model's first observable) is
    averaged over each haemodynamic step ``dt_ms`` and drives the Balloon-Windkessel
    equations, integrated with Heun's method on that step (in seconds, with the standard
    constants of Stephan et al. 2007 unless overridden, see ``BALLOON_DEFAULTS``); the signal is sampled every
    ``tr_ms``. ``scale`` multiplies the neural input (units: 1/s per observable unit).
    """

    tr_ms: float = 720.0
    dt_ms: float = 1.0
    variable: str | None = None
    scale: float = 1.0
    constants: dict = field(default_factory=dict)

    def __post_init__(self):
        _positive("Bold.tr_ms", self.tr_ms)
        _positive("Bold.dt_ms", self.dt_ms)
        ratio = self.tr_ms / self.dt_ms
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(f"Bold.tr_ms ({self.tr_ms}) must be a multiple of Bold.dt_ms ({self.dt_ms})")
        unknown = set(self.constants) - set(BALLOON_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown Balloon constant(s) {sorted(unknown)}; valid: {sorted(BALLOON_DEFAULTS)}")

    def __hash__(self):
        return hash((self.tr_ms, self.dt_ms, self.variable, self.scale, tuple(sorted(self.constants.items()))))


@dataclass(frozen=True, eq=False)
class _Projection(Monitor):
    gain: np.ndarray | None = None
    period_ms: float = 1.0
    variable: str | None = None
    sensor_labels: tuple[str, ...] | None = None

    def __post_init__(self):
        _positive(f"{type(self).__name__}.period_ms", self.period_ms)
        if self.gain is not None:
            gain = np.asarray(self.gain, dtype=np.float64)
            if gain.ndim != 2:
                raise ValueError(f"{type(self).__name__}.gain must be a (sensor, node) matrix, got shape {gain.shape}")
            if not np.all(np.isfinite(gain)):
                raise ValueError(f"{type(self).__name__}.gain has {int(np.sum(~np.isfinite(gain)))} non-finite entries")
            object.__setattr__(self, "gain", gain)

    def project(self, x: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """(sim, time, node) -> (sim, time, sensor): ``gain @ x`` per sample (any reference,
        e.g. the sphere lead field's average reference, is in the gain)."""
        return np.einsum("stn,kn->stk", x, gain, optimize=True)


@dataclass(frozen=True, eq=False)
class EEG(_Projection):
    """Scalp potentials: ``gain @ observable`` sampled as a temporal average every ``period_ms``.

    ``gain`` (sensor x node, V per unit of the observable) is user supplied, or computed
    from the connectome's region centres with :func:`eeg_leadfield_sphere` (radial
    dipoles in a homogeneous sphere, sensors on its scalp).
    """


@dataclass(frozen=True, eq=False)
class MEG(_Projection):
    """Radial magnetic field: ``gain @ observable``; ``gain`` from :func:`meg_leadfield_sphere`
    needs dipole orientations (e.g. a TVB connectome's average orientations) or is user supplied."""


_TYPES = {cls.__name__: cls for cls in (Raw, TemporalAverage, Bold, EEG, MEG)}


def monitor_to_dict(monitor: Monitor) -> dict:
    """A JSON-able description of a monitor."""
    out = {"type": type(monitor).__name__}
    for name in monitor.__dataclass_fields__:
        value = getattr(monitor, name)
        out[name] = (
            value.tolist() if isinstance(value, np.ndarray) else (list(value) if isinstance(value, tuple) else value)
        )
    return out


def monitor_from_dict(spec: dict) -> Monitor:
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in _TYPES:
        raise ValueError(f"unknown monitor type {kind!r}; valid: {list(_TYPES)}")
    if spec.get("sensor_labels") is not None:
        spec["sensor_labels"] = tuple(spec["sensor_labels"])
    return _TYPES[kind](**spec)
