"""Streaming from the store: split, z-score statistics, shuffling, sharding, bad stores."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import zarr

from vbi_dask.train import StoreData, StoreStream, select_features, split_of, train_posterior
from vbi_dask.train._synthetic import linear_gaussian_data, linear_gaussian_prior, write_store
from vbi_dask.train.data import batch_sizes


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """1000 rows in chunks of 64; chunk 3 never written, rows 5 and 700 invalid."""
    path = tmp_path_factory.mktemp("small") / "s.zarr"
    theta, x = linear_gaussian_data(1000, 2, 0.5, seed=4)
    valid = np.ones(1000, bool)
    valid[[5, 700]] = False
    chunks = [c for c in range(-(-1000 // 64)) if c != 3]
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=64, valid=valid, done_chunks=chunks)
    return path, theta, x, valid


def rows(batches) -> np.ndarray:
    """All theta rows of a list of batches, sorted lexicographically (rows identify sims)."""
    theta = np.concatenate([b[0].numpy() for b in batches])
    return theta[np.lexsort(theta.T[::-1])]


def test_split_is_a_function_of_the_index():
    sims = np.arange(100_000)
    split = split_of(sims, validation_fraction=0.1, test_fraction=0.2, seed=0)
    # a prefix of the indices gets the same split: extending a store does not move rows
    assert np.array_equal(split_of(sims[:1234], validation_fraction=0.1, test_fraction=0.2, seed=0), split[:1234])
    assert abs((split == 1).mean() - 0.1) < 0.005 and abs((split == 2).mean() - 0.2) < 0.005
    # not a pattern of the index (grid designs repeat with a period)
    assert abs(np.corrcoef(split[:-1] == 1, split[1:] == 1)[0, 1]) < 0.02
    other = split_of(sims, validation_fraction=0.1, test_fraction=0.2, seed=1)
    assert (other != split).mean() > 0.2


def test_only_done_and_valid_rows_are_streamed(small_store):
    path, theta, _, valid = small_store
    data = StoreData(path, validation_fraction=0.2)
    usable = valid.copy()
    usable[3 * 64 : 4 * 64] = False
    assert np.array_equal(data.usable, usable)
    seen = []
    for split in ("train", "validation"):
        stream = StoreStream(data, split, batch_size=50, shuffle=split == "train", drop_last=False, seed=3)
        batches = list(stream)
        assert len(batches) == len(stream)
        seen.append(rows(batches))
    together = np.concatenate(seen)
    expected = theta[usable]
    assert np.array_equal(together[np.lexsort(together.T[::-1])], expected[np.lexsort(expected.T[::-1])])


def test_zscore_matches_numpy_over_training_rows(small_store):
    path, theta, x, _ = small_store
    data = StoreData(path, validation_fraction=0.2)
    z = data.zscore()
    train = data.split == 0
    assert z.n_rows == train.sum()
    np.testing.assert_allclose(z.theta_mean, theta[train].astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z.x_std, x[train].astype(np.float64).std(0, ddof=1), rtol=1e-12)


def test_shuffle_is_reproducible_and_changes_with_the_epoch(small_store):
    data = StoreData(small_store[0])
    a = list(StoreStream(data, batch_size=32, seed=1, epoch=0, buffer_chunks=3))
    b = list(StoreStream(data, batch_size=32, seed=1, epoch=0, buffer_chunks=3))
    c = list(StoreStream(data, batch_size=32, seed=1, epoch=1, buffer_chunks=3))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    # theta and x stay paired through the shuffle
    theta, x = small_store[1], small_store[2]
    first = a[0][0].numpy()
    index = [int(np.flatnonzero((theta == row).all(1))[0]) for row in first]
    np.testing.assert_array_equal(a[0][1].numpy(), x[index])


def test_memory_is_bounded_by_the_buffer(small_store):
    """The first batch comes out after reading buffer_chunks chunks, not the store."""
    data = StoreData(small_store[0])
    calls = []
    original = StoreData.read_chunk

    def counting(self, chunk, split):
        calls.append(chunk)
        return original(self, chunk, split)

    with mock.patch.object(StoreData, "read_chunk", counting):
        iterator = iter(StoreStream(data, batch_size=32, buffer_chunks=2, prefetch_chunks=0))
        next(iterator)
        assert len(calls) == 2
        iterator.close()


def test_every_rank_gets_the_same_number_of_batches(small_store):
    data = StoreData(small_store[0])
    for world in (2, 3, 5):
        streams = [StoreStream(data, batch_size=20, seed=2, epoch=4, rank=r, world_size=world) for r in range(world)]
        batches = [list(s) for s in streams]
        assert len({len(b) for b in batches}) == 1 and len(batches[0]) > 0
        together = rows([b for rank in batches for b in rank])
        assert len(np.unique(together, axis=0)) == len(together)  # ranks read disjoint rows
        # validation keeps every row: near-equal batch sizes, equal counts
        val = [
            list(
                StoreStream(data, "validation", batch_size=20, shuffle=False, drop_last=False, rank=r, world_size=world)
            )
            for r in range(world)
        ]
        assert len({len(v) for v in val}) == 1
        assert sum(len(b[0]) for v in val for b in v) == data.n_rows("validation")


def test_batch_plan_properties():
    counts = np.array([10, 0, 7, 64, 64, 3])
    order = np.array([5, 0, 2, 3, 4])
    one = batch_sizes(counts, order, 1, 16, drop_last=False)
    assert sum(one[0]) == counts.sum() and max(one[0]) <= 16
    two = batch_sizes(counts, order, 2, 16, drop_last=True)
    assert len(two[0]) == len(two[1]) and all(s == 16 for s in two[0])


def test_dataloader_workers_split_the_chunks(small_store):
    data = StoreData(small_store[0])
    stream = StoreStream(data, batch_size=16, seed=0)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    batches = list(loader)
    together = rows(batches)
    assert len(np.unique(together, axis=0)) == len(together)
    assert len(together) >= data.n_rows("train") - 2 * 16 * 2


def test_feature_selection_by_name_and_prefix():
    names = ["mean[0]", "mean[1]", "std[0]", "fc[0,1]"]
    assert select_features(names, None) == [0, 1, 2, 3]
    assert select_features(names, ["mean*", "fc[0,1]"]) == [0, 1, 3]
    with pytest.raises(ValueError, match="close names.*mean\\[1\\]"):
        select_features(names, ["mean[2]"])


# ---------------------------------------------------------------------- bad stores
def test_store_without_features_variable(tmp_path):
    path = tmp_path / "nofeat.zarr"
    theta, x = linear_gaussian_data(100, 2, 0.5, seed=0)
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=50)
    del zarr.open_group(str(path), mode="r+")["features"]
    with pytest.raises(ValueError, match="lacks variable 'features'"):
        StoreData(path)


def test_store_with_zero_feature_columns(tmp_path):
    path = tmp_path / "zero.zarr"
    theta, _ = linear_gaussian_data(100, 2, 0.5, seed=0)
    write_store(
        path, theta, np.zeros((100, 0), np.float32), linear_gaussian_prior(2), chunk_size=50, valid=np.ones(100, bool)
    )
    with pytest.raises(ValueError, match="no feature columns"):
        train_posterior(path)


def test_store_with_no_valid_rows(tmp_path):
    path = tmp_path / "invalid.zarr"
    theta, x = linear_gaussian_data(100, 2, 0.5, seed=0)
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=50, valid=np.zeros(100, bool))
    with pytest.raises(ValueError, match="no simulation that is done and valid \\(100 of 100 done, 100 of those"):
        train_posterior(path)


def test_store_not_simulated_yet(tmp_path):
    path = tmp_path / "empty.zarr"
    theta, x = linear_gaussian_data(100, 2, 0.5, seed=0)
    write_store(path, theta, x, linear_gaussian_prior(2), chunk_size=50, done_chunks=[])
    with pytest.raises(ValueError, match="0 of 100 done.*run the budget first"):
        StoreData(path)


def test_missing_store_and_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError):
        StoreData(tmp_path / "nothing.zarr")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError):
        StoreData(tmp_path / "file.txt")
