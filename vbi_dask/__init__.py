"""vbi-dask: fast, reproducible, distributed simulation-based inference on virtual brains.

Data flows one way: model spec -> simulation -> (Dask graph of chunks) -> Numba kernel ->
features -> Zarr store -> training -> posterior.
"""

from importlib.metadata import PackageNotFoundError, version

from . import _config  # noqa: F401 - registers the vbi_dask.* Dask settings
from .connectome import Connectome, default_connectome, load_connectome, load_tvb_zip
from .models import MODELS, ModelSpec, get_model
from .monitors import EEG, MEG, Bold, Raw, TemporalAverage
from .simulation import Simulation, simulate
from .prior import Grid, Prior
from .budget import Budget, BudgetSummary
from .configuration import budget_from_config
from .external import ExternalBudget, ExternalSimulator
from .sequential import round_posterior, run_sequential
from .evolution import FeatureLoss, evolve
from .gradient import TorchSimulator, fit_fc
from .store import open_store
from .cluster import close_client, get_client

try:
    __version__ = version("vbi-dask")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "Connectome",
    "default_connectome",
    "load_connectome",
    "load_tvb_zip",
    "MODELS",
    "ModelSpec",
    "get_model",
    "Raw",
    "TemporalAverage",
    "Bold",
    "EEG",
    "MEG",
    "Simulation",
    "simulate",
    "Prior",
    "Grid",
    "Budget",
    "BudgetSummary",
    "budget_from_config",
    "open_store",
    "ExternalBudget",
    "ExternalSimulator",
    "run_sequential",
    "round_posterior",
    "evolve",
    "FeatureLoss",
    "TorchSimulator",
    "fit_fc",
    "get_client",
    "close_client",
    "__version__",
]
