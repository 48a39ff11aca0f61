"""Resuming a training killed mid-way: the same epochs, best validation loss and weights
as the uninterrupted training (same seed); refusals of what cannot be resumed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from vbi_dask.cli import main
from vbi_dask.train import load_posterior, train_posterior

from .conftest import write_lg_store

# a high learning rate makes the validation loss go up and down: early stopping (patience
# 3) ends the training at epoch 9, its best epoch is 6, and the kill in epoch 8 falls
# where a lost early-stopping or checkpoint state would change the outcome
ESTIMATOR = {"model": "maf", "hidden_features": 8, "num_transforms": 1}
OPTIONS = {"learning_rate": 3e-2, "stop_after_epochs": 3, "max_epochs": 40, "seed": 0}
KILLED_IN_EPOCH = 8

CHILD = r"""
import sys, time
from pathlib import Path
from lightning.pytorch.callbacks import Callback
from vbi_dask.train import EstimatorConfig, train_posterior

store, log_dir, marker, epoch = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])

class Hang(Callback):
    # stands for the moment the process is killed: a few batches into an epoch
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == epoch and batch_idx == 2:
            marker.write_text("hanging")
            time.sleep(600)

train_posterior(store, estimator=EstimatorConfig.from_dict(%(estimator)r), log_dir=log_dir, callbacks=[Hang()],
                progress=False, **%(options)r)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "lg.zarr"
    return write_lg_store(path, 2000, seed=2, chunk_size=100)


def test_a_training_killed_mid_way_and_resumed_ends_as_the_uninterrupted_one(store, tmp_path):
    log_dir, marker = tmp_path / "logs", tmp_path / "hanging"
    script = CHILD % {"estimator": ESTIMATOR, "options": OPTIONS}
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(store), str(log_dir), str(marker), str(KILLED_IN_EPOCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # meanwhile, in this process (whose global random states are not a fresh process's)
        reference = train_posterior(store, estimator=ESTIMATOR, progress=False, **OPTIONS).info.training
        deadline = time.monotonic() + 300
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.communicate(timeout=10)[0] if child.poll() is not None else "timed out"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    last = torch.load(log_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == KILLED_IN_EPOCH - 1  # the last finished epoch
    assert reference["epochs"] > KILLED_IN_EPOCH + 1  # the kill came before the end

    # resume with the command line, as a user would, after moving the log folder (the
    # checkpoints' own record of the best one must follow it)
    moved = log_dir.rename(tmp_path / "moved")
    out = tmp_path / "model.pt"
    code = main(
        [
            "train",
            str(store),
            "--estimator",
            "maf",
            "--hidden-features",
            "8",
            "--num-transforms",
            "1",
            "--learning-rate",
            "0.03",
            "--stop-after-epochs",
            "3",
            "--max-epochs",
            "40",
            "--seed",
            "0",
            "--log-dir",
            str(moved),
            "--resume",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    resumed = load_posterior(out)
    training = resumed.info.training
    assert training["resumed_from_epoch"] == KILLED_IN_EPOCH
    # bit-identical: the epochs' batches depend on (seed, epoch) only, every epoch is
    # seeded from (seed, epoch), and the checkpoint holds the weights, Adam's moments,
    # the early-stopping counter and the best checkpoint
    assert training["history"] == reference["history"]
    assert (training["epochs"], training["best_epoch"]) == (reference["epochs"], reference["best_epoch"])
    assert training["best_val_loss"] == reference["best_val_loss"]
    again = train_posterior(store, estimator=ESTIMATOR, progress=False, **OPTIONS)
    for name, weights in again.posterior_estimator.state_dict().items():
        assert torch.equal(weights, resumed.posterior_estimator.state_dict()[name]), name


def test_resume_refusals(store, tmp_path, capsys):
    base = [
        "train",
        str(store),
        "--estimator",
        "maf",
        "--hidden-features",
        "8",
        "--num-transforms",
        "1",
        "--out",
        str(tmp_path / "m.pt"),
        "--quiet",
    ]
    assert main(base + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume needs the --log-dir" in err and len(err.splitlines()) == 1
    assert main(base + ["--resume", "--log-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint to resume from" in err and len(err.splitlines()) == 1
    with pytest.raises(FileNotFoundError, match="give the log_dir"):
        train_posterior(store, estimator=ESTIMATOR, ckpt_path="last")
    # a checkpoint of another training (here: another learning rate) is refused, naming it
    log_dir = tmp_path / "logs"
    train_posterior(store, estimator=ESTIMATOR, max_epochs=1, log_dir=log_dir, progress=False)
    with pytest.raises(ValueError, match="resumes in the log folder its checkpoint belongs to"):
        train_posterior(
            store, estimator=ESTIMATOR, log_dir=tmp_path / "other", ckpt_path=log_dir / "checkpoints" / "last.ckpt"
        )
    with pytest.raises(ValueError, match="different training.*learning_rate: 0.0005 in the checkpoint, 0.01 now"):
        train_posterior(store, estimator=ESTIMATOR, learning_rate=1e-2, max_epochs=2, log_dir=log_dir, ckpt_path="last")
    # the same one continues, and its logs go beside the first run's
    post = train_posterior(store, estimator=ESTIMATOR, max_epochs=2, log_dir=log_dir, ckpt_path="last", progress=False)
    assert post.info.training["resumed_from_epoch"] == 1 and len(post.info.training["history"]) == 2
    assert (log_dir / "logs" / "metrics.csv").exists()
    assert (log_dir / "logs" / "resumed_from_epoch_1" / "metrics.csv").exists()
