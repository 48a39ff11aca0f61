"""Package settings, in Dask's configuration under ``vbi_dask.*``.

=========================  =========  ==================================================
key                        default    meaning
=========================  =========  ==================================================
``vbi_dask.cache-dir``     None       folder of compiled kernels (None:
                                      ``~/.cache/vbi_dask/kernels``)
``vbi_dask.chunk-size``    64         simulations per block of a :class:`Budget` that
                                      does not give ``chunk_size``
``vbi_dask.store-lease``   120        seconds without a refresh after which a store's
                                      claim from another host is stale
=========================  =========  ==================================================

Set them like any Dask setting: ``dask.config.set({"vbi_dask.chunk-size": 32})``, a YAML
file in ``~/.config/dask/`` (``vbi_dask: {chunk-size: 32}``), or the environment
(``DASK_VBI_DASK__CHUNK_SIZE=32``, read when Dask is imported). The environment variable
``VBI_DASK_CACHE_DIR`` overrides ``cache-dir`` (it is read where no Dask is imported:
the kernels, and Dask workers started before the configuration was set).
"""

from __future__ import annotations

from typing import Any

import dask.config

__all__ = ["DEFAULTS", "get"]

DEFAULTS: dict[str, Any] = {"cache-dir": None, "chunk-size": 64, "store-lease": 120.0}

dask.config.update_defaults({"vbi_dask": dict(DEFAULTS)})


def get(key: str) -> Any:
    """The setting ``vbi_dask.<key>`` (see the table above)."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown vbi_dask setting {key!r}; valid: {', '.join(DEFAULTS)}")
    return dask.config.get(f"vbi_dask.{key}", DEFAULTS[key])


def _cache_dir() -> str | None:
    return get("cache-dir")


def _install() -> None:
    from .kernels import _codegen

    _codegen.CACHE_DIR_SETTING = _cache_dir


_install()
