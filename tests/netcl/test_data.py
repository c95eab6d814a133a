"""DataLoader: order, reproducibility, batching, upload-ahead values, and bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from netcl.data import ArrayDataset, DataLoader


def _data(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    return x, np.arange(n, dtype=np.int64)


def _labels(loader: DataLoader) -> list[list[int]]:
    return [batch[1].numpy().tolist() for batch in loader]


def _flat(loader: DataLoader) -> list[int]:
    return [label for batch in _labels(loader) for label in batch]


def test_without_shuffle_batches_go_in_order_with_a_short_last_one() -> None:
    assert _labels(DataLoader(_data(), batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _labels(DataLoader(_data(), batch_size=4, drop_last=True)) == [[0, 1, 2, 3],
                                                                           [4, 5, 6, 7]]
    assert len(DataLoader(_data(), batch_size=4)) == 3
    assert DataLoader(_data(), batch_size=4, drop_last=True).num_samples == 8


def test_shuffled_order_is_the_seeded_permutation_of_each_epoch() -> None:
    loader = DataLoader(_data(), batch_size=3, shuffle=True, seed=5)
    epochs = [_flat(loader) for _ in range(3)]
    for epoch, order in enumerate(epochs):
        assert order == np.random.default_rng((5, epoch)).permutation(10).tolist()
    assert epochs[0] != epochs[1]  # a new order every epoch
    again = DataLoader(_data(), batch_size=3, shuffle=True, seed=5)
    again.set_epoch(2)
    assert _flat(again) == epochs[2]  # set_epoch reproduces any epoch
    other_seed = DataLoader(_data(), batch_size=3, shuffle=True, seed=6)
    assert _flat(other_seed) != epochs[0]


@pytest.mark.smoke
def test_batches_hold_the_rows_they_name_as_float32_and_int64() -> None:
    x, y = _data(23)
    loader = DataLoader((x, y), batch_size=5, shuffle=True, seed=1)
    seen = []
    for xb, yb in loader:
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        rows = yb.numpy()
        np.testing.assert_array_equal(xb.numpy(), x[rows].astype(np.float32))
        seen += rows.tolist()
    assert sorted(seen) == list(range(23))  # every item once


def test_an_indexable_dataset_is_stacked_per_field() -> None:
    class Squares:
        def __len__(self) -> int:
            return 7

        def __getitem__(self, i: int) -> tuple[Any, int]:
            return np.full((2, 2), i * i, np.float32), i

    batches = list(DataLoader(Squares(), batch_size=3, shuffle=True, seed=0))
    assert [b[0].shape for b in batches] == [(3, 2, 2), (3, 2, 2), (1, 2, 2)]
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy()[:, 0, 0], yb.numpy() ** 2)


def test_array_dataset_and_a_sampler() -> None:
    x, y = _data(6)
    loader = DataLoader(ArrayDataset(x, y), batch_size=4, sampler=[5, 3, 1])
    assert _labels(loader) == [[5, 3, 1]]


def test_the_sampler_gets_each_epoch() -> None:
    class EpochSampler:
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def __iter__(self) -> Any:
            return iter([self.epochs[-1]])

        def __len__(self) -> int:
            return 1

    sampler = EpochSampler()
    loader = DataLoader(_data(), batch_size=2, sampler=sampler)
    loader.set_epoch(4)
    assert [_labels(loader) for _ in range(2)] == [[[4]], [[5]]]


def test_uploads_ahead_do_not_disturb_values_already_handed_out() -> None:
    # The next batch is enqueued before this one is returned: both must stay intact.
    x, y = _data(40)
    batches = list(DataLoader((x, y), batch_size=8, shuffle=True, seed=3))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()].astype(np.float32))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
        ({"batch_size": 2.0}, ValueError, "batch_size must be an int >= 1"),
        ({"seed": "x"}, TypeError, "seed must be an int"),
        ({"sampler": [0], "shuffle": True}, ValueError, "shuffle=False with a sampler"),
        ({"device": "tpu"}, Exception, "unknown device kind 'tpu'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        DataLoader(_data(), **kwargs)


def test_bad_datasets() -> None:
    with pytest.raises(ValueError, match=r"different lengths \[3, 4\]"):
        DataLoader((np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="0-d array"):
        DataLoader((np.zeros(()),))
    with pytest.raises(TypeError, match="expected a tuple of arrays or an indexable dataset"):
        DataLoader(iter([1, 2]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        ArrayDataset(np.zeros(3), np.zeros(2))
