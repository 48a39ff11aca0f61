"""How a training runs: torch threads from the CPU share, seeding that leaves the global
random states alone, progress readable in a file, and the Lightning options passed on."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from vbi_dask.train import train_posterior
from vbi_dask.train import _runtime
from vbi_dask.train._callbacks import TrainingProgress

from .conftest import TINY, write_lg_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "lg.zarr"
    return write_lg_store(path, 2000, seed=4, chunk_size=100)


def test_threads_from_the_cpu_share(monkeypatch):
    monkeypatch.setattr(_runtime, "_cgroup_cpu_quota", lambda: None)
    monkeypatch.setattr(_runtime.os, "sched_getaffinity", lambda pid: {0, 1})
    assert _runtime.cpu_share() == 2 and _runtime.training_threads() == 1
    monkeypatch.setattr(_runtime.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert _runtime.training_threads() == 7
    assert _runtime.training_threads(processes=2) == 3  # two data-parallel ranks share the CPUs
    assert _runtime.training_threads(3) == 3
    monkeypatch.setattr(_runtime, "_cgroup_cpu_quota", lambda: 2.5)  # a container limited to 2.5 CPUs
    assert _runtime.cpu_share() == 2
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        _runtime.training_threads(0)


def test_cgroup_quota_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _runtime._cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _runtime._cgroup_cpu_quota(tmp_path) is None


def test_threads_inside_a_dask_worker():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        assert client.submit(_runtime.cpu_share, pure=False).result() == 3
    assert _runtime._dask_worker_threads() is None


class Epochs(Callback):
    def __init__(self):
        self.seen = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(trainer.current_epoch)


def test_progress_in_a_file_options_and_global_state(store, tmp_path, capsys):
    """Output captured (not a terminal): a line for the first epoch, then at most one per
    10 s, and one at the end; no carriage returns. A logger object, extra callbacks,
    precision and threads are passed on; global random states and threads are left as
    they were."""
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    threads_before = torch.get_num_threads()
    epochs = Epochs()
    post = train_posterior(
        store,
        estimator=TINY,
        max_epochs=3,
        seed=1,
        threads=1,
        precision="32-true",
        callbacks=[epochs],
        logger=CSVLogger(tmp_path / "mine", name="run"),
    )
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert lines[0].startswith("epoch 0: train loss ") and "val loss" in lines[0] and "best" in lines[0]
    best = post.info.training["best_val_loss"]
    assert (
        lines[-1].startswith("training done after 3 epochs (max_epochs): best val loss") and f"{best:.4f}" in lines[-1]
    )
    assert epochs.seen == [0, 1, 2]
    assert list((tmp_path / "mine" / "run").rglob("metrics.csv"))
    training = post.info.training
    assert training["threads"] == 1 and training["precision"] == "32-true"
    assert torch.get_num_threads() == threads_before
    assert random.getstate() == states[0]
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])

    # no logger at all: the history is still there; the checkpoints are kept in log_dir
    quiet = train_posterior(
        store, estimator=TINY, max_epochs=2, seed=1, logger=False, progress=False, log_dir=tmp_path / "nolog"
    )
    assert len(quiet.info.training["history"]) == 2 and not capsys.readouterr().err
    assert not (tmp_path / "nolog" / "logs").exists()
    assert {p.name for p in (tmp_path / "nolog" / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    with pytest.raises(ValueError, match="unknown logger 'wandb'"):
        train_posterior(store, estimator=TINY, max_epochs=1, logger="wandb")


def test_progress_in_a_terminal_is_a_tqdm_bar(store):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    # a progress bar among the callbacks replaces ours
    train_posterior(store, estimator=TINY, max_epochs=2, callbacks=[TrainingProgress(stream=terminal)])
    text = terminal.getvalue()
    assert "\r" in text and "epochs" in text and "2/2" in text and "best" in text
