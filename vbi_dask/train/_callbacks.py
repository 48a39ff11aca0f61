"""Lightning callbacks of :func:`vbi_dask.train.train_posterior`.

- :class:`History`: per-epoch losses, kept in the checkpoints (a resumed training has the
  epochs before the interruption too, whatever the logger);
- :class:`EpochSeed`: seeds every epoch from (seed, epoch), so that a resumed training
  draws what an uninterrupted one would;
- :class:`TorchThreads`: torch's intra-op threads while training, in every training
  process (also those Lightning spawns);
- :class:`TrainingProgress`: epoch, losses, best so far, time (tqdm bars when live,
  otherwise a line per epoch at most every few seconds);
- :class:`FolderCheckpoint`: Lightning's ``ModelCheckpoint``, resumable from a moved log
  folder.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar

from .._progress import LINE_INTERVAL_S, duration, is_live, live_bar
from ._runtime import epoch_seed, training_threads

__all__ = ["History", "EpochSeed", "TorchThreads", "TrainingProgress", "FolderCheckpoint"]

LOSSES = ("train_loss", "val_loss")


class History(Callback):
    """``rows``: ``{"epoch", "train_loss", "val_loss"}`` per finished epoch (epochs from 0)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # resumed from an earlier checkpoint than the last: forget the epochs after it
        self.rows = [row for row in self.rows if row["epoch"] < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs before the checkpoint of this epoch is written (Lightning calls the
        # checkpoint and early-stopping callbacks last), so the checkpoint holds this row
        row: dict[str, float] = {"epoch": int(trainer.current_epoch)}
        for key in LOSSES:
            if key in trainer.callback_metrics:
                row[key] = float(trainer.callback_metrics[key])
        self.rows.append(row)

    def best(self) -> dict[str, float] | None:
        """The row of the lowest validation loss (the first one on ties)."""
        rows = [row for row in self.rows if "val_loss" in row and not math.isnan(row["val_loss"])]
        return min(rows, key=lambda row: row["val_loss"]) if rows else None

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict["rows"]]


class EpochSeed(Callback):
    """``lightning.seed_everything(epoch_seed(seed, epoch), workers=True)`` at the start of
    every training epoch: whatever draws the training makes (dropout, a custom embedding)
    depend on (seed, epoch) only, not on what ran before in the process."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        L.seed_everything(epoch_seed(self.seed, trainer.current_epoch), workers=True, verbose=False)


class TorchThreads(Callback):
    """``torch.set_num_threads`` for the training (see :func:`training_threads`: ``threads``
    if given, else from the CPU share of the process, split among the training processes
    of this machine); the previous value is restored at the end."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.used: int | None = None
        self._previous: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._previous = torch.get_num_threads()
        # data-parallel ranks on the CPU share its CPUs
        cpu_ranks = trainer.num_devices if isinstance(trainer.accelerator, CPUAccelerator) else 1
        self.used = training_threads(self.threads, processes=cpu_ranks)
        torch.set_num_threads(self.used)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None


class TrainingProgress(ProgressBar):
    """Training progress on ``stream`` (default ``sys.stderr``), from rank 0; the best
    validation loss so far is read from the trainer's :class:`History` callback.

    Live (a terminal or a notebook, see :func:`vbi_dask._progress.is_live`): a tqdm bar
    over the epochs (its ETA is to ``max_epochs``: early stopping may end sooner) with
    the last losses and the best validation loss, and a bar over the batches of the
    current epoch. Otherwise: one line per epoch, at most every ``interval_s`` seconds
    (and always the first), then one at the end, e.g.::

        epoch 12: train loss 1.2340, val loss 1.3000, best 1.2900 (epoch 10), 0.8s/epoch, elapsed 9.6s, ...
        training done after 40 epochs (early stopping): best val loss 1.2513 (epoch 20), elapsed 32s
    """

    def __init__(self, *, stream=None, interval_s: float = LINE_INTERVAL_S, live: bool | None = None):
        super().__init__()
        self._stream, self.interval_s, self._live = stream, float(interval_s), live
        self.history: History | None = None  # the trainer's History callback, if any
        self._enabled = True
        self._epochs = self._batches = None
        self._start = self._last_line = 0.0
        self._first_epoch = 0

    def __getstate__(self):  # for spawned training processes: no open bars or streams
        state = dict(self.__dict__)
        state.update(_epochs=None, _batches=None, _stream=None)
        return state

    @property
    def stream(self):
        return sys.stderr if self._stream is None else self._stream

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _active(self, trainer: L.Trainer) -> bool:
        return self._enabled and trainer.is_global_zero and not trainer.sanity_checking

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer):
            return
        self.history = next((c for c in trainer.callbacks if isinstance(c, History)), None)
        self._start = time.perf_counter()
        self._last_line = -math.inf
        self._first_epoch = trainer.current_epoch
        if is_live(self.stream) if self._live is None else self._live:
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            self._epochs = live_bar(
                total=total,
                initial=trainer.current_epoch,
                desc="epochs",
                unit="epoch",
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )
        elif trainer.current_epoch > 0:
            self._write(f"resuming at epoch {trainer.current_epoch} from {trainer.ckpt_path}")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epochs is None or not self._active(trainer):
            return
        total = trainer.num_training_batches
        self._batches = live_bar(
            total=total if math.isfinite(total) else None,
            desc=f"epoch {trainer.current_epoch}",
            unit="batch",
            file=self.stream,
            dynamic_ncols=True,
            leave=False,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._batches is not None:
            self._batches.update(1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer):
            return
        epoch = trainer.current_epoch
        metrics = trainer.callback_metrics
        row = {key: float(metrics[key]) for key in LOSSES if key in metrics}
        best = self._best()
        losses = ", ".join(
            f"{name} {row[key]:.4f}" for key, name in zip(LOSSES, ("train loss", "val loss")) if key in row
        )
        if best is not None:
            losses += f", best {best['val_loss']:.4f} (epoch {best['epoch']})"
        if self._batches is not None:
            self._batches.close()
            self._batches = None
        if self._epochs is not None:
            self._epochs.set_postfix_str(losses, refresh=False)
            self._epochs.update(1)
            return
        now = time.perf_counter()
        if epoch == self._first_epoch or now - self._last_line >= self.interval_s:
            elapsed = now - self._start
            per_epoch = elapsed / (epoch - self._first_epoch + 1)
            text = f"epoch {epoch}: {losses}, {duration(per_epoch)}/epoch, elapsed {duration(elapsed)}"
            left = trainer.max_epochs - epoch - 1 if trainer.max_epochs and trainer.max_epochs > 0 else 0
            if left > 0:
                text += f", at most {duration(left * per_epoch)} left"
            self._write(text)
            self._last_line = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer):
            return
        self._close_bars()
        epochs = trainer.current_epoch
        best = self._best()
        if any(isinstance(c, EarlyStopping) and c.stopped_epoch for c in trainer.callbacks):
            why = "early stopping"
        elif trainer.max_epochs is not None and 0 < trainer.max_epochs <= epochs:
            why = "max_epochs"
        else:
            why = "stopped"
        text = f"training done after {epochs} epochs ({why})"
        if best is not None:
            text += f": best val loss {best['val_loss']:.4f} (epoch {best['epoch']})"
        self._write(f"{text}, elapsed {duration(time.perf_counter() - self._start)}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._close_bars()
        self._write(f"training stopped in epoch {trainer.current_epoch} ({type(exception).__name__})")

    def _best(self) -> dict[str, float] | None:
        return None if self.history is None else self.history.best()

    def _close_bars(self) -> None:
        for name in ("_batches", "_epochs"):
            bar = getattr(self, name)
            if bar is not None:
                bar.close()
                setattr(self, name, None)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class FolderCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, whose state is restored also when the log folder was
    moved or copied since the checkpoint was written: the paths in it are rebased onto
    this callback's folder. (Lightning keeps only ``best_model_path`` then, and the
    resumed training would take its first epoch for the best one.)"""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        folder = state_dict.get("dirpath")
        if folder is not None and folder != self.dirpath:

            def moved(path):
                return os.path.join(self.dirpath, os.path.basename(path)) if path else path

            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = moved(state_dict[key])
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {
                    moved(path): score for path, score in state_dict["best_k_models"].items()
                }
        super().load_state_dict(state_dict)
