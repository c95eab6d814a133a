"""DistributedSampler: disjoint slices whose union is the epoch's permutation, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from netcl.distributed import DistributedSampler


@pytest.mark.smoke
@pytest.mark.parametrize(("n", "k"), [(10, 1), (12, 4), (10, 4), (3, 4)])
def test_slices_are_disjoint_and_cover_the_permutation(n: int, k: int) -> None:
    slices = [list(DistributedSampler(n, k, r, seed=7)) for r in range(k)]
    assert all(len(s) == -(-n // k) for s in slices)  # every rank runs the same steps
    flat = [i for s in slices for i in s]
    assert sorted(set(flat)) == list(range(n))
    if n % k == 0:
        assert len(flat) == n  # no repeats when nothing needs padding
    # Rank r holds positions r, r+k, ... of one permutation shared by all ranks.
    one = list(DistributedSampler(n, 1, 0, seed=7))
    padded = np.resize(one, len(flat))
    for r, s in enumerate(slices):
        assert s == padded[r::k].tolist()


def test_seed_and_epoch_decide_the_permutation() -> None:
    a, b = DistributedSampler(50, 2, 1, seed=3), DistributedSampler(50, 2, 1, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(DistributedSampler(50, 2, 1, seed=4)) != first
    assert list(DistributedSampler(6, 2, 1, shuffle=False)) == [1, 3, 5]


def test_drop_last_cuts_to_a_multiple_of_the_world_size() -> None:
    slices = [list(DistributedSampler(10, 4, r, drop_last=True)) for r in range(4)]
    flat = [i for s in slices for i in s]
    assert len(flat) == 8 and len(set(flat)) == 8


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": -1}, ValueError, "num_samples"),
        ({"world_size": 0}, ValueError, "world_size"),
        ({"rank": 2}, ValueError, r"rank must be in \[0, 2\)"),
        ({"rank": 1.0}, TypeError, "rank must be an int"),
        ({"num_samples": 1, "drop_last": True}, ValueError, "every rank empty"),
    ],
)
def test_bad_arguments_raise_naming_them(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"num_samples": 10, "world_size": 2, "rank": 0, **kwargs}
    with pytest.raises(error, match=match):
        DistributedSampler(**args)  # type: ignore[arg-type]
