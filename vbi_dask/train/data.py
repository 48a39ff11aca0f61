"""Streaming ``(theta, features)`` from a budget store: split, z-score statistics, batches.

>>> data = StoreData("budget.zarr", validation_fraction=0.1, test_fraction=0.1)
>>> stats = data.zscore()                       # one streamed pass over the training rows
>>> stream = StoreStream(data, "train", batch_size=200, seed=0, epoch=3)
>>> for theta, x in stream: ...                 # float32 tensors (batch, param), (batch, feature)

Only rows with ``done & valid`` are used. Each row's split (train, validation, test) is
a pure function of its global simulation index and the split seed (a SplitMix64 hash),
so it does not depend on the chunking and does not move when the store is extended.

A stream reads the store chunk by chunk (the Zarr chunks along ``sim``), in an order
shuffled per epoch, and shuffles rows within a buffer of ``buffer_chunks`` chunks: the
memory held is bounded by the buffer, never by the store. A background thread reads
the next chunks while the current batches are used. With ``world_size`` ranks (and
DataLoader workers), chunks are dealt round-robin to the shards and every shard yields
the same number of batches, computed from the per-chunk row counts alone (no
communication), so collective operations in distributed training never wait on a rank
that ran out of data.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.utils.data

__all__ = ["SPLITS", "ZScore", "StoreData", "StoreStream", "split_of", "batch_sizes"]

SPLITS = ("train", "validation", "test")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 values (wrapping arithmetic)."""
    z = values.astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_of(sims: np.ndarray, *, validation_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Split of each global simulation index: 0 train, 1 validation, 2 test.

    ``u = hash(seed, sim)`` is uniform on [0, 1): test if ``u < test_fraction``,
    validation if ``u < test_fraction + validation_fraction``, else train.
    """
    key = _splitmix64(np.asarray([seed], dtype=np.uint64))[0]
    u = (_splitmix64(np.asarray(sims, dtype=np.uint64) ^ key) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    out = np.zeros(u.shape, dtype=np.int8)
    out[u < test_fraction + validation_fraction] = 1
    out[u < test_fraction] = 2
    return out


@dataclass(frozen=True)
class ZScore:
    """Means and standard deviations (float64) of theta and of every feature column over
    the training rows, from one streamed pass (Chan et al.'s pairwise update).

    ``x_std`` is the sample standard deviation (ddof=1, like ``torch.std``); columns that
    are constant over the training rows are listed in ``constant`` (their std is 0).
    """

    theta_mean: np.ndarray
    theta_std: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    n_rows: int

    @property
    def constant(self) -> np.ndarray:
        """Indices of feature columns with zero spread (up to float32 rounding)."""
        scale = np.maximum(np.abs(self.x_mean), 1e-30)
        return np.flatnonzero(self.x_std <= 8 * np.finfo(np.float32).eps * scale)

    def to_dict(self) -> dict[str, Any]:
        return {
            "theta_mean": self.theta_mean.tolist(),
            "theta_std": self.theta_std.tolist(),
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "n_rows": self.n_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ZScore":
        return cls(
            *(np.asarray(data[k], dtype=np.float64) for k in ("theta_mean", "theta_std", "x_mean", "x_std")),
            n_rows=int(data["n_rows"]),
        )


class _Moments:
    """Running count, mean and sum of squared deviations (float64), merged per chunk."""

    def __init__(self, width: int):
        self.n, self.mean, self.m2 = 0, np.zeros(width), np.zeros(width)

    def add(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        rows = rows.astype(np.float64)
        n_b, mean_b = len(rows), rows.mean(axis=0)
        m2_b = ((rows - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n - 1, 1))


@dataclass(frozen=True)
class StoreData:
    """The rows of a budget store usable for training, and their split.

    Parameters
    ----------
    store : path of a vbi-dask budget store (Zarr v3, schema version 1).
    validation_fraction, test_fraction : fractions of the simulations (by index hash)
        held out for validation (early stopping) and for testing (diagnostics).
    split_seed : seed of the split hash.

    Raises
    ------
    FileNotFoundError
        No store at ``store``.
    ValueError
        Not a vbi-dask store (see :func:`vbi_dask.store.open_store`), no feature
        columns, no row that is done and valid, no training or validation row, or
        fractions outside [0, 1).
    """

    store: str | os.PathLike
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    split_seed: int = 0

    def __post_init__(self):
        from ..store import open_store

        object.__setattr__(self, "store", os.fspath(Path(os.fspath(self.store)).expanduser().absolute()))
        for name in ("validation_fraction", "test_fraction"):
            value = float(getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
            object.__setattr__(self, name, value)
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must leave rows for training (< 1)")
        ds = open_store(self.store)  # validates the schema (lazy: reads metadata only)
        object.__setattr__(
            self,
            "_meta",
            {
                "param_names": [str(p) for p in ds["param"].values],
                "feature_names": [str(f) for f in ds["feature"].values],
                "attrs": dict(ds.attrs),
            },
        )
        if not self.feature_names:
            raise ValueError(
                f"store {self.store!r} has no feature columns (feature dim of size 0): budget it with a FeatureSet"
            )
        if not self.param_names:
            raise ValueError(f"store {self.store!r} has no parameter columns")
        counts = self.chunk_counts
        if self.usable.sum() == 0:
            done = int(self._flags[0].sum())
            raise ValueError(
                f"store {self.store!r} has no simulation that is done and valid "
                f"({done} of {self.n_sims} done, {done - int(self.usable.sum())} of those invalid): "
                "run the budget first (vbi-dask simulate) or check why simulations diverge"
            )
        for k, split in enumerate(SPLITS[:2]):
            if counts[:, k].sum() == 0:
                raise ValueError(
                    f"store {self.store!r}: no usable row falls in the {split} split "
                    f"({int(self.usable.sum())} usable rows; validation_fraction="
                    f"{self.validation_fraction}, test_fraction={self.test_fraction})"
                )

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_handles", None)  # reopened in each process
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ------------------------------------------------------------------ description
    @property
    def param_names(self) -> list[str]:
        return list(self._meta["param_names"])

    @property
    def feature_names(self) -> list[str]:
        return list(self._meta["feature_names"])

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes, JSON ones still as strings (as stored)."""
        return dict(self._meta["attrs"])

    @property
    def _handles(self) -> dict[str, Any]:
        """The open Zarr group and arrays of this process (not pickled)."""
        handles = self.__dict__.get("_handles")
        if handles is None:
            from ..store import open_arrays

            handles = open_arrays(self.store)
            self.__dict__["_handles"] = handles
        return handles

    @cached_property
    def _flags(self) -> tuple[np.ndarray, np.ndarray]:
        from ..store import read_flags

        handles = self._handles
        return read_flags(self.store, "done", handles), read_flags(self.store, "valid", handles)

    @property
    def n_sims(self) -> int:
        return int(self._flags[0].shape[0])

    @cached_property
    def chunk_size(self) -> int:
        return int(self._handles["features"].chunks[0])

    @cached_property
    def usable(self) -> np.ndarray:
        """``done & valid`` per simulation (bool, n_sims): 1 byte per row, the only
        per-row state kept in memory."""
        done, valid = self._flags
        return done & valid

    @cached_property
    def split(self) -> np.ndarray:
        """0 train, 1 validation, 2 test, -1 unusable (int8, n_sims)."""
        out = split_of(
            np.arange(self.n_sims),
            validation_fraction=self.validation_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
        )
        out[~self.usable] = -1
        return out

    @cached_property
    def chunk_counts(self) -> np.ndarray:
        """Usable rows per (chunk, split): int64 (n_chunks, 3)."""
        n_chunks = -(-self.n_sims // self.chunk_size)
        counts = np.zeros((n_chunks, len(SPLITS)), dtype=np.int64)
        chunk_of = np.arange(self.n_sims) // self.chunk_size
        for k in range(len(SPLITS)):
            counts[:, k] = np.bincount(chunk_of[self.split == k], minlength=n_chunks)
        return counts

    def n_rows(self, split: str) -> int:
        return int(self.chunk_counts[:, _split_index(split)].sum())

    # ------------------------------------------------------------------ reading
    def read_chunk(self, chunk: int, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sim indices, theta float32 (rows, param), features float32 (rows, feature))
        of one chunk's usable rows in ``split``.

        Raises
        ------
        StoreDamagedError
            A chunk cannot be read, or a done and valid row holds non-finite values (a
            missing chunk reads as NaN): never returned as data.
        """
        from ..store import StoreDamagedError, read_rows

        start = chunk * self.chunk_size
        stop = min(start + self.chunk_size, self.n_sims)
        keep = self.split[start:stop] == _split_index(split)
        handles = self._handles
        theta = np.asarray(read_rows(handles["theta"], start, stop, store=self.store, name="theta"), dtype=np.float32)[
            keep
        ]
        x = np.asarray(
            read_rows(handles["features"], start, stop, store=self.store, name="features"), dtype=np.float32
        )[keep]
        sims = np.arange(start, stop)[keep]
        bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(theta).all(axis=1))
        if bad.any():
            rows = sims[bad]
            raise StoreDamagedError(
                f"store {self.store!r}: simulations {rows[:8].tolist()}{' ...' if rows.size > 8 else ''} "
                f"({rows.size} in block [{start}, {stop})) are marked done and valid but hold non-finite theta or "
                f"features (a missing or altered chunk); refusing to use them. Run 'vbi-dask verify "
                f"{self.store} --repair', then re-run the budget"
            )
        return sims, theta, x

    def chunks(self, split: str) -> np.ndarray:
        """Indices of the chunks holding at least one usable row of ``split``."""
        return np.flatnonzero(self.chunk_counts[:, _split_index(split)] > 0)

    def iter_rows(self, split: str, max_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Chunks of (sims, theta, features) of ``split`` in store order, up to ``max_rows``."""
        left = math.inf if max_rows is None else int(max_rows)
        for chunk in self.chunks(split):
            if left <= 0:
                return
            sims, theta, x = self.read_chunk(int(chunk), split)
            take = int(min(left, len(sims)))
            left -= take
            yield sims[:take], theta[:take], x[:take]

    def take(self, split: str, max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sims, theta, features) of up to ``max_rows`` rows of ``split``, in memory
        (for held-out diagnostics, not for training)."""
        parts = list(self.iter_rows(split, max_rows))
        if not parts:
            p, f = len(self.param_names), len(self.feature_names)
            return np.zeros(0, dtype=np.int64), np.zeros((0, p), np.float32), np.zeros((0, f), np.float32)
        return tuple(np.concatenate(items) for items in zip(*parts))

    def zscore(self) -> ZScore:
        """Means and standard deviations over the training rows, one streamed pass."""
        cached = self.__dict__.get("_zscore")
        if cached is None:
            theta_m, x_m = _Moments(len(self.param_names)), _Moments(len(self.feature_names))
            for _, theta, x in self.iter_rows("train"):
                theta_m.add(theta)
                x_m.add(x)
            cached = ZScore(theta_m.mean, theta_m.std, x_m.mean, x_m.std, n_rows=theta_m.n)
            self.__dict__["_zscore"] = cached
        return cached


def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return SPLITS.index(split)


def _shard_plan(order: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """Chunks of each shard: ``order`` dealt round-robin."""
    return [order[s::n_shards] for s in range(n_shards)]


def batch_sizes(
    counts: np.ndarray, order: np.ndarray, n_shards: int, batch_size: int, *, drop_last: bool
) -> list[list[int]]:
    """Sizes of the batches of each shard; every shard gets the same number of batches.

    ``drop_last``: ``min_shard_rows // batch_size`` full batches each (rows beyond are
    left for another epoch). Otherwise every row is used: each shard's rows are split
    into ``ceil(min_shard_rows / batch_size)`` batches of near-equal sizes (at most
    ``batch_size`` with one shard).
    """
    rows = [int(counts[chunks].sum()) for chunks in _shard_plan(order, n_shards)]
    fewest = min(rows)
    if drop_last:
        return [[batch_size] * (fewest // batch_size) for _ in rows]
    n = -(-fewest // batch_size)
    return [[r // n + (1 if k < r % n else 0) for k in range(n)] if n else [] for r in rows]


class StoreStream(torch.utils.data.IterableDataset):
    """An iterable of ``(theta, x)`` float32 tensor batches from one split of a store.

    A ``torch.utils.data.IterableDataset``: use it with ``DataLoader(batch_size=None)``;
    with ``num_workers > 0`` each worker takes its own shard.

    Parameters
    ----------
    data : StoreData
    split : "train", "validation" or "test"
    batch_size : rows per batch
    seed, epoch : the chunk order and the in-buffer shuffle are drawn from
        ``numpy.random.default_rng((seed, epoch[, shard]))``: the same (seed, epoch)
        gives the same batches.
    shuffle : shuffle chunks and rows (training); False: store order.
    drop_last : drop rows that do not fill a batch (always, with several shards, so that
        every shard yields the same number of batches).
    rank, world_size : this process's rank among the training processes.
    buffer_chunks : chunks held and shuffled together (bounds the memory).
    prefetch_chunks : chunks read ahead by a background thread (0: none).
    """

    def __init__(
        self,
        data: StoreData,
        split: str = "train",
        *,
        batch_size: int = 200,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        buffer_chunks: int = 16,
        prefetch_chunks: int = 4,
    ):
        super().__init__()
        _split_index(split)
        if batch_size < 1 or buffer_chunks < 1 or prefetch_chunks < 0:
            raise ValueError("batch_size and buffer_chunks must be >= 1, prefetch_chunks >= 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.data, self.split, self.batch_size = data, split, int(batch_size)
        self.seed, self.epoch, self.shuffle, self.drop_last = int(seed), int(epoch), bool(shuffle), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.buffer_chunks, self.prefetch_chunks = int(buffer_chunks), int(prefetch_chunks)
        chunks = data.chunks(split)
        if shuffle:
            chunks = np.random.default_rng((self.seed, self.epoch)).permutation(chunks)
        self.order = chunks

    def _shard(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def batch_sizes(self, n_shards: int | None = None) -> list[list[int]]:
        """Sizes of the batches of every shard in this epoch (see :func:`batch_sizes`)."""
        n_shards = self._shard()[1] if n_shards is None else n_shards
        counts = self.data.chunk_counts[:, _split_index(self.split)]
        return batch_sizes(counts, self.order, n_shards, self.batch_size, drop_last=self.drop_last)

    def n_batches(self, n_shards: int | None = None) -> int:
        """Batches each shard yields in this epoch."""
        return len(self.batch_sizes(n_shards)[0])

    def __len__(self) -> int:
        return self.n_batches()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shard, n_shards = self._shard()
        sizes = self.batch_sizes(n_shards)[shard]
        chunks = _shard_plan(self.order, n_shards)[shard]
        rng = np.random.default_rng((self.seed, self.epoch, shard))
        emitted = 0
        rest_theta = np.zeros((0, len(self.data.param_names)), np.float32)
        rest_x = np.zeros((0, len(self.data.feature_names)), np.float32)
        reads = _prefetched(self.data, chunks, self.split, self.prefetch_chunks)
        try:
            for group in _grouped(reads, self.buffer_chunks):
                theta = np.concatenate([rest_theta] + [g[1] for g in group])
                x = np.concatenate([rest_x] + [g[2] for g in group])
                if self.shuffle:
                    perm = rng.permutation(len(theta))
                    theta, x = theta[perm], x[perm]
                start = 0
                while emitted < len(sizes) and start + sizes[emitted] <= len(theta):
                    rows = slice(start, start + sizes[emitted])
                    yield _tensor(theta[rows]), _tensor(x[rows])
                    start += sizes[emitted]
                    emitted += 1
                if emitted == len(sizes):
                    return
                rest_theta, rest_x = theta[start:], x[start:]
        finally:
            reads.close()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _grouped(items: Iterator, size: int) -> Iterator[list]:
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _prefetched(data: StoreData, chunks: Sequence[int], split: str, depth: int) -> Iterator:
    """``data.read_chunk`` over ``chunks``, read ``depth`` ahead by a daemon thread."""
    if depth == 0:
        for chunk in chunks:
            yield data.read_chunk(int(chunk), split)
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader():
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                slots.put(data.read_chunk(int(chunk), split))
            slots.put(done)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            slots.put(error)

    thread = threading.Thread(target=reader, daemon=True, name="vbi-dask-prefetch")
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)
