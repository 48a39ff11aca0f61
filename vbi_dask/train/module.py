"""Lightning modules: an sbi density estimator trained by maximum likelihood, and the
data module streaming its batches from a budget store."""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch.utils.data import DataLoader

from .data import StoreData, StoreStream

__all__ = ["DensityEstimatorModule", "StoreDataModule"]


class DensityEstimatorModule(L.LightningModule):
    """Trains an sbi estimator on ``(theta, x)`` batches.

    Loss: the batch mean of ``loss(estimator, theta, x)`` (one value per row); by default
    the negative log-probability ``estimator.loss(theta, x)`` of a
    ``ConditionalDensityEstimator`` of theta given x (sbi's NPE loss for samples from the
    prior); :class:`vbi_dask.train._methods.MethodLoss` gives those of SNPE-C, NLE and
    NRE. Adam at ``learning_rate``. Logs ``train_loss``
    and ``val_loss`` (per-epoch means weighted by batch size, averaged over devices).
    Gradient clipping, early stopping and checkpoints are the Trainer's
    (see :func:`vbi_dask.train.train_posterior`).

    ``run`` (JSON-able) describes what the training depends on besides the weights
    (estimator, features, statistics, split, hyper-parameters); it is written into every
    checkpoint as ``checkpoint["vbi_dask_run"]`` so that a resume can check it.
    """

    def __init__(
        self,
        estimator: torch.nn.Module,
        learning_rate: float = 5e-4,
        *,
        run: dict[str, Any] | None = None,
        loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.estimator = estimator
        self.learning_rate = float(learning_rate)
        self.run = run
        self.loss_fn = loss

    def _loss(self, batch) -> torch.Tensor:
        theta, x = batch
        if self.loss_fn is None:
            return self.estimator.loss(theta, x).mean()
        return self.loss_fn(self.estimator, theta, x).mean()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._loss(batch)
        self.log(
            "val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]), sync_dist=True, prog_bar=True
        )

    def configure_optimizers(self):
        return torch.optim.Adam(self.estimator.parameters(), lr=self.learning_rate)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run is not None:
            checkpoint["vbi_dask_run"] = self.run


class StoreDataModule(L.LightningDataModule):
    """Training and validation batches streamed from a :class:`StoreData`.

    A new stream is made every epoch (use ``Trainer(reload_dataloaders_every_n_epochs=1)``)
    with ``epoch = trainer.current_epoch`` and this process's rank, so the shuffle
    changes every epoch, is reproducible from ``seed``, and each rank reads its own
    chunks and yields the same number of batches. Validation batches are in store order.
    """

    def __init__(
        self,
        data: StoreData,
        *,
        batch_size: int = 200,
        seed: int = 0,
        buffer_chunks: int = 16,
        prefetch_chunks: int = 4,
        num_workers: int = 0,
    ):
        super().__init__()
        self.data = data
        n_train = data.n_rows("train")
        # like sbi: a batch never exceeds the training set
        self.batch_size = int(min(batch_size, n_train))
        self.seed, self.buffer_chunks, self.prefetch_chunks = int(seed), int(buffer_chunks), int(prefetch_chunks)
        self.num_workers = int(num_workers)

    def _stream(self, split: str, shuffle: bool) -> StoreStream:
        trainer = self.trainer
        epoch = trainer.current_epoch if trainer is not None else 0
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return StoreStream(
            self.data,
            split,
            batch_size=self.batch_size,
            seed=self.seed,
            epoch=epoch,
            shuffle=shuffle,
            drop_last=shuffle,
            rank=rank,
            world_size=world,
            buffer_chunks=self.buffer_chunks,
            prefetch_chunks=self.prefetch_chunks,
        )

    def _loader(self, stream: StoreStream) -> DataLoader:
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        stream = self._stream("train", shuffle=True)
        if stream.n_batches(stream.world_size * max(1, self.num_workers)) == 0:
            raise ValueError(
                f"{self.data.n_rows('train')} training rows give no full batch of {self.batch_size} "
                f"on each of {stream.world_size * max(1, self.num_workers)} shards; lower batch_size"
            )
        return self._loader(stream)

    def val_dataloader(self) -> DataLoader:
        stream = self._stream("validation", shuffle=False)
        if stream.n_batches(stream.world_size * max(1, self.num_workers)) == 0:
            raise ValueError(
                f"the validation split ({self.data.n_rows('validation')} rows in "
                f"{len(self.data.chunks('validation'))} chunks) leaves a shard without rows; raise "
                "validation_fraction or use fewer devices/workers"
            )
        return self._loader(stream)
