"""Connectome: validation, transforms and loaders, checked against independent truths."""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vbi_dask.connectome import (
    NORMALISATIONS,
    Connectome,
    default_connectome,
    load_connectome,
    load_matrix,
    load_mrtrix,
    load_tvb_zip,
)

SHARED = Path("/work/shared/data")
ZIP_76 = SHARED / "connectivity_76.zip"
DIR_84 = SHARED / "connectivity_84"

# A 3-node network with a zero row (node 2 receives nothing).
W3 = np.array([[0.0, 2.0, 4.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def _zip_arrays(path):
    """Weights, tract lengths and labels read straight from a TVB zip, without vbi_dask."""
    with zipfile.ZipFile(path) as archive:
        read = lambda name: io.BytesIO(archive.read(name))  # noqa: E731
        weights = np.loadtxt(read("weights.txt"))
        lengths = np.loadtxt(read("tract_lengths.txt"))
        centres = archive.read("centres.txt").decode().splitlines()
        labels = [line.split()[0] for line in centres if line.strip()]
    return weights, lengths, labels


def small(**overrides):
    fields = dict(
        weights=np.arange(16.0).reshape(4, 4),
        tract_lengths_mm=np.arange(16.0).reshape(4, 4) + 10,
        labels=("a", "b", "c", "d"),
        centres_mm=np.arange(12.0).reshape(4, 3),
        cortical=[True, False, True, True],
        name="small",
    )
    fields.update(overrides)
    return Connectome(**fields)


# ----------------------------------------------------------------------------- default


def test_default_connectome_matches_data_readme():
    c = default_connectome()
    assert c.name == "hagmann84"
    assert c.n_nodes == 84
    assert c.weights.shape == c.tract_lengths_mm.shape == (84, 84)
    assert c.symmetric
    assert np.array_equal(c.weights, c.weights.T)
    assert np.all(np.diag(c.weights) == 0)
    assert c.weights.max() == 8706.0  # raw streamline counts, not normalised
    assert 0.6 < np.count_nonzero(c.weights) / 84**2 < 0.7  # "65% non-zero"
    assert len(set(c.labels)) == 84
    assert c.centres_mm.shape == (84, 3)
    assert c.cortical.dtype == bool and c.cortical.sum() == 68  # 68 cortical + 16 subcortical
    assert not c.weights.flags.writeable


def test_default_connectome_equals_shared_files():
    if not DIR_84.is_dir():
        pytest.skip(f"{DIR_84} not available")
    c = default_connectome()
    np.testing.assert_array_equal(c.weights, np.loadtxt(DIR_84 / "weights.txt"))
    np.testing.assert_array_equal(c.tract_lengths_mm, np.loadtxt(DIR_84 / "tract_lengths.txt"))
    lines = (DIR_84 / "centres.txt").read_text().splitlines()
    rows = [line.split() for line in lines if line.strip()]
    assert c.labels == tuple(row[0] for row in rows)
    np.testing.assert_array_equal(c.centres_mm, np.array([row[1:] for row in rows], dtype=float))
    np.testing.assert_array_equal(c.cortical, np.loadtxt(DIR_84 / "cortical.txt").astype(bool))


# ----------------------------------------------------------------------------- TVB zip


@pytest.fixture
def zip76():
    if not ZIP_76.is_file():
        pytest.skip(f"{ZIP_76} not available")
    return ZIP_76


def test_tvb_zip_matches_direct_read(zip76):
    weights, lengths, labels = _zip_arrays(zip76)
    c = load_tvb_zip(zip76)
    assert c.n_nodes == 76 and c.name == "connectivity_76"
    np.testing.assert_array_equal(c.weights, weights)
    np.testing.assert_array_equal(c.tract_lengths_mm, lengths)
    assert c.labels == tuple(labels)
    assert c.centres_mm.shape == (76, 3) and c.cortical.shape == (76,)
    # real-data quirks the loader must accept
    assert not c.symmetric
    assert np.diag(c.weights).any()
    assert (c.weights.sum(axis=1) == 0).any()
    assert 0 <= c.weights.min() and c.weights.max() == 3


def test_tvb_zip_in_a_subfolder_with_compressed_member(zip76, tmp_path):
    import bz2

    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(zip76) as src, zipfile.ZipFile(nested, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "weights.txt":
                dst.writestr("conn76/weights.txt.bz2", bz2.compress(data))
            else:
                dst.writestr(f"conn76/{name}", data)
        dst.writestr("__MACOSX/conn76/._weights.txt", b"junk")
    c = load_tvb_zip(nested)
    assert c.hash() == load_tvb_zip(zip76).hash()
    assert c.name == "nested"


def test_tvb_zip_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        load_tvb_zip(tmp_path / "missing.zip")
    not_zip = tmp_path / "plain.zip"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="plain.zip.*not a zip"):
        load_tvb_zip(not_zip)
    no_weights = tmp_path / "no_weights.zip"
    with zipfile.ZipFile(no_weights, "w") as archive:
        archive.writestr("tract_lengths.txt", "0 1\n1 0\n")
    with pytest.raises(ValueError, match="no_weights.zip.*no weights"):
        load_tvb_zip(no_weights)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("weights.txt", "0 1\n-1 0\n")
    with pytest.raises(ValueError, match=r"bad.zip.*non-negative.*\(1, 0\)"):
        load_tvb_zip(bad)


# ----------------------------------------------------------------------------- transforms


def test_normalisations_by_hand():
    c = Connectome(W3)
    np.testing.assert_allclose(c.normalised("max").weights, W3 / 4.0)
    rows = np.array([[0, 2 / 6, 4 / 6], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(c.normalised("rows").weights, rows)
    log = np.array([[0, np.log(3), np.log(5)], [np.log(2), 0, 0], [0, 0, 0]]) / np.log(5)
    np.testing.assert_allclose(c.normalised("log").weights, log)
    np.testing.assert_array_equal(c.normalised("none").weights, W3)
    np.testing.assert_array_equal(c.weights, W3)  # the original is untouched
    assert set(NORMALISATIONS) == {"max", "rows", "log", "none"}
    zero = Connectome(np.zeros((2, 2)))
    for kind in NORMALISATIONS:
        assert not zero.normalised(kind).weights.any()


def test_unknown_normalisation_lists_valid_kinds():
    with pytest.raises(ValueError, match="'sum'.*max, rows, log, none"):
        Connectome(W3).normalised("sum")


@pytest.mark.parametrize("nodes", [["b"], [1], ["b", 1]])
def test_lesion_node(nodes):
    c = small()
    out = c.lesion(nodes=nodes)
    keep = [0, 2, 3]
    assert out.n_nodes == 3 and out.labels == ("a", "c", "d")
    np.testing.assert_array_equal(out.weights, c.weights[np.ix_(keep, keep)])
    np.testing.assert_array_equal(out.tract_lengths_mm, c.tract_lengths_mm[np.ix_(keep, keep)])
    np.testing.assert_array_equal(out.centres_mm, c.centres_mm[keep])
    np.testing.assert_array_equal(out.cortical, [True, True, True])
    assert out.name == "small" and c.n_nodes == 4


def test_lesion_edges_then_nodes():
    c = small()
    out = c.lesion(edges=[(0, 1), ("c", "d")])
    expected = c.weights.copy()
    expected[0, 1] = expected[2, 3] = 0
    np.testing.assert_array_equal(out.weights, expected)
    assert out.weights[1, 0] == c.weights[1, 0]  # directed: the reverse edge is kept
    np.testing.assert_array_equal(out.tract_lengths_mm, c.tract_lengths_mm)
    both = c.lesion(nodes=["a"], edges=[("c", "d")])  # edges indexed before removal
    assert both.labels == ("b", "c", "d") and both.weights[1, 2] == 0


def test_lesion_errors():
    c = small()
    with pytest.raises(ValueError, match="unknown node label 'zz'"):
        c.lesion(nodes=["zz"])
    with pytest.raises(ValueError, match=r"node index 4 out of range \[0, 4\)"):
        c.lesion(nodes=[4])
    with pytest.raises(ValueError, match="node index -1 out of range"):
        c.lesion(nodes=[-1])
    with pytest.raises(ValueError, match="edge index 9 out of range"):
        c.lesion(edges=[(0, 9)])
    with pytest.raises(ValueError, match=r"edges must be \(i, j\) pairs"):
        c.lesion(edges=[(0, 1, 2)])
    with pytest.raises(ValueError, match="remove all 4 nodes"):
        c.lesion(nodes=range(4))


def test_delay_steps_by_hand():
    lengths = np.array([[0.0, 7.0, 7.05], [7.0, 0.0, 7.15], [7.05, 7.15, 0.0]])
    c = Connectome(np.ones((3, 3)), tract_lengths_mm=lengths)
    steps = c.delay_steps(speed_mm_per_ms=2.0, dt_ms=0.1)  # one step = 0.2 mm
    assert steps.dtype == np.int64
    np.testing.assert_array_equal(steps, [[0, 35, 35], [35, 0, 36], [35, 36, 0]])
    with pytest.raises(ValueError, match="tract lengths are required for delays"):
        Connectome(W3).delay_steps(2.0, 0.1)
    with pytest.raises(ValueError, match="speed_mm_per_ms must be finite and > 0"):
        c.delay_steps(0.0, 0.1)
    with pytest.raises(ValueError, match="dt_ms must be finite and > 0"):
        c.delay_steps(2.0, -0.1)


def test_symmetric_and_default_labels():
    assert Connectome(W3 + W3.T).symmetric
    assert not Connectome(W3).symmetric
    assert Connectome(W3).labels == ("r0", "r1", "r2")


def test_hash_stable_and_sensitive():
    c = small()
    assert c.hash() == small().hash() == small(name="other", centres_mm=None).hash()
    changed = c.weights.copy()
    changed[2, 1] += 1e-9
    assert small(weights=changed).hash() != c.hash()
    assert small(labels=("a", "b", "c", "e")).hash() != c.hash()
    assert small(tract_lengths_mm=None).hash() != c.hash()
    assert Connectome(np.where(W3 == 0, -0.0, W3)).hash() == Connectome(W3).hash()  # -0.0 == 0.0


def test_hash_stable_across_processes():
    code = "from vbi_dask.connectome import default_connectome as d; print(d().hash())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == default_connectome().hash()


def test_arrays_are_readonly_copies():
    weights = W3.copy()
    c = Connectome(weights)
    weights[0, 1] = 99
    assert c.weights[0, 1] == 2
    with pytest.raises(ValueError):
        c.weights[0, 0] = 1
    assert c.weights.dtype == np.float64


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"weights": np.ones((3, 4))}, r"weights must be square, got shape \(3, 4\)"),
        ({"weights": np.ones(3)}, r"weights must be a 2-D .* shape \(3,\)"),
        ({"weights": np.ones((2, 2, 2))}, r"weights must be a 2-D .* shape \(2, 2, 2\)"),
        ({"weights": np.zeros((0, 0))}, "at least one node"),
        ({"weights": [["a", "b"], ["c", "d"]]}, "weights must be a numeric array"),
        ({"weights": [[0, np.nan], [np.inf, 0]]}, r"weights contains NaN or inf: 2 entries at \(0, 1\), \(1, 0\)"),
        ({"weights": [[0, 1], [-2, 0]]}, r"weights must be non-negative: 1 entry at \(1, 0\)"),
        (
            {"tract_lengths_mm": np.ones((3, 3))},
            r"tract_lengths_mm has shape \(3, 3\), expected \(2, 2\) from weights of shape \(2, 2\)",
        ),
        ({"tract_lengths_mm": [[0, -1], [1, 0]]}, r"tract_lengths_mm must be non-negative: 1 entry at \(0, 1\)"),
        ({"tract_lengths_mm": [[0, np.nan], [1, 0]]}, r"tract_lengths_mm contains NaN or inf: 1 entry at \(0, 1\)"),
        ({"labels": ("a",)}, r"labels has shape \(1,\), expected \(2,\) from weights of shape \(2, 2\)"),
        ({"labels": ("a", "a")}, r"labels must be unique, duplicated: \['a'\]"),
        ({"labels": (1, 2)}, "labels must be str"),
        ({"labels": "ab"}, "labels must be a sequence of str"),
        ({"centres_mm": np.zeros((2, 2))}, r"centres_mm has shape \(2, 2\), expected \(2, 3\)"),
        ({"centres_mm": [[0, 0, np.nan], [0, 0, 0]]}, r"centres_mm contains NaN or inf: 1 entry at \(0, 2\)"),
        ({"cortical": [True]}, r"cortical has shape \(1,\), expected \(2,\)"),
        ({"cortical": [0, 2]}, "cortical must be bool or 0/1"),
        ({"name": 3}, "name must be a str"),
    ],
)
def test_bad_inputs_name_the_problem(fields, message):
    kwargs = {"weights": np.ones((2, 2))} | fields
    with pytest.raises(ValueError, match=message):
        Connectome(**kwargs)


def test_nan_message_truncates_long_lists():
    weights = np.full((4, 4), np.nan)
    with pytest.raises(ValueError, match=r"16 entries at \(0, 0\), .*, \.\.\."):
        Connectome(weights)


# ----------------------------------------------------------------------------- file loaders


def test_npy_round_trip(tmp_path):
    np.save(tmp_path / "w.npy", W3)
    np.testing.assert_array_equal(load_matrix(tmp_path / "w.npy"), W3)
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"v.npy.*2-D.*\(3,\)"):
        load_matrix(tmp_path / "v.npy")


