"""Feature extraction: pure, batched functions of signals shaped (sim, time, node).

Every feature returns ``(values, names)`` with values shaped (sim, k), so features
concatenate into one (sim, feature) matrix; :class:`FeatureSet` does that from a list
declared in code or YAML. Inputs are NumPy (or CuPy) arrays shaped (sim, time, node),
or DataArrays with dims ``sim``, ``time``, ``node`` (time coordinate in ms).
"""

from ._xp import array_namespace
from .fc import fc, fc_corr, fc_distance, fc_matrix, homotopic_fc, homotopic_pairs
from .fcd import fcd, fcd_matrix, window_fc
from .featureset import FEATURES, Feature, FeatureSet, FeatureSpec
from .moments import moments
from .raw import raw
from .spectral import DEFAULT_BANDS, psd, welch_psd
from .sync import analytic_signal, kuramoto_order

__all__ = [
    "array_namespace",
    "fc",
    "fc_matrix",
    "fc_corr",
    "fc_distance",
    "homotopic_fc",
    "homotopic_pairs",
    "fcd",
    "fcd_matrix",
    "window_fc",
    "psd",
    "welch_psd",
    "DEFAULT_BANDS",
    "moments",
    "raw",
    "analytic_signal",
    "kuramoto_order",
    "Feature",
    "FEATURES",
    "FeatureSpec",
    "FeatureSet",
]
