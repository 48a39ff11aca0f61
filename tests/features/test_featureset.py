"""FeatureSet: columns known in advance, serialisation round trips, clear errors."""

import json

import numpy as np
import pytest
import xarray as xr

from vbi_dask.features import (
    FEATURES,
    FeatureSet,
    FeatureSpec,
    array_namespace,
    fc,
    fcd,
    homotopic_fc,
    kuramoto_order,
    moments,
    psd,
)

YAML = """
- {name: moments, stats: [mean, std]}
- {name: fc, fisher_z: true}
- {name: fcd, window_samples: 40, step_samples: 10, quantiles: [0.5]}
- {name: psd, nperseg: 128, bands: {alpha: [8, 13], beta: [13, 30]}}
- name: homotopic_fc
  pairs: half
- kuramoto_order
"""


def test_compute_concatenates_the_individual_features(signals, rng):
    x = signals(rng, 3, 400, 6)
    featureset = FeatureSet.from_yaml(YAML)
    values, names = featureset.compute(x, dt_ms=4.0)
    parts = [
        moments(x, stats=["mean", "std"]),
        fc(x, fisher_z=True),
        fcd(x, window_samples=40, step_samples=10, quantiles=[0.5]),
        psd(x, 4.0, nperseg=128, bands={"alpha": [8, 13], "beta": [13, 30]}),
        homotopic_fc(x, pairs="half"),
        kuramoto_order(x),
    ]
    expected = np.concatenate([p[0] for p in parts], axis=1).astype(np.float32)
    assert values.dtype == np.float32 and values.shape == (3, len(names))
    assert names == [n for p in parts for n in p[1]]
    np.testing.assert_array_equal(values, expected)
    assert featureset.names(n_nodes=6, n_time=400, dt_ms=4.0) == names
    # 12 moments + 15 fc + 4 fcd + (2 + 2 + 1) psd + 1 homotopic + 2 kuramoto
    assert len(names) == 12 + 15 + 4 + 5 + 1 + 2


@pytest.mark.parametrize("n_nodes, n_time", [(2, 64), (5, 300), (9, 1000)])
def test_names_in_advance_agree_with_compute_for_every_feature(rng, n_nodes, n_time):
    x = rng.standard_normal((2, n_time, n_nodes))
    options = {
        "fcd": {"window_samples": 16, "step_samples": 8},
        "psd": {"nperseg": 64, "per_node": True},
        "homotopic_fc": {"pairs": [[0, 1]], "per_pair": True},
        "fc_corr": {"empirical_fc": np.eye(n_nodes) * 0.5 + 0.5},
        "fc_distance": {"empirical_fc": np.eye(n_nodes)},
    }
    for name in FEATURES:
        featureset = FeatureSet([{"name": name, **options.get(name, {})}])
        values, names = featureset.compute(x, dt_ms=4.0)  # psd: 64 samples at 250 Hz, 3.9 Hz bins
        assert featureset.names(n_nodes, n_time, 4.0) == names, name
        assert values.shape == (2, len(names)), name


def test_yaml_and_dict_round_trips(tmp_path):
    featureset = FeatureSet.from_yaml(YAML)
    assert FeatureSet.from_yaml(featureset.to_yaml()) == featureset
    assert FeatureSet.from_dict(featureset.to_dict()) == featureset
    path = tmp_path / "features.yaml"
    path.write_text(featureset.to_yaml())
    assert FeatureSet.from_yaml(path) == featureset
    assert FeatureSet.from_yaml(str(path)) == featureset
    assert featureset.to_dict()["features"][1] == {"name": "fc", "fisher_z": True}


def test_array_options_are_stored_as_plain_data(signals, rng):
    x = signals(rng, 2, 200, 4)
    empirical = np.corrcoef(signals(rng, 1, 200, 4)[0].T)
    featureset = FeatureSet([FeatureSpec("fc_corr", {"empirical_fc": empirical}), "moments"])
    entry = featureset.to_dict()["features"][0]
    assert isinstance(entry["empirical_fc"], list)
    again = FeatureSet.from_yaml(featureset.to_yaml())
    np.testing.assert_array_equal(again.compute(x, 1.0)[0], featureset.compute(x, 1.0)[0])


def test_unknown_feature_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown feature 'fcx'; valid features: fc, fc_corr, .*kuramoto_order"):
        FeatureSet.from_yaml("- {name: fcx}")
    message = r"unknown option\(s\) \['window'\] for feature 'fcd'; valid options: window_samples"
    with pytest.raises(ValueError, match=message):
        FeatureSet([{"name": "fcd", "window": 30}])
    with pytest.raises(ValueError, match=r"feature 'homotopic_fc' needs option\(s\) \['pairs'\]"):
        FeatureSet(["homotopic_fc"])
    with pytest.raises(ValueError, match="at least one feature"):
        FeatureSet([])
    with pytest.raises(ValueError, match="one key, 'features'"):
        FeatureSet.from_dict({"feature": ["fc"]})


def test_duplicate_columns_need_a_prefix(signals, rng):
    twice = [
        {"name": "fcd", "window_samples": 20, "step_samples": 5},
        {"name": "fcd", "window_samples": 40, "step_samples": 5},
    ]
    with pytest.raises(ValueError, match=r"duplicate feature columns .*'fcd_mean'.*prefix"):
        FeatureSet(twice).names(3, 200, 1.0)
    twice[1]["prefix"] = "w40."
    featureset = FeatureSet(twice)
    values, names = featureset.compute(signals(rng, 2, 200, 3), 1.0)
    assert names[-1] == "w40.fcd_fluidity" and values.shape == (2, 16)
    assert FeatureSet.from_yaml(featureset.to_yaml()) == featureset


