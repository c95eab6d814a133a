"""DistributedSampler: each rank's share of a dataset's indices, disjoint and reproducible."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class DistributedSampler:
    """The indices of ``num_samples`` items that rank ``rank`` of ``world_size`` reads this epoch.

    Every epoch all ranks draw the same permutation (from ``seed`` and the
    epoch set by ``set_epoch``; ``shuffle=False`` keeps 0..n-1) and rank r
    takes positions r, r + world_size, r + 2 * world_size, ... of it, so the
    ranks' slices are disjoint and their union is the permutation. Batching
    a rank's slice in ``global_batch / world_size`` items therefore gives, at
    each step, rank shares of one global batch of consecutive permuted items:
    the same batches one process would draw with ``world_size=1``.

    Every rank must run the same number of steps (a rank short of a batch
    would leave the others waiting in a collective), so every rank gets
    ``ceil(n / world_size)`` indices: the permutation is padded by repeating
    its first items (``drop_last=False``, PyTorch's rule) or cut to a
    multiple of ``world_size`` (``drop_last=True``).

    >>> [list(DistributedSampler(5, 2, r, shuffle=False)) for r in range(2)]
    [[0, 2, 4], [1, 3, 0]]
    """

    def __init__(
        self,
        num_samples: int,
        world_size: int,
        rank: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        for name, value in (("num_samples", num_samples), ("world_size", world_size),
                            ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
        if num_samples < 0:
            raise ValueError(f"DistributedSampler: num_samples must be >= 0, got {num_samples}")
        if world_size < 1:
            raise ValueError(f"DistributedSampler: world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {world_size}), got {rank}"
            )
        if drop_last and num_samples < world_size:
            raise ValueError(
                f"DistributedSampler: drop_last with {num_samples} samples and {world_size} "
                "ranks leaves every rank empty"
            )
        self.num_samples = int(num_samples)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next permutation: call with the epoch number before each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n, k = self.num_samples, self.world_size
        return n // k if self.drop_last else -(-n // k)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch))
            order = rng.permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = len(self) * self.world_size
        if total > len(order):
            order = np.resize(order, total)  # repeats from the start, as many times as needed
        return iter(order[self.rank:total:self.world_size].tolist())
