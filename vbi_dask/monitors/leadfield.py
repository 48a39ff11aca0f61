"""Simple head models for EEG/MEG lead fields from region centres.

EEG: current dipoles at the region centres, oriented radially from the head centre (the
mean of the centres), in an infinite homogeneous conductor of conductivity ``sigma``;
the potential of a dipole ``p`` at ``r0`` seen at ``r`` is
``V = p . (r - r0) / (4 pi sigma |r - r0|^3)`` (Nunez & Srinivasan 2006, eq. 6.7).
The potential is average-referenced over sensors. This ignores the skull's
conductivity contrast: relative topographies are meaningful, absolute scales are not.

MEG: the radial component of the magnetic field outside a spherically symmetric
conductor is due to the primary current only (Sarvas 1987):
``B_r = mu0 / (4 pi) (p x (r - r0)) . e_r / |r - r0|^3``. Radial dipoles are silent.

References
----------
Nunez, Srinivasan (2006). Electric Fields of the Brain. Oxford University Press.
Sarvas (1987). Basic mathematical and electromagnetic concepts of the biomagnetic
inverse problem. Phys. Med. Biol. 32:11-22.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sensors_on_sphere", "eeg_leadfield_sphere", "meg_leadfield_sphere", "leadfield_from_mne"]

MU0 = 4e-7 * np.pi  # T m / A


def _centres(centres_mm) -> np.ndarray:
    c = np.asarray(centres_mm, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"region centres must be (node, 3) in mm, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("region centres contain non-finite coordinates")
    return c


def sensors_on_sphere(centres_mm, n_sensors: int = 64, scalp_margin_mm: float = 15.0) -> np.ndarray:
    """Sensor positions (mm) spread evenly (Fibonacci lattice) over the upper hemisphere of a
    sphere centred on the regions' mean, ``scalp_margin_mm`` beyond the farthest region."""
    c = _centres(centres_mm)
    if n_sensors < 1:
        raise ValueError(f"n_sensors must be >= 1, got {n_sensors}")
    centre = c.mean(axis=0)
    radius = np.linalg.norm(c - centre, axis=1).max() + scalp_margin_mm
    k = np.arange(n_sensors) + 0.5
    z = 1.0 - k / n_sensors  # upper hemisphere: z in (0, 1)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * k
    rho = np.sqrt(1.0 - z * z)
    unit = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    return centre + radius * unit


def _orientations(c: np.ndarray, orientations) -> np.ndarray:
    if orientations is None:
        d = c - c.mean(axis=0)
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        if np.any(norm == 0):
            raise ValueError("a region sits at the head centre: radial orientation undefined; pass orientations")
        return d / norm
    o = np.asarray(orientations, dtype=np.float64)
    if o.shape != c.shape:
        raise ValueError(f"orientations must have the shape of the centres {c.shape}, got {o.shape}")
    return o / np.linalg.norm(o, axis=1, keepdims=True)


def eeg_leadfield_sphere(
    centres_mm, sensors_mm=None, *, orientations=None, sigma: float = 0.33, dipole_moment: float = 1e-9
) -> np.ndarray:
    """EEG gain (sensor, node) in volts per unit activity (dipole moment in A m per unit).

    Parameters
    ----------
    centres_mm : (node, 3) region centres, mm.
    sensors_mm : (sensor, 3) electrode positions, mm; default :func:`sensors_on_sphere`.
    orientations : (node, 3) dipole directions; default radial from the head centre.
    sigma : conductivity, S/m.
    dipole_moment : A m per unit of the observable.
    """
    c = _centres(centres_mm)
    s = sensors_on_sphere(c) if sensors_mm is None else _centres(sensors_mm)
    p = _orientations(c, orientations) * dipole_moment
    d = (s[:, None, :] - c[None, :, :]) * 1e-3  # sensor - source, metres
    dist3 = np.linalg.norm(d, axis=2) ** 3
    gain = np.einsum("snk,nk->sn", d, p) / (4 * np.pi * sigma * dist3)
    return gain - gain.mean(axis=0, keepdims=True)


def meg_leadfield_sphere(centres_mm, orientations, sensors_mm=None, *, dipole_moment: float = 1e-9) -> np.ndarray:
    """MEG gain (sensor, node): radial field in tesla per unit activity (Sarvas 1987)."""
    c = _centres(centres_mm)
    s = sensors_on_sphere(c, scalp_margin_mm=30.0) if sensors_mm is None else _centres(sensors_mm)
    p = _orientations(c, orientations) * dipole_moment
    centre = c.mean(axis=0)
    e_r = (s - centre) / np.linalg.norm(s - centre, axis=1, keepdims=True)
    d = (s[:, None, :] - c[None, :, :]) * 1e-3
    cross = np.cross(p[None, :, :], d)
    dist3 = np.linalg.norm(d, axis=2) ** 3
    return MU0 / (4 * np.pi) * np.einsum("snk,sk->sn", cross, e_r) / dist3


