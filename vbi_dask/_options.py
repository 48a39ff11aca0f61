"""Options declared once: a dataclass field carries its default, its help and how the
command line reads it, and everything else derives from it.

- Python: the dataclass is the settings object; a function taking its options as
  keywords gets them checked by :func:`from_mapping` and its signature from
  :func:`keyword_signature` (``help()`` and IDEs show the dataclass's defaults).
- YAML: a mapping of field names, read by :func:`from_mapping` (unknown keys refused
  with the valid ones listed).
- Command line: :func:`add_flags` adds ``--field-name`` for each field declared with a
  help text, its default shown from the dataclass; :func:`given` returns the flags the
  user gave, so that the dataclass's defaults apply to the rest.

The names are the same everywhere: ``batch_size`` is ``--batch-size`` and ``batch_size:``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any, Callable, Collection, Mapping

__all__ = ["option", "flag_name", "add_flags", "given", "from_mapping", "keyword_signature", "defaults"]


def option(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: Collection[str] | None = None,
    nargs: str | None = None,
    metavar: str | None = None,
    flag: bool = True,
) -> Any:
    """A dataclass field with its command-line form: ``help`` (the default is appended),
    ``parse`` (argparse's ``type``), ``choices``, ``nargs``, ``metavar``; ``flag=False``:
    not on the command line (a Python object, or a flag the command spells otherwise)."""
    metadata = {
        "help": help,
        "parse": parse,
        "choices": tuple(choices) if choices else None,
        "nargs": nargs,
        "metavar": metavar,
        "flag": flag,
    }
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(name: str) -> str:
    """A field's command-line flag: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def defaults(cls: type) -> dict[str, Any]:
    """The fields of dataclass ``cls`` and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_flags(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    dest: str = "",
) -> list[str]:
    """Add a flag for each field of ``cls`` declared with :func:`option` (``flag=True``),
    restricted to ``only`` and without ``skip``; return the fields added. A flag not given
    leaves no attribute on the namespace (see :func:`given`). Its value goes to attribute
    ``dest + field name`` (a prefix keeps the fields apart from a command's own
    arguments of the same name)."""
    added = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("flag") or f.name in skip or (only is not None and f.name not in only):
            continue
        kwargs: dict[str, Any] = {
            "dest": dest + f.name,
            "default": argparse.SUPPRESS,
            "help": f"{meta['help']} (default: {_shown(f.default)})",
        }
        for key, name in (("parse", "type"), ("choices", "choices"), ("nargs", "nargs"), ("metavar", "metavar")):
            if meta.get(key) is not None:
                kwargs[name] = meta[key]
        if "metavar" not in kwargs and "choices" not in kwargs:
            kwargs["metavar"] = f.name.upper()
        parser.add_argument(flag_name(f.name), **kwargs)
        added.append(f.name)
    return added


def given(args: argparse.Namespace, cls: type, *, dest: str = "") -> dict[str, Any]:
    """The fields of ``cls`` whose flags (added with the same ``dest`` prefix) were given
    on the command line, with their values."""
    return {f.name: getattr(args, dest + f.name) for f in dataclasses.fields(cls) if hasattr(args, dest + f.name)}


def from_mapping(cls: type, mapping: Mapping[str, Any], what: str, *, allowed: Collection[str] | None = None) -> Any:
    """``cls(**mapping)``, refusing keys that are not its fields (or not in ``allowed``).

    Raises
    ------
    ValueError
        Unknown keys (the message names them and lists the valid ones), or not a mapping.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{what} must be a mapping of option -> value, got {type(mapping).__name__}")
    names = [f.name for f in dataclasses.fields(cls)] if allowed is None else list(allowed)
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; valid: {', '.join(names)}")
    return cls(**dict(mapping))


def keyword_signature(function: Callable, cls: type) -> inspect.Signature:
    """``function``'s signature with its ``**options`` replaced by the fields of ``cls``
    as keyword-only parameters with the dataclass's defaults (set as ``__signature__``)."""
    signature = inspect.signature(function)
    before = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in before}
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[name])
        for name, default in defaults(cls).items()
        if name not in names
    ]
    return signature.replace(parameters=before + extra)
