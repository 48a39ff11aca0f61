"""Monitors: what a simulation records.

Raw and TemporalAverage sample the model's observables; Bold integrates the
Balloon-Windkessel model on its own step; EEG/MEG project an observable through a
lead-field (gain) matrix. At most one sampled monitor (Raw, TemporalAverage, EEG or MEG)
per simulation: its samples are computed inside the kernel.
"""

from ._monitors import Bold, EEG, MEG, Monitor, Raw, TemporalAverage, monitor_from_dict, monitor_to_dict
from .leadfield import eeg_leadfield_sphere, leadfield_from_mne, meg_leadfield_sphere, sensors_on_sphere

__all__ = [
    "monitor_to_dict",
    "monitor_from_dict",
    "Monitor",
    "Raw",
    "TemporalAverage",
    "Bold",
    "EEG",
    "MEG",
    "eeg_leadfield_sphere",
    "leadfield_from_mne",
    "meg_leadfield_sphere",
    "sensors_on_sphere",
]
