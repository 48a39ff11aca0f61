"""Static FC, FC fit to an empirical FC, homotopic FC: against np.corrcoef per simulation."""

import numpy as np
import pytest
import xarray as xr

from vbi_dask.features import fc, fc_corr, fc_distance, fc_matrix, homotopic_fc, homotopic_pairs


def reference_fc(x):
    return np.stack([np.corrcoef(sim.T) for sim in x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fc_matrix_matches_corrcoef_per_sim(signals, rng, tol, dtype):
    x = signals(rng, 4, 300, 6, dtype)
    expected = reference_fc(x.astype(np.float64))
    got = fc_matrix(x)
    assert got.shape == (4, 6, 6) and got.dtype == dtype
    # Centring, norm and product each sum 300 terms: allow 4 * n_time roundoffs.
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol(dtype, 4 * 300))


def test_fc_upper_triangle_names_and_order(signals, rng, tol):
    x = signals(rng, 3, 200, 5)
    values, names = fc(x)
    assert values.shape == (3, 10) and len(names) == 10
    assert names[:4] == ["fc[0,1]", "fc[0,2]", "fc[0,3]", "fc[0,4]"] and names[-1] == "fc[3,4]"
    rows, cols = np.triu_indices(5, k=1)
    np.testing.assert_allclose(values, reference_fc(x)[:, rows, cols], rtol=0, atol=tol(np.float64, 4 * 200))


def test_perfect_anticorrelation_and_correlation_are_exact(tol):
    t = np.linspace(0.0, 1.0, 50)
    base = np.sin(2 * np.pi * 3 * t) + t
    x = np.stack([base, -base, 3.0 * base + 7.0], axis=1)[None]  # (1, time, 3)
    values, names = fc(x)
    assert names == ["fc[0,1]", "fc[0,2]", "fc[1,2]"]
    np.testing.assert_allclose(values[0], [-1.0, 1.0, -1.0], rtol=0, atol=tol(np.float64, 4 * 50))


def test_fisher_z_is_clipped_arctanh(signals, rng, tol):
    x = signals(rng, 2, 150, 4)
    r, _ = fc(x)
    z, _ = fc(x, fisher_z=True)
    np.testing.assert_allclose(z, np.arctanh(r), rtol=tol(np.float64, 4 * 150))
    t = np.arange(20.0)
    z_perfect, _ = fc(np.stack([t, -t], axis=1)[None], fisher_z=True)
    assert np.isfinite(z_perfect).all()
    assert z_perfect[0, 0] == pytest.approx(np.arctanh(-(1 - np.finfo(np.float64).eps)))


def test_constant_node_gives_nan_like_corrcoef(rng):
    x = rng.standard_normal((1, 40, 3))
    x[0, :, 1] = 0.3  # a constant whose mean is not exactly representable
    values, _ = fc(x)
    assert np.isnan(values[0, 0]) and np.isnan(values[0, 2]) and np.isfinite(values[0, 1])


def test_dataarray_input_in_any_dim_order(signals, rng):
    x = signals(rng, 2, 100, 4)
    da = xr.DataArray(x, dims=("sim", "time", "node")).transpose("node", "sim", "time")
    np.testing.assert_array_equal(fc(da)[0], fc(x)[0])
    with pytest.raises(ValueError, match=r"dims must be \('sim', 'time', 'node'\)"):
        fc(xr.DataArray(x[0], dims=("time", "node")))


def test_wrong_ndim_is_named():
    with pytest.raises(ValueError, match=r"shaped \(sim, time, node\); got 2 dimensions"):
        fc(np.zeros((100, 4)))
    with pytest.raises(ValueError, match="at least 2 nodes"):
        fc(np.zeros((1, 100, 1)))


def test_fc_corr_and_distance_match_loop(signals, rng, tol):
    x = signals(rng, 5, 250, 6)
    empirical = np.corrcoef(signals(rng, 1, 250, 6)[0].T)
    rows, cols = np.triu_indices(6, k=1)
    simulated = reference_fc(x)[:, rows, cols]
    expected_r = [np.corrcoef(s, empirical[rows, cols])[0, 1] for s in simulated]
    expected_d = [np.linalg.norm(s - empirical[rows, cols]) for s in simulated]
    r, r_names = fc_corr(x, empirical_fc=empirical)
    d, d_names = fc_distance(x, empirical_fc=empirical)
    assert r.shape == d.shape == (5, 1) and r_names == ["fc_corr"] and d_names == ["fc_distance"]
    # FC carries 4 * n_time roundoffs; the correlation of 15 edges adds a few more.
    np.testing.assert_allclose(r[:, 0], expected_r, rtol=0, atol=tol(np.float64, 8 * 250))
    np.testing.assert_allclose(d[:, 0], expected_d, rtol=0, atol=tol(np.float64, 8 * 250))


def test_fc_corr_with_own_fc_is_one_and_distance_zero(signals, rng, tol, tmp_path):
    x = signals(rng, 1, 200, 5)
    own = reference_fc(x)[0]
    path = tmp_path / "fc.npy"
    np.save(path, own)
    r, _ = fc_corr(x, empirical_fc=path)
    d, _ = fc_distance(x, empirical_fc=str(path))
    assert r[0, 0] == pytest.approx(1.0, abs=tol(np.float64, 8 * 200))
    assert d[0, 0] == pytest.approx(0.0, abs=tol(np.float64, 8 * 200))


def test_empirical_fc_of_wrong_shape_or_with_nan_is_rejected(signals, rng):
    x = signals(rng, 1, 100, 4)
    with pytest.raises(ValueError, match=r"empirical_fc must be shaped \(node, node\) = \(4, 4\); got \(5, 5\)"):
        fc_corr(x, empirical_fc=np.eye(5))
    bad = np.eye(4)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .*\[1,3\]"):
        fc_distance(x, empirical_fc=bad)


def test_homotopic_fc_matches_pairwise_corrcoef(signals, rng, tol):
    x = signals(rng, 3, 180, 6)
    pairs = [(0, 3), (1, 4), (2, 5)]
    full = reference_fc(x)
    per_pair = np.stack([full[:, i, j] for i, j in pairs], axis=1)
    values, names = homotopic_fc(x, pairs=pairs, per_pair=True)
    assert names == ["homotopic_fc", "homotopic_fc[0,3]", "homotopic_fc[1,4]", "homotopic_fc[2,5]"]
    expected = np.concatenate([per_pair.mean(axis=1, keepdims=True), per_pair], axis=1)
    np.testing.assert_allclose(values, expected, rtol=0, atol=tol(np.float64, 4 * 180))
    half, half_names = homotopic_fc(x, pairs="half")
    assert half_names == ["homotopic_fc"]
    np.testing.assert_allclose(half, expected[:, :1], rtol=0, atol=tol(np.float64, 4 * 180))


def test_homotopic_fc_rejects_bad_pairs(signals, rng):
    x = signals(rng, 1, 50, 5)
    with pytest.raises(ValueError, match="even number of nodes"):
        homotopic_fc(x, pairs="half")
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        homotopic_fc(x, pairs=[(0, 5)])
    with pytest.raises(ValueError, match="two different nodes"):
        homotopic_fc(x, pairs=[(1, 1)])


def test_homotopic_pairs_from_common_label_conventions():
    freesurfer = ["Left-Thalamus", "ctx-lh-insula", "Right-Thalamus", "ctx-rh-insula", "Brain-Stem"]
    assert homotopic_pairs(freesurfer) == [(0, 2), (1, 3)]
    tvb = ["rA1", "rV1", "lA1", "lV1"]
    assert homotopic_pairs(tvb) == [(2, 0), (3, 1)]
    suffixed = ["V1_L", "V1_R", "precuneus lh", "precuneus rh", "L_MT", "R_MT"]
    assert homotopic_pairs(suffixed) == [(0, 1), (2, 3), (4, 5)]


def test_homotopic_pairs_errors():
    with pytest.raises(ValueError, match="name the same region twice"):
        homotopic_pairs(["lh-V1", "lh_V1", "rh-V1"])
    with pytest.raises(ValueError, match="no left/right pairs"):
        homotopic_pairs(["Vermis", "Brain-Stem"])
