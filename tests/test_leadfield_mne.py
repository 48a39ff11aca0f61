"""Lead fields from MNE forward solutions: a real forward model (MNE's sphere head model
on a volume source space, standard 10-20 electrodes) mapped onto regions, checked against
the region means computed here from the forward solution's own columns."""

from __future__ import annotations

import numpy as np
import pytest

from vbi_dask import EEG, Connectome, Simulation
from vbi_dask.monitors import leadfield_from_mne

mne = pytest.importorskip("mne")


@pytest.fixture(scope="module")
def forward(tmp_path_factory):
    mne.set_log_level("ERROR")
    montage = mne.channels.make_standard_montage("standard_1020")
    info = mne.create_info(montage.ch_names[:32], 250.0, "eeg")
    info.set_montage(montage)
    sphere = mne.make_sphere_model("auto", "auto", info)  # MNE's 4-shell sphere fitted to the electrodes
    src = mne.setup_volume_source_space(sphere=sphere, pos=20.0, mindist=10.0)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False)
    path = tmp_path_factory.mktemp("mne") / "sphere-fwd.fif"
    mne.write_forward_solution(path, fwd, overwrite=True)
    return fwd, path


def _centres(fwd, n: int = 6) -> np.ndarray:
    """n region centres (mm): sources spread through the source space, shifted off the grid."""
    rr = fwd["source_rr"] * 1e3
    return rr[np.linspace(0, len(rr) - 1, n).astype(int)] + 1.5


def test_region_columns_are_the_means_of_their_oriented_sources(forward):
    fwd, path = forward
    centres = _centres(fwd)
    gain, names = leadfield_from_mne(fwd, centres)
    assert names == tuple(fwd["info"]["ch_names"]) and gain.shape == (32, 6)
    # the same by hand: nearest centre, radial orientation of each region, mean, x 1e-9 A m, average reference
    rr = fwd["source_rr"] * 1e3
    G = fwd["sol"]["data"].reshape(32, len(rr), 3)
    region = np.array([np.argmin([np.sum((r - c) ** 2) for c in centres]) for r in rr])
    expected = np.zeros((32, 6))
    for n in range(6):
        members = np.flatnonzero(region == n)
        direction = rr[members].mean(axis=0) - rr.mean(axis=0)
        direction /= np.sqrt(direction @ direction)
        expected[:, n] = np.mean([G[:, s, :] @ direction for s in members], axis=0) * 1e-9
    expected -= expected.mean(axis=0)
    np.testing.assert_allclose(gain, expected, rtol=1e-12, atol=1e-22)
    # from the file, and with an explicit source -> region map and orientations
    from_file, _ = leadfield_from_mne(path, centres)
    # the FIF file holds the solution in float32: each entry within a few float32 ulps of the
    # largest one it was averaged or referenced with
    np.testing.assert_allclose(from_file, gain, rtol=0, atol=8 * np.finfo(np.float32).eps * np.abs(gain).max())
    up = np.tile([0.0, 0.0, 1.0], (6, 1))
    mapped, _ = leadfield_from_mne(fwd, regions=region, orientations=up, reference=None)
    by_hand = np.stack([G[:, region == n, 2].mean(axis=1) for n in range(6)], axis=1) * 1e-9
    np.testing.assert_allclose(mapped, by_hand, rtol=1e-12, atol=1e-22)


def test_a_simulation_reads_eeg_through_the_mne_gain(forward):
    fwd, _ = forward
    centres = _centres(fwd)
    gain, names = leadfield_from_mne(fwd, centres)
    weights = np.ones((6, 6)) - np.eye(6)
    connectome = Connectome(weights=weights / 5, tract_lengths_mm=np.full((6, 6), 40.0), centres_mm=centres, name="six")
    sim = Simulation(
        "jansen_rit",
        connectome=connectome,
        dt_ms=0.5,
        duration_ms=400.0,
        monitors=(EEG(period_ms=4.0, gain=gain, sensor_labels=names),),
    )
    ds = sim.run(n_sims=1, seed=2, threads=1)
    assert list(ds["sensor"].values) == list(names)
    assert ds["eeg"].shape == (1, 100, 32) and np.isfinite(ds["eeg"].values).all()


def test_mappings_that_leave_a_region_without_sources_are_refused(forward):
    fwd, _ = forward
    centres = np.vstack([_centres(fwd), [[500.0, 500.0, 500.0]]])  # far outside the head
    with pytest.raises(ValueError, match=r"node\(s\) \[6\] have no source of the forward solution"):
        leadfield_from_mne(fwd, centres)
    with pytest.raises(ValueError, match="no MEG channels"):
        leadfield_from_mne(fwd, _centres(fwd), kind="meg")