def leadfield_from_mne(
    forward,
    centres_mm=None,
    *,
    regions=None,
    kind: str = "eeg",
    orientations=None,
    dipole_moment: float = 1e-9,
    reference: str | None = "average",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A (sensor, node) gain and the channel names from an MNE forward solution (the
    ``eeg`` extra: ``mne``), for :class:`~vbi_dask.EEG` / :class:`~vbi_dask.MEG`
    (``gain=``, ``sensor_labels=``).

    Parameters
    ----------
    forward : an ``mne.Forward`` or the path of a ``-fwd.fif`` file (read with
        ``mne.read_forward_solution``), e.g. from ``mne.make_forward_solution`` on a
        subject's BEM and source space.
    centres_mm : (node, 3) region centres in the forward solution's coordinate frame
        (usually MNE's head frame), mm: each source belongs to the nearest centre.
        Needed unless ``regions`` is given. Align the connectome with the head first.
    regions : (source,) ints, the node each source of the forward solution belongs to
        (-1: none), e.g. from a parcellation's labels (``mne.read_labels_from_annot``
        and each label's vertices); overrides the nearest-centre mapping.
    kind : ``"eeg"`` or ``"meg"``: the forward solution's channels used.
    orientations : (node, 3) dipole directions for a free-orientation forward solution
        (volume source spaces); default radial: from the centroid of all sources to that
        of the node's sources. A
        fixed-orientation solution (cortical surface normals) uses its own.
    dipole_moment : A m per unit of the observable (as :func:`eeg_leadfield_sphere`).
    reference : ``"average"``: EEG average reference (the mean over sensors is removed,
        as the sphere model does); None: MNE's. Ignored for MEG.

    Returns
    -------
    gain, channel names
        ``gain[:, n]`` is ``dipole_moment`` times the mean, over node ``n``'s sources, of
        each source's lead field along its orientation: a region's activity spread evenly
        over its sources.

    Raises
    ------
    ValueError
        A node without sources, shapes that do not match, or an unknown ``kind``.
    """
    try:
        import mne
    except ImportError:  # pragma: no cover - the message is the point
        raise ImportError("leadfield_from_mne needs MNE-Python: pip install 'vbi-dask[eeg]' (or mne)") from None
    if kind not in ("eeg", "meg"):
        raise ValueError(f"kind must be 'eeg' or 'meg', got {kind!r}")
    if not isinstance(forward, mne.Forward):
        forward = mne.read_forward_solution(str(forward), verbose="error")
    picks = mne.pick_types(forward["info"], meg=kind == "meg", eeg=kind == "eeg", exclude=[])
    if picks.size == 0:
        raise ValueError(f"the forward solution has no {kind.upper()} channels")
    names = tuple(forward["info"]["ch_names"][k] for k in picks)
    positions = np.asarray(forward["source_rr"], dtype=np.float64) * 1e3  # m -> mm
    n_sources = len(positions)
    if regions is None:
        if centres_mm is None:
            raise ValueError("give the region centres (centres_mm) or each source's region (regions)")
        c = _centres(centres_mm)
        distance = np.linalg.norm(positions[:, None, :] - c[None, :, :], axis=2)
        regions = distance.argmin(axis=1)
        n_nodes = len(c)
    else:
        regions = np.asarray(regions)
        if regions.shape != (n_sources,) or not np.issubdtype(regions.dtype, np.integer):
            raise ValueError(f"regions must be {n_sources} integers (one per source), got shape {regions.shape}")
        n_nodes = int(regions.max()) + 1 if centres_mm is None else len(_centres(centres_mm))
    empty = [n for n in range(n_nodes) if not np.any(regions == n)]
    if empty:
        raise ValueError(f"node(s) {empty[:10]} have no source of the forward solution; map sources to every node")
    data = np.asarray(forward["sol"]["data"], dtype=np.float64)[picks]  # V (or T) per A m
    if forward["source_ori"] == mne.io.constants.FIFF.FIFFV_MNE_FREE_ORI:
        per_source = data.reshape(len(picks), n_sources, 3)
        if orientations is None:
            centroid = positions.mean(axis=0)
            node_centres = np.array([positions[regions == n].mean(axis=0) for n in range(n_nodes)])
            d = node_centres - centroid
            norm = np.linalg.norm(d, axis=1, keepdims=True)
            if np.any(norm == 0):
                raise ValueError(
                    "a node's sources are centred on the centroid: radial orientation undefined; pass orientations"
                )
            o = d / norm
        else:
            o = np.asarray(orientations, dtype=np.float64)
            if o.shape != (n_nodes, 3):
                raise ValueError(f"orientations must be ({n_nodes}, 3), got {o.shape}")
            o = o / np.linalg.norm(o, axis=1, keepdims=True)
        oriented = np.einsum("csk,sk->cs", per_source, o[np.clip(regions, 0, None)])
    else:
        oriented = data  # fixed orientation: one column per source, along its normal
    gain = np.zeros((len(picks), n_nodes))
    for n in range(n_nodes):
        gain[:, n] = oriented[:, regions == n].mean(axis=1)
    gain *= dipole_moment
    if kind == "eeg" and reference == "average":
        gain -= gain.mean(axis=0, keepdims=True)
    return gain, names