def test_names_fail_early_when_the_series_is_too_short():
    featureset = FeatureSet([{"name": "fcd", "window_ms": 60000, "step_ms": 2000}])
    with pytest.raises(ValueError, match="longer than the series"):
        featureset.names(n_nodes=68, n_time=20, dt_ms=2000.0)
    assert len(featureset.names(n_nodes=68, n_time=300, dt_ms=2000.0)) == 8


def test_dataarray_entry_point(signals, rng):
    x = signals(rng, 3, 300, 4)
    da = xr.DataArray(
        x.transpose(2, 0, 1),
        dims=("node", "sim", "time"),
        coords={"sim": [10, 11, 12], "time": 2.0 * np.arange(300)},
    )
    featureset = FeatureSet(["moments", {"name": "psd", "nperseg": 128}])
    out = featureset.compute_dataarray(da)
    values, names = featureset.compute(x, dt_ms=2.0)
    assert out.dims == ("sim", "feature") and out.dtype == np.float32
    assert list(out.feature.values) == names and list(out.sim.values) == [10, 11, 12]
    np.testing.assert_array_equal(out.values, values)
    assert FeatureSet.from_dict(json.loads(out.attrs["featureset"])) == featureset


def test_registry_options_come_from_signatures():
    assert FEATURES["fcd"].options == ("window_samples", "step_samples", "window_ms", "step_ms", "quantiles")
    assert FEATURES["fcd"].uses_dt and not FEATURES["fc"].uses_dt
    assert FEATURES["fc_corr"].required == ("empirical_fc",)
    assert array_namespace(np.zeros(3)) is np


def test_compute_rejects_wrong_ndim():
    with pytest.raises(ValueError, match=r"shaped \(sim, time, node\); got 2 dimensions, shape \(100, 4\)"):
        FeatureSet(["moments"]).compute(np.zeros((100, 4)), 1.0)


def test_bold_from_a_simulation_is_a_signal(signals, rng):
    """Simulation.run names BOLD's time dim time_bold: features take it as time."""
    x = signals(rng, 2, 120, 3)
    bold = xr.DataArray(x, dims=("sim", "time_bold", "node"), coords={"time_bold": 720.0 * np.arange(120)})
    featureset = FeatureSet(["fc", {"name": "psd", "nperseg": 32}])
    values, _ = featureset.compute(x, dt_ms=720.0)
    np.testing.assert_array_equal(featureset.compute_dataarray(bold).values, values.astype(np.float32))


def test_compute_in_groups_of_simulations_gives_the_same_matrix(signals, rng, monkeypatch):
    """Large CPU batches are computed a few simulations at a time (bounded workspace)."""
    from vbi_dask.features import featureset as module

    x = signals(rng, 5, 200, 4)
    featureset = FeatureSet(
        [
            "moments",
            "fc",
            {"name": "fcd", "window_samples": 20, "step_samples": 5},
            {"name": "psd", "nperseg": 64, "bands": {"slow": [0, 50], "fast": [50, 200]}},
            "kuramoto_order",
        ]
    )
    whole, names = featureset.compute(x, dt_ms=2.0)
    monkeypatch.setattr(module, "CPU_WORKSPACE_BYTES", 2 * x[0].nbytes)  # groups of 2, 2 and 1
    grouped, grouped_names = featureset.compute(x, dt_ms=2.0)
    assert grouped_names == names and grouped.shape == (5, len(names))
    np.testing.assert_allclose(grouped, whole, rtol=1e-6, atol=1e-7)


def test_an_entry_names_its_signal_in_its_columns():
    fs = FeatureSet(
        [
            {"name": "moments", "stats": ["std"], "signal": "eeg"},
            {"name": "moments", "stats": ["std"]},
            {"name": "fc", "signal": "bold", "prefix": "z_"},
        ]
    )
    assert fs.signals == ("eeg", None, "bold")
    names = fs.names_of({"eeg": (2, 50, 10.0), None: (3, 50, 10.0), "bold": (3, 20, 100.0)})
    assert names == [
        "eeg.std[0]",
        "eeg.std[1]",
        "std[0]",
        "std[1]",
        "std[2]",
        "bold.z_fc[0,1]",
        "bold.z_fc[0,2]",
        "bold.z_fc[1,2]",
    ]
    # written only when given: feature sets without signals describe themselves as before
    assert fs.to_dict()["features"][1] == {"name": "moments", "stats": ["std"]}
    assert FeatureSet.from_dict(fs.to_dict()) == fs
    rng = np.random.default_rng(0)
    eeg, node, bold = rng.normal(size=(4, 50, 2)), rng.normal(size=(4, 50, 3)), rng.normal(size=(4, 20, 3))
    values, computed = fs.compute_signals(
        {"eeg": eeg, None: node, "bold": bold}, {"eeg": 10.0, None: 10.0, "bold": 100.0}
    )
    assert computed == names
    expected = np.concatenate(
        [eeg.std(1), node.std(1), np.array([np.corrcoef(b.T)[np.triu_indices(3, 1)] for b in bold])], axis=1
    )
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"signal\(s\) \['bold'\] not given"):
        fs.compute_signals({"eeg": eeg, None: node}, {"eeg": 10.0, None: 10.0})
