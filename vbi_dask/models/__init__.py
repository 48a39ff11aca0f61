"""The model registry: one file per model, one line here."""

from ._spec import TABLES, Equations, ModelSpec, Param, State, no_jit
from .aln import ALN
from .coombes_byrne import COOMBES_BYRNE
from .epileptor import EPILEPTOR
from .epileptor2d import EPILEPTOR2D
from .fitzhugh_nagumo import FITZHUGH_NAGUMO
from .generic2d import GENERIC2D
from .hopf import HOPF
from .jansen_rit import JANSEN_RIT
from .kuramoto import KURAMOTO
from .larter_breakspear import LARTER_BREAKSPEAR
from .mpr import MPR
from .stuart_landau import STUART_LANDAU
from .wilson_cowan import WILSON_COWAN
from .wong_wang import WONG_WANG
from .wong_wang_ei import WONG_WANG_EI

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        MPR,
        JANSEN_RIT,
        WILSON_COWAN,
        STUART_LANDAU,
        HOPF,
        WONG_WANG,
        WONG_WANG_EI,
        EPILEPTOR2D,
        EPILEPTOR,
        KURAMOTO,
        GENERIC2D,
        FITZHUGH_NAGUMO,
        COOMBES_BYRNE,
        LARTER_BREAKSPEAR,
        ALN,
    )
}


def get_model(model: "str | ModelSpec") -> ModelSpec:
    """A registered model by name (or the spec itself)."""
    if isinstance(model, ModelSpec):
        return model
    try:
        return MODELS[model]
    except KeyError:
        raise KeyError(f"unknown model {model!r}; registered models: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "get_model", "ModelSpec", "State", "Param", "Equations", "no_jit", "TABLES"]
