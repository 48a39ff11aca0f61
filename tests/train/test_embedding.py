"""The raw-signal embedding: a 1-D CNN per channel pooled over channels, trained end to end
with the flow from raw feature columns of a store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vbi_dask.features import FeatureSet
from vbi_dask.train import SignalCNN, load_posterior, sample_posterior, save_posterior, train_posterior
from vbi_dask.train._synthetic import linear_gaussian_prior, write_store

T, C = 32, 4
NAMES = [f"eeg.raw[{t},{c}]" for t in range(T) for c in range(C)]


def test_the_raw_feature_is_the_signal_cropped_and_decimated():
    x = np.random.default_rng(0).normal(size=(3, 50, 5))
    values, names = FeatureSet([{"name": "raw", "start": 4, "stop": 44, "decimate": 5}]).compute(x, 1.0)
    np.testing.assert_array_equal(values, x[:, 4:44:5, :].reshape(3, -1).astype(np.float32))
    assert names[:6] == ["raw[0,0]", "raw[0,1]", "raw[0,2]", "raw[0,3]", "raw[0,4]", "raw[1,0]"]
    assert len(names) == 8 * 5
    with pytest.raises(ValueError, match=r"the window \[start, stop\) = \[4, 60\) must lie within the signal's 50"):
        FeatureSet([{"name": "raw", "start": 4, "stop": 60}]).names(5, 50, 1.0)


def test_the_cnn_does_not_depend_on_the_order_of_channels():
    torch.manual_seed(0)
    net = SignalCNN(NAMES + ["psd_peak_hz"], widths=(6, 8), kernel=3, head=(5,)).eval()
    x = torch.randn(7, T * C + 1)
    order = torch.tensor([2, 0, 3, 1])
    grid = x[:, :-1].view(7, T, C)
    shuffled = torch.cat([grid[:, :, order].reshape(7, -1), x[:, -1:]], dim=1)
    torch.testing.assert_close(net(shuffled), net(x), rtol=1e-5, atol=1e-6)
    assert net(x).shape == (7, 5)
    # a column left out (constant over the training rows) is read as its standardised mean, 0
    full, partial = SignalCNN(NAMES, (6, 8), 3), SignalCNN(NAMES[1:], (6, 8), 3)
    weights = {k: v for k, v in full.state_dict().items() if "convolutions" in k}
    partial.load_state_dict(weights, strict=False)
    x0 = x[:, :-1].clone()
    x0[:, 0] = 0.0
    torch.testing.assert_close(partial(x[:, 1:-1]), full(x0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs 'raw' feature columns"):
        SignalCNN(["fc[0,1]"])


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory):
    """Raw signals whose sinusoid's amplitude is exp(theta[0] / 3) (theta[1] is not in them)."""
    rng = np.random.default_rng(1)
    n = 3000
    theta = rng.uniform(-3, 3, (n, 2)).astype(np.float32)
    wave = np.sin(np.linspace(0, 6 * np.pi, T))[None, :, None]
    x = np.exp(theta[:, :1, None] / 3) * wave * np.array([1.0, -0.5, 0.8, 0.2])[None, None] + 0.3 * rng.normal(
        size=(n, T, C)
    )
    path = tmp_path_factory.mktemp("raw") / "raw.zarr"
    write_store(
        path, theta, x.reshape(n, -1).astype(np.float32), linear_gaussian_prior(2), chunk_size=250, feature_names=NAMES
    )
    return path


def test_a_cnn_posterior_learns_from_raw_signals_and_reloads_identically(raw_store, tmp_path):
    posterior = train_posterior(
        raw_store,
        estimator={"model": "nsf", "hidden_features": 16, "num_transforms": 2, "cnn": [8], "embedding": [8]},
        max_epochs=40,
        stop_after_epochs=5,
        batch_size=100,
        learning_rate=3e-3,
        test_fraction=0.1,
        seed=0,
        progress=False,
        logger=False,
        threads=1,
    )
    rng = np.random.default_rng(5)
    truth = rng.uniform(-2.5, 2.5, (20, 2))
    wave = np.sin(np.linspace(0, 6 * np.pi, T))[None, :, None]
    x = np.exp(truth[:, :1, None] / 3) * wave * np.array([1.0, -0.5, 0.8, 0.2])[None, None] + 0.3 * rng.normal(
        size=(20, T, C)
    )
    samples = sample_posterior(posterior, x.reshape(20, -1).astype(np.float32), 300, seed=0)
    mean = samples.mean("sample").transpose("obs", "param").values
    # the amplitude is read from the raw signal (the CNN pools over time: its sign or phase would not be);
    # the other parameter is not in it (its prior's std is 1.73)
    assert np.corrcoef(mean[:, 0], truth[:, 0])[0, 1] > 0.95
    assert np.abs(mean[:, 0] - truth[:, 0]).mean() < 0.3
    assert samples.sel(param=samples["param"].values[1]).std("sample").mean() > 1.2
    path = save_posterior(posterior, tmp_path / "cnn.pt")
    again = load_posterior(path)
    assert again.info.estimator["cnn"] == [8]
    np.testing.assert_array_equal(
        sample_posterior(again, x[0].reshape(-1).astype(np.float32), 50, seed=1).values,
        sample_posterior(posterior, x[0].reshape(-1).astype(np.float32), 50, seed=1).values,
    )
