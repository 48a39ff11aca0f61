"""Training options declared once (TrainConfig): the Python keywords, the YAML keys and the
command-line flags of ``vbi-dask train`` and ``vbi-dask sequential`` are its fields, with
its defaults."""

import argparse

import pytest
import torch

from vbi_dask.cli import build_parser
from vbi_dask.train import train_posterior
from vbi_dask.train._cli import training_config
from vbi_dask.train.config import EstimatorConfig, TrainConfig


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_no_flags_give_the_dataclass_defaults():
    assert training_config(_parse("train", "s.zarr")) == TrainConfig()
    assert training_config(_parse("train", "s.zarr", "--quiet")) == TrainConfig(progress=False)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--batch-size", "7"], {"batch_size": 7}),
        (["--learning-rate", "0.01"], {"learning_rate": 0.01}),
        (["--stop-after-epochs", "3"], {"stop_after_epochs": 3}),
        (["--clip-max-norm", "none"], {"clip_max_norm": None}),
        (["--clip-max-norm", "2.5"], {"clip_max_norm": 2.5}),
        (["--devices", "auto"], {"devices": "auto"}),
        (["--devices", "2"], {"devices": 2}),
        (["--features", "fc_*", "psd_1"], {"features": ("fc_*", "psd_1")}),
        (["--validation-fraction", "0.2", "--split-seed", "4"], {"validation_fraction": 0.2, "split_seed": 4}),
        (["--method", "nre"], {"method": "nre"}),
        (["--sample-with", "rejection"], {"sample_with": "rejection"}),
        (["--estimator", "maf"], {"estimator": EstimatorConfig(model="maf")}),
        (
            ["--hidden-features", "8", "--embedding", "16,4"],
            {"estimator": EstimatorConfig(model="nsf", hidden_features=8, embedding=(16, 4))},
        ),
        # the architecture's default model follows the method
        (
            ["--method", "nre", "--hidden-features", "8"],
            {"method": "nre", "estimator": EstimatorConfig(model="resnet", hidden_features=8)},
        ),
    ],
)
def test_each_flag_sets_the_field_of_its_name(argv, expected):
    assert training_config(_parse("train", "s.zarr", *argv)) == TrainConfig(**expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "must be a positive integer"),
        (["--validation-fraction", "1.5"], "must be a fraction in [0, 1)"),
        (["--embedding", "16,x"], "comma-separated positive widths"),
        (["--method", "abc"], "invalid choice"),
    ],
)
def test_bad_flag_values_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        _parse("train", "s.zarr", *argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_yaml_settings_with_flags_over_them(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("batch_size: 64\nlearning_rate: 0.002\nestimator: {model: maf, hidden_features: 8}\n")
    from vbi_dask._cli_common import read_yaml

    args = _parse("train", "s.zarr", "--config", str(path), "--learning-rate", "0.01", "--num-transforms", "2")
    assert training_config(args, read_yaml(path)) == TrainConfig(
        batch_size=64, learning_rate=0.01, estimator=EstimatorConfig(model="maf", hidden_features=8, num_transforms=2)
    )
    # a flag naming the model keeps the YAML's other architecture settings
    args = _parse("train", "s.zarr", "--estimator", "nsf")
    assert training_config(args, read_yaml(path)).estimator == EstimatorConfig(model="nsf", hidden_features=8)


def test_unknown_settings_are_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['batch_sise'\]; valid: method, estimator"):
        TrainConfig.of({"batch_sise": 5})
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['lr'\]"):
        train_posterior("does-not-matter.zarr", lr=0.1)
    with pytest.raises(ValueError, match=r"unknown estimator option\(s\) \['hidden'\]"):
        TrainConfig(estimator={"model": "maf", "hidden": 8}).estimator_config


SEQUENTIAL = ["sequential", "b.yaml", "--store", "s.zarr", "--observed", "o.npy", "--rounds", "2", "--per-round", "100"]


def test_the_sequential_command_reads_the_same_flags_apart_from_its_own_method():
    args = _parse(*SEQUENTIAL, "--method", "snpe-c", "--batch-size", "50", "--hidden-features", "8")
    assert args.method == "snpe-c"  # the sequential method, not the training's
    assert training_config(args) == TrainConfig(batch_size=50, estimator=EstimatorConfig(hidden_features=8))
    with pytest.raises(SystemExit):  # only the settings that make a round's proposal
        _parse(*SEQUENTIAL, "--accelerator", "gpu")


def test_a_config_object_and_keywords_train_the_same_weights(lg_store):
    settings = dict(
        estimator=EstimatorConfig(model="maf", hidden_features=8, num_transforms=1),
        max_epochs=2,
        batch_size=100,
        seed=3,
        progress=False,
        logger=False,
        threads=1,
    )
    by_keywords = train_posterior(lg_store, **settings)
    by_config = train_posterior(lg_store, TrainConfig(**{**settings, "seed": 0}), seed=3)
    a, b = by_keywords.posterior_estimator.state_dict(), by_config.posterior_estimator.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
