"""Connectome: structural weights, tract lengths, labels and centres; loaders; validation.

Convention: ``weights[i, j]`` is the connection from node ``j`` to node ``i`` (row ``i``
holds the afferents of node ``i``): node ``i`` receives ``sum_j weights[i, j] x_j``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Connectome",
    "NORMALISATIONS",
    "default_connectome",
    "load_connectome",
    "load_matrix",
    "load_mrtrix",
    "load_tvb_zip",
]

NORMALISATIONS = ("max", "rows", "log", "none")
PathLike = str | os.PathLike
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress}
_TVB_PARTS = ("weights", "tract_lengths", "centres", "cortical")


def _where(mask: np.ndarray) -> str:
    """The count of True entries of ``mask`` and the first few of their indices."""
    idx = np.argwhere(mask)
    shown = ", ".join(str(tuple(int(k) for k in row)) for row in idx[:5])
    return f"{len(idx)} entr{'y' if len(idx) == 1 else 'ies'} at {shown}{', ...' * (len(idx) > 5)}"


def _array(value, field: str, shape: tuple[int, ...] | None, ref: str = "", nonnegative: bool = True) -> np.ndarray:
    """A validated read-only float64 copy of ``value``."""
    try:
        array = np.array(value, dtype=np.float64) + 0.0  # a copy; -0.0 -> 0.0 (stable hash)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} must be a numeric array: {error}") from None
    if shape is not None and array.shape != shape:
        raise ValueError(f"{field} has shape {array.shape}, expected {shape} {ref}")
    if not np.isfinite(array).all():
        raise ValueError(f"{field} contains NaN or inf: {_where(~np.isfinite(array))}")
    if nonnegative and (array < 0).any():
        raise ValueError(f"{field} must be non-negative: {_where(array < 0)}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Connectome:
    """A structural connectome of ``N`` nodes (brain regions).

    Parameters
    ----------
    weights : (N, N) array_like
        Connection strengths (dimensionless); ``weights[i, j]`` is j -> i. Finite and
        non-negative; asymmetry, self-connections and nodes without inputs are allowed.
    tract_lengths_mm : (N, N) array_like or None
        Fibre tract lengths in mm (finite, non-negative); needed for delays.
    labels : sequence of str or None
        Unique node names; ``None`` gives ``"r0" .. "r{N-1}"``.
    centres_mm : (N, 3) array_like or None
        Node centres (x, y, z) in mm.
    cortical : (N,) array_like of bool or None
        True for cortical nodes.
    name : str
        A human-readable name (not part of :meth:`hash`).

    Raises
    ------
    ValueError
        If a field has the wrong shape or NaN / inf / negative entries (the message says
        which), or labels repeat. Arrays are stored as read-only copies.
    """

    weights: np.ndarray
    tract_lengths_mm: np.ndarray | None = None
    labels: tuple[str, ...] | None = None
    centres_mm: np.ndarray | None = None
    cortical: np.ndarray | None = None
    name: str = "connectome"

    def __post_init__(self) -> None:
        weights = _array(self.weights, "weights", None)
        shape = weights.shape
        if len(shape) != 2:
            raise ValueError(f"weights must be a 2-D (node, node) matrix, got shape {shape}")
        if shape[0] != shape[1]:
            raise ValueError(f"weights must be square, got shape {shape}")
        if shape[0] == 0:
            raise ValueError("weights must have at least one node, got shape (0, 0)")
        n, ref = shape[0], f"from weights of shape {shape}"
        set_field = object.__setattr__  # the dataclass is frozen
        set_field(self, "weights", weights)
        if self.tract_lengths_mm is not None:
            lengths = _array(self.tract_lengths_mm, "tract_lengths_mm", shape, ref)
            set_field(self, "tract_lengths_mm", lengths)
        if self.centres_mm is not None:
            centres = _array(self.centres_mm, "centres_mm", (n, 3), ref, nonnegative=False)
            set_field(self, "centres_mm", centres)

        if isinstance(self.labels, str):
            raise ValueError(f"labels must be a sequence of str, got the str {self.labels!r}")
        labels = tuple(f"r{i}" for i in range(n)) if self.labels is None else tuple(self.labels)
        if len(labels) != n:
            raise ValueError(f"labels has shape ({len(labels)},), expected ({n},) {ref}")
        if not all(isinstance(label, str) for label in labels):
            kinds = sorted({type(label).__name__ for label in labels})
            raise ValueError(f"labels must be str, got types {kinds}")
        if len(set(labels)) != n:
            repeated = sorted({label for label in labels if labels.count(label) > 1})
            raise ValueError(f"labels must be unique, duplicated: {repeated[:5]}")
        set_field(self, "labels", tuple(str(label) for label in labels))

        if self.cortical is not None:
            cortical = np.array(self.cortical)
            if cortical.shape != (n,):
                raise ValueError(f"cortical has shape {cortical.shape}, expected ({n},) {ref}")
            if cortical.dtype != bool and not np.isin(cortical, (0, 1)).all():
                values = np.unique(cortical)[:5]
                raise ValueError(f"cortical must be bool or 0/1, got values {values}")
            cortical = cortical.astype(bool)
            cortical.setflags(write=False)
            set_field(self, "cortical", cortical)
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a str, got {type(self.name).__name__}")

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return self.weights.shape[0]

    @property
    def symmetric(self) -> bool:
        """Whether ``weights`` equals its transpose (relative tolerance 1e-9)."""
        w = self.weights
        return bool(np.allclose(w, w.T, rtol=1e-9, atol=1e-12 * float(w.max())))

    def normalised(self, kind: str) -> Connectome:
        """A copy with normalised weights (an all-zero matrix stays zero).

        Parameters
        ----------
        kind : {"max", "rows", "log", "none"}
            ``"max"``: divide by the largest weight. ``"rows"``: each row (a node's
            inputs) sums to 1; zero rows stay zero. ``"log"``: ``log1p(w)`` divided by its
            maximum. ``"none"``: unchanged.

        Raises
        ------
        ValueError
            If ``kind`` is not one of :data:`NORMALISATIONS`.
        """
        w = self.weights
        if kind == "max":
            w = w / w.max() if w.max() > 0 else w
        elif kind == "rows":
            sums = w.sum(axis=1, keepdims=True)
            w = np.divide(w, sums, out=np.zeros_like(w), where=sums > 0)
        elif kind == "log":
            w = np.log1p(w)
            w = w / w.max() if w.max() > 0 else w
        elif kind != "none":
            valid = ", ".join(NORMALISATIONS)
            raise ValueError(f"unknown normalisation {kind!r}; valid kinds: {valid}")
        return replace(self, weights=w)

    def _index(self, node: int | str, what: str) -> int:
        if isinstance(node, str):
            if node not in self.labels:
                start = list(self.labels[:5])
                raise ValueError(f"unknown {what} label {node!r}; labels start {start}")
            return self.labels.index(node)
        if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
            raise ValueError(f"{what} must be an int index or a str label, got {node!r}")
        if not 0 <= node < self.n_nodes:
            raise ValueError(f"{what} index {node} out of range [0, {self.n_nodes})")
        return int(node)

    def lesion(self, nodes: Iterable[int | str] = (), edges: Iterable[tuple[int | str, int | str]] = ()) -> Connectome:
        """A copy with nodes removed and/or directed edges cut.

        Parameters
        ----------
        nodes : iterable of int or str
            Nodes to remove (index or label): rows, columns, labels, centres, flags.
        edges : iterable of (i, j) pairs of int or str
            Edges j -> i whose ``weights[i, j]`` is set to 0, indexed as in ``self``
            (before removing ``nodes``). Tract lengths are geometry and are kept.

        Raises
        ------
        ValueError
            For an unknown label, an index out of range, an edge that is not a pair, or
            a lesion of every node.
        """
        weights = self.weights.copy()
        for edge in edges:
            if isinstance(edge, str) or len(edge) != 2:
                raise ValueError(f"edges must be (i, j) pairs, got {edge!r}")
            weights[self._index(edge[0], "edge"), self._index(edge[1], "edge")] = 0.0
        removed = {self._index(node, "node") for node in nodes}
        if len(removed) == self.n_nodes:
            raise ValueError(f"lesion would remove all {self.n_nodes} nodes")
        keep = np.array([i for i in range(self.n_nodes) if i not in removed], dtype=np.intp)
        square = np.ix_(keep, keep)
        subset = lambda array, index: None if array is None else array[index]  # noqa: E731
        return replace(
            self,
            weights=weights[square],
            labels=tuple(self.labels[i] for i in keep),
            tract_lengths_mm=subset(self.tract_lengths_mm, square),
            centres_mm=subset(self.centres_mm, keep),
            cortical=subset(self.cortical, keep),
        )

    def delay_steps(self, speed_mm_per_ms: float, dt_ms: float) -> np.ndarray:
        """Delays in integration steps, ``rint(tract_lengths_mm / (speed * dt))``, int64.

        Parameters
        ----------
        speed_mm_per_ms : float
            Conduction speed in mm/ms (equivalently m/s), > 0.
        dt_ms : float
            Integration step in ms, > 0.

        Raises
        ------
        ValueError
            Without tract lengths, or if the speed or step is not finite and > 0.
        """
        if self.tract_lengths_mm is None:
            raise ValueError(
                f"tract lengths are required for delays, but connectome {self.name!r} has tract_lengths_mm=None"
            )
        for value, label in ((speed_mm_per_ms, "speed_mm_per_ms"), (dt_ms, "dt_ms")):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be finite and > 0, got {value!r}")
        return np.rint(self.tract_lengths_mm / (speed_mm_per_ms * dt_ms)).astype(np.int64)

    def hash(self) -> str:
        """Hex SHA-256 of weights, tract lengths and labels, stable across processes.

        ``name``, ``centres_mm`` and ``cortical`` do not change the dynamics: not hashed.
        """
        digest = hashlib.sha256(b"vbi_dask.Connectome/v1")
        digest.update(json.dumps([self.n_nodes, list(self.labels)]).encode())
        for array in (self.weights, self.tract_lengths_mm):
            digest.update(b"none" if array is None else array.astype("<f8").tobytes(order="C"))
        return digest.hexdigest()


# --------------------------------------------------------------------------- parsing


def _decode(name: str, data: bytes, source: str) -> str:
    suffix = Path(name).suffix
    try:
        return (_DECOMPRESS[suffix](data) if suffix in _DECOMPRESS else data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{source}: cannot decode ({error})") from None


def _floats(tokens: list[str]) -> list[float] | None:
    try:
        return [float(token) for token in tokens]
    except ValueError:
        return None


def _split(text: str) -> list[list[str]]:
    """Rows split on commas (if any) or whitespace, skipping blank and ``#`` lines."""
    lines = [line.strip().rstrip(",") for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    comma = any("," in line for line in lines)
    return [[t.strip() for t in line.split(",")] if comma else line.split() for line in lines]


def _parse_table(text: str | list[list[str]], source: str, header: bool = False) -> tuple[np.ndarray, list[str] | None]:
    """A float64 table from text or split rows; with ``header``, a non-numeric first row
    is returned as labels."""
    rows = _split(text) if isinstance(text, str) else list(text)
    labels = rows.pop(0) if header and rows and _floats(rows[0]) is None else None
    if not rows:
        raise ValueError(f"{source}: no numeric rows")
    if len({len(row) for row in rows}) != 1:
        raise ValueError(f"{source}: rows have different numbers of columns {sorted({len(row) for row in rows})}")
    for number, row in enumerate(rows, start=1):
        if _floats(row) is None:
            raise ValueError(f"{source}: cannot parse data row {number} as numbers: {row[:6]}")
    return np.array(rows, dtype=np.float64), labels


def _parse_centres(text: str, source: str) -> tuple[np.ndarray, list[str] | None]:
    """Rows of ``label x y z`` (TVB) or ``x y z``, in mm."""
    rows = _split(text)
    if rows and all(len(row) == 4 for row in rows) and _floats(rows[0][:1]) is None:
        return _parse_table([row[1:] for row in rows], source)[0], [row[0] for row in rows]
    centres = _parse_table(rows, source)[0]
    if centres.shape[1] != 3:
        raise ValueError(f"{source}: centres need columns x y z or label x y z, got {centres.shape[1]} columns")
    return centres, None


def _file(path: PathLike) -> Path:
    """``path`` if it is a file, else FileNotFoundError or IsADirectoryError."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"connectome path {path} is a directory, not a weights, tract lengths or centres file (.npy, .csv, .txt)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"connectome file not found: {path}")
    return path


def _read(path: PathLike) -> tuple[Path, str]:
    path = _file(path)
    return path, _decode(path.name, path.read_bytes(), str(path))


def _read_matrix(path: PathLike) -> tuple[np.ndarray, list[str] | None]:
    path = Path(path)
    if path.suffix == ".npy":
        _file(path)
        try:
            matrix, labels = np.load(path, allow_pickle=False).astype(np.float64), None
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: cannot read a numeric .npy matrix ({error})") from None
    else:
        matrix, labels = _parse_table(_read(path)[1], str(path), header=True)
    if matrix.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D matrix, got shape {matrix.shape}")
    return matrix, labels


def _tvb_fields(text: dict[str, str], sources: dict[str, str]) -> dict:
    """Connectome fields from the texts of TVB-style files named as in ``_TVB_PARTS``."""
    parse = lambda part: _parse_table(text[part], sources[part])[0]  # noqa: E731
    fields = {"weights": parse("weights")}
    if "tract_lengths" in text:
        fields["tract_lengths_mm"] = parse("tract_lengths")
    if "centres" in text:
        fields["centres_mm"], fields["labels"] = _parse_centres(text["centres"], sources["centres"])
    if "cortical" in text:
        fields["cortical"] = parse("cortical").ravel()
    return fields


def _build(source: PathLike, **fields) -> Connectome:
    """A Connectome whose validation errors name the file they came from."""
    try:
        return Connectome(**fields)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


# --------------------------------------------------------------------------- loaders


def load_matrix(path: PathLike) -> np.ndarray:
    """A 2-D float64 matrix from ``.npy`` or text (``.csv``, ``.txt``; ``.gz``/``.bz2`` ok).

    Text is comma or whitespace separated, may hold ``#`` comment lines and a header row
    of labels (dropped here; :func:`load_connectome` uses it).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If the content is not a 2-D numeric matrix; the message names ``path``.
    """
    return _read_matrix(path)[0]


def load_connectome(
    weights: PathLike,
    tract_lengths: PathLike | None = None,
    centres: PathLike | None = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
) -> Connectome:
    """A :class:`Connectome` from files read by :func:`load_matrix`.

    Parameters
    ----------
    weights, tract_lengths : path
        Weights (row i = inputs of node i) and tract lengths in mm.
    centres : path, optional
        Rows of ``label x y z`` or ``x y z``, in mm.
    labels : sequence of str, optional
        Node labels; by default those of the centres file, else the weights file's
        header row, else ``r0 ..``.
    name : str, optional
        Defaults to the weights file's name without suffixes.
    """
    matrix, header = _read_matrix(weights)
    fields = {"weights": matrix, "labels": header, "name": name or Path(weights).name.split(".")[0]}
    if tract_lengths is not None:
        fields["tract_lengths_mm"] = _read_matrix(tract_lengths)[0]
    if centres is not None:
        path, text = _read(centres)
        fields["centres_mm"], centre_labels = _parse_centres(text, str(path))
        fields["labels"] = centre_labels or header
    if labels is not None:
        fields["labels"] = list(labels)
    return _build(weights, **fields)


def load_tvb_zip(path: PathLike, name: str | None = None) -> Connectome:
    """A connectome from a zip in The Virtual Brain's format.

    Reads the members ``weights``, ``tract_lengths``, ``centres`` (``label x y z``) and
    ``cortical`` (``.txt``, ``.txt.gz`` or ``.txt.bz2``) at the top level or in one folder;
    ignores the others (areas, orientations, info, ...). Only weights are required.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If it is not a zip, lacks weights, holds a member twice, or content is invalid.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"connectome path {path} is a directory, not a TVB connectome zip file")
    if not path.is_file():
        raise FileNotFoundError(f"connectome zip not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a zip file ({error})") from None
    members: dict[str, str] = {}
    with archive:
        for info in archive.infolist():
            parts = info.filename.split("/")
            if info.is_dir() or len(parts) > 2 or parts[0] == "__MACOSX" or parts[-1][:1] == ".":
                continue
            key = parts[-1].split(".")[0]
            if key in _TVB_PARTS:
                if key in members:
                    raise ValueError(f"{path}: two {key} members, {members[key]!r} and {info.filename!r}")
                members[key] = info.filename
        if "weights" not in members:
            raise ValueError(f"{path}: no weights.txt member, found {archive.namelist()[:10]}")
        sources = {key: f"{path}:{member}" for key, member in members.items()}
        text = {key: _decode(member, archive.read(member), sources[key]) for key, member in members.items()}
    return _build(path, name=name or path.name.split(".")[0], **_tvb_fields(text, sources))