def test_csv_and_txt_round_trip(tmp_path):
    np.savetxt(tmp_path / "w.csv", W3, delimiter=",", header="x,y,z", comments="")
    np.savetxt(tmp_path / "w.txt", W3)
    np.savetxt(tmp_path / "l.txt", W3 * 10 + 1, header="tract lengths in mm")  # '#' comment line
    (tmp_path / "centres.txt").write_text("x 0 0 0\ny 1 0 0\nz 0 1 0\n")
    np.testing.assert_array_equal(load_matrix(tmp_path / "w.csv"), W3)
    np.testing.assert_array_equal(load_matrix(tmp_path / "w.txt"), W3)
    c = load_connectome(tmp_path / "w.csv")
    assert c.labels == ("x", "y", "z") and c.name == "w"
    c = load_connectome(
        tmp_path / "w.txt", tract_lengths=tmp_path / "l.txt", centres=tmp_path / "centres.txt", name="mine"
    )
    np.testing.assert_allclose(c.tract_lengths_mm, W3 * 10 + 1)
    assert c.labels == ("x", "y", "z") and c.name == "mine"
    np.testing.assert_array_equal(c.centres_mm, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert load_connectome(tmp_path / "w.txt", labels=["p", "q", "r"]).labels == ("p", "q", "r")


def test_text_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_matrix(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        load_matrix(tmp_path / "nope.npy")
    (tmp_path / "bad.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(ValueError, match="bad.csv.*row 2"):
        load_matrix(tmp_path / "bad.csv")
    (tmp_path / "ragged.txt").write_text("1 2\n3\n")
    with pytest.raises(ValueError, match="ragged.txt.*different numbers of columns"):
        load_matrix(tmp_path / "ragged.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt.*no numeric rows"):
        load_matrix(tmp_path / "empty.txt")
    (tmp_path / "rect.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"rect.txt.*weights must be square, got shape \(2, 3\)"):
        load_connectome(tmp_path / "rect.txt")


def test_mrtrix_upper_triangle_is_mirrored(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(5, 5)).astype(float)
    full = np.triu(counts) + np.triu(counts, 1).T  # the symmetric truth, diagonal kept
    lengths = np.triu(counts) * 1.5
    np.savetxt(tmp_path / "connectome.csv", np.triu(counts), delimiter=",", fmt="%g")
    np.savetxt(tmp_path / "lengths.csv", lengths, delimiter=",")
    c = load_mrtrix(tmp_path / "connectome.csv", lengths=tmp_path / "lengths.csv", labels=[f"n{i}" for i in range(5)])
    np.testing.assert_array_equal(c.weights, full)
    np.testing.assert_allclose(c.tract_lengths_mm, full * 1.5)
    assert c.symmetric and c.labels[0] == "n0" and c.name == "connectome"
    # output of `tck2connectome -symmetric` (space separated) is kept as is
    np.savetxt(tmp_path / "sym.txt", full, fmt="%g")
    np.testing.assert_array_equal(load_mrtrix(tmp_path / "sym.txt").weights, full)


def test_mrtrix_rejects_other_matrices(tmp_path):
    np.savetxt(tmp_path / "asym.csv", W3, delimiter=",")
    with pytest.raises(ValueError, match="asym.csv.*neither upper-triangular nor symmetric"):
        load_mrtrix(tmp_path / "asym.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_mrtrix(tmp_path / "missing.csv")
