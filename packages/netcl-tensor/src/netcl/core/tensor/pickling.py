"""Pickle and deepcopy of tensors through host memory, onto the device chosen when loading.

A device buffer cannot leave its OpenCL context, so a pickled ``Tensor`` (or
``Parameter``) carries a numpy copy of its elements, its dtype and shape and
``requires_grad``; loading makes a new contiguous tensor on the default device,
or on the one ``loading_onto(device)`` names. As with torch, the gradient, grad
home and views into shared memory are not carried: a loaded tensor is a leaf
with memory of its own (a tensor pickled twice in one object is loaded once).
``copy.deepcopy`` takes the same path, so a deep-copied model is independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor.creation import from_numpy
from netcl.core.tensor.dispatch import DeviceLike, resolve_device
from netcl.core.tensor.tensor import Parameter, Tensor

_target: ContextVar[Device | None] = ContextVar("netcl_loading_onto", default=None)


@contextmanager
def loading_onto(device: DeviceLike) -> Iterator[None]:
    """Tensors unpickled (or deep-copied) in this block go to ``device`` (None: the default).

    >>> import copy, pickle
    >>> from netcl.core.device import manager
    >>> from netcl.core.tensor import tensor
    >>> with loading_onto(manager.default()):
    ...     t = pickle.loads(pickle.dumps(tensor([1.0, 2.0])))
    >>> t.tolist()
    [1.0, 2.0]
    """
    token = _target.set(None if device is None else resolve_device(device))
    try:
        yield
    finally:
        _target.reset(token)


def reduce(t: Tensor) -> tuple[Any, ...]:
    """What ``pickle`` stores for ``t``: a rebuild call over a host copy."""
    return rebuild, (type(t), t.numpy(), t.requires_grad)


def rebuild(kind: type[Tensor], values: np.ndarray[Any, Any], requires_grad: bool) -> Tensor:
    """The tensor ``reduce`` described, on the device chosen for loading."""
    data = from_numpy(values, _target.get() or resolve_device(None))
    if issubclass(kind, Parameter):
        return kind(data, requires_grad=requires_grad)
    data.requires_grad = requires_grad
    return data


Tensor.reducer = reduce
