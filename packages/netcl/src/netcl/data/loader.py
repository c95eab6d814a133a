"""DataLoader: mini-batches of a dataset as netcl Tensors, the next one uploading ahead."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, cast

import numpy as np
import pyopencl as cl

from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, empty
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.core.tensor.launch import transfer
from netcl.data.datasets import ArrayDataset

Batch = tuple[Tensor, ...]


class IndexableDataset(Protocol):
    """Anything with a length whose items are tuples of arrays or numbers (x, y)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


class Sampler(Protocol):
    """An iterable of dataset indices, such as ``netcl.distributed.DistributedSampler``."""

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


class DataLoader:
    """Yields each mini-batch of ``dataset`` as a tuple of Tensors ``(x, y)`` on ``device``.

    Args:
        dataset: a tuple of numpy arrays of equal length (``(x, y)``), an
            :class:`~netcl.data.ArrayDataset`, or any object with ``len`` and
            ``[i]`` returning a tuple of arrays or numbers (stacked per field).
        batch_size: items per batch; the last batch is smaller unless ``drop_last``.
        shuffle: a new order every epoch, drawn from ``seed`` and the epoch number.
        drop_last: leave out a last batch smaller than ``batch_size``.
        seed: the epoch ``e`` order is ``default_rng((seed, e)).permutation(n)``, so
            the same seed gives the same batches in every run and after a resume.
        device: a Device, a pyopencl queue, a kind ("auto", "cpu", "gpu") or a
            ``"PLATFORM:DEVICE"`` index; None is the default device.
        sampler: an iterable of indices to read instead (``shuffle`` must be False);
            its ``set_epoch`` is called before each epoch if it has one.

    Each ``for`` over the loader is one epoch and advances the epoch number;
    :meth:`set_epoch` picks it (the Trainer calls it, so a resumed run draws
    the same orders). float64 arrays become float32, as netcl holds no fp64.

    The next batch's upload is enqueued before the current batch is handed
    out, without waiting for it: on the device's in-order queue the copy runs
    ahead of the step the caller then enqueues, while the host goes on
    building that step.

    >>> import numpy as np
    >>> x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    >>> [b[1].numpy().tolist() for b in DataLoader((x, y), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        dataset: Sequence[np.ndarray[Any, Any]] | ArrayDataset | IndexableDataset,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        device: DeviceLike | str = None,
        sampler: Sampler | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"DataLoader: seed must be an int, got {seed!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: pass shuffle=False with a sampler (it orders the items)")
        self.arrays = _arrays_of(dataset)
        self.dataset = dataset
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"DataLoader: expected a tuple of arrays or an indexable dataset (len and []), "
                f"got {type(dataset).__name__}"
            )
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.device: Device = (
            manager.default(device) if isinstance(device, str) else resolve_device(device)
        )
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The next ``for`` over the loader reads epoch ``epoch``'s order."""
        self.epoch = int(epoch)

    def _items(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        return len(self.arrays[0]) if self.arrays is not None else len(self.dataset)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self._items()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        """Items per epoch (without those ``drop_last`` leaves out)."""
        return min(self._items(), len(self) * self.batch_size)

    def order(self, epoch: int) -> np.ndarray[Any, Any]:
        """The item indices epoch ``epoch`` reads, in order."""
        if self.sampler is not None:
            set_epoch = getattr(self.sampler, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(epoch)
            return np.fromiter(self.sampler, dtype=np.int64)
        n = self._items()
        if self.shuffle:
            return np.random.default_rng((self.seed, epoch)).permutation(n)
        return np.arange(n)

    def __iter__(self) -> Iterator[Batch]:
        order = self.order(self.epoch)
        self.epoch += 1
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        batches = [order[s : s + self.batch_size] for s in starts]
        return self._batches(batches)

    def _batches(self, batches: list[np.ndarray[Any, Any]]) -> Iterator[Batch]:
        ahead = self._upload(batches[0]) if batches else None
        for k in range(len(batches)):
            current = ahead
            ahead = self._upload(batches[k + 1]) if k + 1 < len(batches) else None
            assert current is not None
            yield current[0]
            # ``current``'s copy events (which keep its host arrays alive) go only now,
            # when the caller has enqueued its step behind them.

    def _upload(self, rows: np.ndarray[Any, Any]) -> tuple[Batch, list[cl.Event]]:
        tensors: list[Tensor] = []
        events: list[cl.Event] = []
        for host in self._gather(rows):
            out = empty(host.shape, host.dtype, self.device)
            if host.size:
                # Non-blocking: pyopencl's event keeps ``host`` alive until the copy is done.
                events.append(transfer(self.device.queue, out.buffer, host, is_blocking=False))
            tensors.append(out)
        return tuple(tensors), events

    def _gather(self, rows: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
        """The batch's fields as contiguous host arrays netcl can hold."""
        if self.arrays is not None:
            fields = [array[rows] for array in self.arrays]
        else:
            items = [self.dataset[int(i)] for i in rows]
            width = len(items[0])
            if any(len(item) != width for item in items):
                raise ValueError("DataLoader: the dataset's items have different numbers of fields")
            fields = [np.stack([np.asarray(item[f]) for item in items]) for f in range(width)]
        return [_host(field) for field in fields]


def _host(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu" and array.dtype != np.int32:
        array = array.astype(np.int64)
    return np.ascontiguousarray(array)


def _arrays_of(dataset: object) -> list[np.ndarray[Any, Any]] | None:
    """The dataset's arrays when it is one (fast gather by index arrays), else None."""
    if isinstance(dataset, ArrayDataset):
        return [dataset.x, dataset.y]
    if not isinstance(dataset, tuple | list) or not all(
        isinstance(a, np.ndarray) for a in cast(Iterable[object], dataset)
    ):
        return None
    arrays = list(cast(Sequence[np.ndarray[Any, Any]], dataset))
    if not arrays:
        raise ValueError("DataLoader: got an empty tuple of arrays")
    if any(a.ndim == 0 for a in arrays):
        raise ValueError("DataLoader: got a 0-d array; each array needs one row per item")
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"DataLoader: the arrays have different lengths {[len(a) for a in arrays]}; "
            "each must hold one row per item"
        )
    return arrays