def _mrtrix_symmetrise(matrix: np.ndarray, source: PathLike) -> np.ndarray:
    """``W + W.T - diag(W)`` for upper-triangular output; symmetric output as is."""
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{source}: matrix must be square, got shape {matrix.shape}")
    if not np.tril(matrix, -1).any():
        return matrix + matrix.T - np.diag(np.diag(matrix))
    if np.array_equal(matrix, matrix.T):
        return matrix
    raise ValueError(f"{source}: neither upper-triangular nor symmetric, not tck2connectome output")


def load_mrtrix(
    path: PathLike, lengths: PathLike | None = None, labels: Sequence[str] | None = None, name: str | None = None
) -> Connectome:
    """A connectome from MRtrix3 ``tck2connectome`` output (comma or space separated).

    ``tck2connectome`` fills only the upper triangle unless given ``-symmetric``; such a
    matrix is mirrored as ``W + W.T - diag(W)``, a symmetric one is kept.

    Parameters
    ----------
    path : path
        Streamline counts (or otherwise scaled weights).
    lengths : path, optional
        Mean tract lengths in mm (``tck2connectome -scale_length -stat_edge mean``).
    labels : sequence of str, optional
        Node names in parcellation order.
    name : str, optional
        Defaults to the file's name without suffixes.
    """
    weights = _mrtrix_symmetrise(load_matrix(path), path)
    lengths_mm = None if lengths is None else _mrtrix_symmetrise(load_matrix(lengths), lengths)
    return _build(
        path, weights=weights, tract_lengths_mm=lengths_mm, labels=labels, name=name or Path(path).name.split(".")[0]
    )


@lru_cache(maxsize=1)
def default_connectome() -> Connectome:
    """The embedded 84-region connectome ``"hagmann84"`` (cached; it is immutable).

    68 cortical (Desikan-Killiany) + 16 subcortical regions: symmetric raw streamline
    counts (max 8706; choose a normalisation with :meth:`Connectome.normalised`), tract
    lengths and centres in mm, cortical flags.

    References
    ----------
    Hagmann P. et al. (2008), Mapping the structural core of human cerebral cortex, PLoS
    Biology 6(7): e159. CC BY 3.0 via The Virtual Brain and VBI: vbi_dask/data/README.md.
    """
    folder = resources.files("vbi_dask.data") / "connectivity_84"
    text = {part: (folder / f"{part}.txt").read_text(encoding="utf-8") for part in _TVB_PARTS}
    sources = {part: f"vbi_dask/data/connectivity_84/{part}.txt" for part in _TVB_PARTS}
    return Connectome(name="hagmann84", **_tvb_fields(text, sources))
